//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filestore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"syscall"
	"time"
)

// casLockFile is the file of a directory whose advisory lock conditional
// Puts into that directory hold. Its name starts with '.', as no valid
// object name's segment does.
const casLockFile = ".cas.lock"

// lockDir takes the advisory lock of dir's casLockFile, waiting for it
// while another holder has it, until ctx is done, and returns the function
// that releases it.
func lockDir(ctx context.Context, r *os.Root, dir string) (func(), error) {
	f, err := r.OpenFile(path.Join(dir, casLockFile), os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, osError(err)
	}
	conn, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, osError(err)
	}
	flock := func(how int) error {
		var ferr error
		if err := conn.Control(func(fd uintptr) { ferr = syscall.Flock(int(fd), how) }); err != nil {
			return err
		}
		return ferr
	}
	for wait := time.Millisecond; ; wait = min(2*wait, 64*time.Millisecond) {
		err := flock(syscall.LOCK_EX | syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("filestore: lock %s: %w", path.Join(dir, casLockFile), osError(err))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	return func() {
		flock(syscall.LOCK_UN)
		f.Close()
	}, nil
}

// fileVersion returns the identity of the file fi describes, as
// ObjectInfo.Version: device, inode, modification time and size.
func fileVersion(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	return fmt.Sprintf("%x.%x.%x.%x", st.Dev, st.Ino, fi.ModTime().UnixNano(), fi.Size())
}
