package filestore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"

	"github.com/statebucket/statebucket/core"
)

// maxOpenDirs bounds the directory handles a Driver keeps open (see
// openDir). A repository's blobs fan out over 256 directories.
const maxOpenDirs = 512

// openDir is a handle on one directory of the repository, kept open by
// the Driver so that an operation on a file in it costs one system call:
// through the Driver's root, os.Root opens every directory on the way,
// one by one, at every call. The handle stays bound to the directory it
// opened, wherever it goes: an operation that finds the directory gone
// opens it anew (see [Driver.inDir]), and a sync checks that the
// directories written into are still the ones their paths lead to (see
// syncDir), so that a directory replaced in between is never taken for
// durable.
//
// A handle is closed only once no operation uses it: one dropped from the
// cache (full, or found stale) while operations run is closed by the last
// of them (see release).
type openDir struct {
	root *os.Root
	id   fs.FileInfo // the directory's identity; nil for the Driver's root
	// file is the directory opened again, whose descriptor fd unnamed
	// files are created in and linked into (see createUnnamed); nil where
	// the system has none, and for the Driver's root.
	file *os.File
	fd   int
	// batch is set if the directory's file system makes a group of files
	// durable in one sync (see Driver.stage), journaled if files staged
	// for it can wait in the staging directory (see Driver.stagingFor).
	batch, journaled bool

	// Guarded by the Driver's mu.
	refs    int  // operations using the handle
	dropped bool // out of the cache: closed when refs falls to 0
}

// dirFor returns the handle on the directory dir of the Driver's root r,
// opening it if it is not open yet, after checking that no directory on
// the way is a symbolic link; if create is set, it creates the missing
// ones first.
func (d *Driver) dirFor(r *os.Root, dir string, create bool) (*openDir, error) {
	if dir == "." {
		return &openDir{root: r}, nil
	}
	d.mu.Lock()
	od := d.dirs[dir]
	if od != nil {
		od.refs++
	}
	d.mu.Unlock()
	if od != nil {
		return od, nil
	}
	var err error
	if create {
		err = makeDirs(r, dir+"/")
	} else {
		for p := range parents(dir + "/") {
			if err = checkDir(r, p); err != nil {
				break
			}
		}
	}
	if err != nil {
		return nil, err
	}
	id, err := r.Lstat(dir)
	if err != nil {
		return nil, osError(err)
	}
	sub, err := r.OpenRoot(dir)
	if err != nil {
		return nil, osError(err)
	}
	opened, err := sub.Stat(".")
	if err != nil || !id.IsDir() || !os.SameFile(id, opened) {
		sub.Close()
		if err != nil {
			return nil, osError(err)
		}
		return nil, fmt.Errorf("filestore: directory %q was replaced while being opened: %w", dir, core.ErrConflict)
	}
	od = &openDir{root: sub, id: opened}
	od.file, od.fd = openDirFile(sub)
	if od.file != nil {
		od.batch, od.journaled = batchable(od.fd)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		od.close()
		return nil, fmt.Errorf("filestore: %s: driver closed: %w", d.dir, fs.ErrClosed)
	}
	if cur := d.dirs[dir]; cur != nil { // opened concurrently
		od.close()
		cur.refs++
		return cur, nil
	}
	if len(d.dirs) >= maxOpenDirs {
		for k, old := range d.dirs { // any one: it closes once unused
			d.drop(k, old)
			break
		}
	}
	od.refs = 1
	d.dirs[dir] = od
	return od, nil
}

// close closes the handle.
func (od *openDir) close() {
	od.root.Close()
	if od.file != nil {
		od.file.Close()
	}
}

// release ends an operation's use of od, which dirFor returned, and
// closes it if it was dropped from the cache and no other operation uses
// it.
func (d *Driver) release(od *openDir) {
	if od.id == nil {
		return // the Driver's root
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	od.refs--
	if od.dropped && od.refs == 0 {
		od.close()
	}
}

// drop takes od, the handle on dir, out of the cache, and closes it unless
// an operation uses it. d.mu is held.
func (d *Driver) drop(dir string, od *openDir) {
	delete(d.dirs, dir)
	od.dropped = true
	if od.refs == 0 {
		od.close()
	}
}

// forget closes the handle od on dir, found stale, unless it is gone
// already.
func (d *Driver) forget(dir string, od *openDir) {
	if od.id == nil {
		return // the Driver's root
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dirs[dir] == od {
		d.drop(dir, od)
	}
}

// forgetReplaced closes the handle on dir if it is the directory id,
// which its path no longer leads to (see syncDir).
func (d *Driver) forgetReplaced(dir string, id fs.FileInfo) {
	d.mu.Lock()
	od := d.dirs[dir]
	d.mu.Unlock()
	if od != nil && od.id == id {
		d.forget(dir, od)
	}
}

// closeDirs closes every directory handle. d.mu is held.
func (d *Driver) closeDirs() {
	for k, od := range d.dirs {
		d.drop(k, od)
	}
}

// inDir runs op on the file base of name's directory, through the handle
// on that directory, which it creates first if create is set. If op fails
// because something is missing, and the directory's path no longer leads
// to the directory the handle holds (it was removed, or replaced, since
// the handle was opened), inDir opens it anew and runs op once more, whose
// answer is then final. A file missing from a directory still in place
// costs one look at the path, and keeps the handle.
func (d *Driver) inDir(r *os.Root, name string, create bool, op func(od *openDir, base string) error) error {
	dir, base := path.Dir(name), path.Base(name)
	for attempt := 0; ; attempt++ {
		od, err := d.dirFor(r, dir, create)
		if err != nil {
			return err
		}
		err = op(od, base)
		d.release(od)
		if attempt > 0 || od.id == nil || !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrClosed) {
			return err
		}
		if errors.Is(err, fs.ErrNotExist) {
			if fi, lerr := r.Lstat(dir); lerr == nil && os.SameFile(fi, od.id) {
				return err // the file is missing, not the directory
			}
		}
		d.forget(dir, od)
	}
}
