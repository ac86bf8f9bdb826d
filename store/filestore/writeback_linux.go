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
	switch f := f.(type) {
	case *unnamedFile:
		_ = unix.SyncFileRange(f.fd, off, n, unix.SYNC_FILE_RANGE_WRITE)
	case *os.File:
		if rc, err := f.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) {
				_ = unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
			})
		}
	}
}
