package bigbuf

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

const supported = true

// alignOffset returns the offset of the first huge-page boundary in b.
func alignOffset(b []byte) int {
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return int((hugePage - p%hugePage) % hugePage)
}

// advise asks for huge pages for b. An error (a kernel without
// transparent huge pages) leaves b in base pages, which is no worse.
func advise(b []byte) {
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
}

// discard gives the whole pages of b back to the system.
func discard(b []byte) {
	p := int(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	skip := (pageSize - p%pageSize) % pageSize
	if skip >= len(b) {
		return
	}
	if n := (len(b) - skip) / pageSize * pageSize; n > 0 {
		_ = unix.Madvise(b[skip:skip+n], unix.MADV_DONTNEED)
	}
}

// pageSize is the system's base page size.
var pageSize = unix.Getpagesize()

// mmap maps n bytes of anonymous memory, starting on a huge-page boundary
// when n spans one.
func mmap(n int) ([]byte, func(), bool) {
	if n == 0 {
		return nil, nil, false
	}
	slack := 0
	if n >= hugePage {
		slack = hugePage
	}
	raw, err := unix.Mmap(-1, 0, n+slack, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil, nil, false
	}
	off := 0
	if slack > 0 {
		off = alignOffset(raw)
	}
	b := raw[off : off+n : off+n]
	if slack > 0 {
		advise(b)
	}
	return b, func() { _ = unix.Munmap(raw) }, true
}
