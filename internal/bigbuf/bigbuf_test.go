package bigbuf

import (
	"runtime"
	"testing"
	"unsafe"
)

// allocators are the two ways to get a buffer, each with its free.
var allocators = []struct {
	name  string
	alloc func(n int) ([]byte, func())
}{
	{"Alloc", func(n int) ([]byte, func()) { return Alloc(n), func() {} }},
	{"Map", Map},
}

func TestAllocAndMap(t *testing.T) {
	for _, a := range allocators {
		for _, n := range []int{0, 1, 64 << 10, hugePage - 1, hugePage, 8 << 20, 8<<20 + 1} {
			b, free := a.alloc(n)
			if len(b) != n || cap(b) != n {
				t.Fatalf("%s(%d): len %d cap %d", a.name, n, len(b), cap(b))
			}
			for i := range b {
				if b[i] != 0 {
					t.Fatalf("%s(%d): byte %d is %d, want 0", a.name, n, i, b[i])
				}
			}
			if supported && n >= hugePage {
				if p := uintptr(unsafe.Pointer(unsafe.SliceData(b))); p%hugePage != 0 {
					t.Fatalf("%s(%d) starts at %#x, not on a huge-page boundary", a.name, n, p)
				}
			}
			// The buffer is the caller's to write, to its last byte.
			for i := 0; i < n; i += 4096 {
				b[i] = 1
			}
			if n > 0 {
				b[n-1] = 1
			}
			free()
		}
	}
}

// TestMapOffHeap checks that mapped buffers leave the Go heap as it was,
// so that the garbage collector's goal does not grow with them.
func TestMapOffHeap(t *testing.T) {
	if !supported {
		t.Skip("buffers come from the Go heap on this system")
	}
	const n, count = 8 << 20, 8
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	frees := make([]func(), 0, count)
	for range count {
		b, free := Map(n)
		for i := 0; i < n; i += 4096 {
			b[i] = 1
		}
		frees = append(frees, free)
	}
	runtime.ReadMemStats(&after)
	for _, free := range frees {
		free()
	}
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > n {
		t.Fatalf("the heap grew by %d bytes for %d mapped buffers of %d", grew, count, n)
	}
}

// TestDiscard writes a mapped buffer and discards it: its whole pages
// read as zeros (they were given back), a partial page at either end
// keeps its bytes, and the buffer stays usable.
func TestDiscard(t *testing.T) {
	if !supported {
		t.Skip("Discard does nothing on this system")
	}
	b, free := Map(4 << 20)
	defer free()
	for i := range b {
		b[i] = 7
	}
	part := b[100 : 3<<20]
	Discard(part)
	page := pageSize
	for i, c := range b {
		inside := i >= page && i < (3<<20)/page*page
		switch {
		case inside && c != 0:
			t.Fatalf("byte %d of a discarded page is %d, want 0", i, c)
		case !inside && c != 7:
			t.Fatalf("byte %d outside the discarded pages is %d, want 7", i, c)
		}
	}
	b[page] = 1
	if b[page] != 1 {
		t.Fatal("a discarded page cannot be written")
	}
}
