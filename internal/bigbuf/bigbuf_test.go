package bigbuf

import (
	"testing"
	"unsafe"
)

func TestAlloc(t *testing.T) {
	for _, n := range []int{0, 1, 64 << 10, hugePage - 1, hugePage, 8 << 20, 8<<20 + 1} {
		b := Alloc(n)
		if len(b) != n || cap(b) != n {
			t.Fatalf("Alloc(%d): len %d cap %d", n, len(b), cap(b))
		}
		for i := range b {
			if b[i] != 0 {
				t.Fatalf("Alloc(%d): byte %d is %d, want 0", n, i, b[i])
			}
		}
		if supported && n >= hugePage {
			if p := uintptr(unsafe.Pointer(unsafe.SliceData(b))); p%hugePage != 0 {
				t.Fatalf("Alloc(%d) starts at %#x, not on a huge-page boundary", n, p)
			}
		}
		// The buffer is the caller's to write, to its last byte.
		for i := 0; i < n; i += 4096 {
			b[i] = 1
		}
		if n > 0 {
			b[n-1] = 1
		}
	}
}
