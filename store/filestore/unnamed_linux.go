package filestore

import (
	"context"
	"io"
	"io/fs"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// procFDs reports whether /proc/self/fd, through which createUnnamed
// links its files, is there (it is missing from chroots and containers
// without /proc).
var procFDs = sync.OnceValue(func() bool {
	var st unix.Stat_t
	return unix.Stat("/proc/self/fd", &st) == nil
})

// openDirFile opens the directory of sub again, as a file whose
// descriptor createUnnamed uses; nil if it cannot.
func openDirFile(sub *os.Root) (*os.File, int) {
	f, err := sub.Open(".")
	if err != nil {
		return nil, -1
	}
	return f, int(f.Fd())
}

// createUnnamed stores body under name, the file base of od, if base is
// free, through an unnamed file: created in od (O_TMPFILE), written,
// synced, then linked to base, which fails if base exists. It takes half
// the system calls of a temporary file (no name to make, rename or
// remove), and leaves nothing behind if the process dies: the system
// frees an unnamed file when its last descriptor closes. It returns
// errNoUnnamed, having done nothing, where the file system cannot (the
// Driver then never tries again), where od has no descriptor, and where
// the unnamed file cannot be created: the temporary file's creation then
// reports why, as inDir expects (Linux answers EPERM, not ENOENT, in a
// directory removed since od was opened).
func (d *Driver) createUnnamed(ctx context.Context, od *openDir, name, base string, body io.ReaderAt, size int64, want []byte) error {
	if od.file == nil || d.noUnnamed.Load() || !procFDs() {
		return errNoUnnamed
	}
	var fd int
	err := ignoringEINTR(func() (err error) {
		fd, err = unix.Openat(od.fd, ".", unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o666)
		return err
	})
	switch err {
	case nil:
	case unix.EOPNOTSUPP, unix.EISDIR, unix.EINVAL:
		d.noUnnamed.Store(true) // a file system or a kernel without O_TMPFILE
		return errNoUnnamed
	default:
		return errNoUnnamed
	}
	defer unix.Close(fd)
	if err := writeBody(ctx, &unnamedFile{fd: fd, name: name}, body, size, want, d.keepCache); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), od.fd, base, unix.AT_SYMLINK_FOLLOW)
	switch err {
	case nil:
		return nil
	case unix.EEXIST:
		return errExists
	}
	return osError(&fs.PathError{Op: "link", Path: name, Err: err})
}

// unnamedFile is an unnamed file being written, for the object name.
type unnamedFile struct {
	fd   int
	name string
}

func (f *unnamedFile) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(f.fd, p[n:])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return n, &fs.PathError{Op: "write", Path: f.name, Err: err}
		case m == 0:
			return n, &fs.PathError{Op: "write", Path: f.name, Err: io.ErrShortWrite}
		}
		n += m
	}
	return n, nil
}

func (f *unnamedFile) Sync() error {
	if err := ignoringEINTR(func() error { return unix.Fsync(f.fd) }); err != nil {
		return &fs.PathError{Op: "sync", Path: f.name, Err: err}
	}
	return nil
}

// ignoringEINTR calls fn until it fails with another error than EINTR.
func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}
