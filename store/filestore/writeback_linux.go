package filestore

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the system to start writing n bytes of f, from
// off, to the disk, without waiting for them (sync_file_range with
// SYNC_FILE_RANGE_WRITE). It promises nothing, and reports nothing: a
// sync does both.
func startWriteback(f syncWriter, off, n int64) {
	withFD(f, func(fd int) { _ = unix.SyncFileRange(fd, off, n, unix.SYNC_FILE_RANGE_WRITE) })
}

// dropCache asks the system to drop the pages of n bytes of f, from off,
// from the page cache (posix_fadvise with POSIX_FADV_DONTNEED). Only the
// pages already written to the disk go: it is called once a sync has
// returned, and loses nothing. It reports nothing: the pages are only a
// cache.
func dropCache(f syncWriter, off, n int64) {
	withFD(f, func(fd int) { _ = unix.Fadvise(fd, off, n, unix.FADV_DONTNEED) })
}

// withFD calls op with the descriptor of f, if it has one.
func withFD(f syncWriter, op func(fd int)) {
	switch f := f.(type) {
	case *unnamedFile:
		op(f.fd)
	case *os.File:
		if rc, err := f.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { op(int(fd)) })
		}
	}
}
