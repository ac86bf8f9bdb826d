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
