package filestore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"iter"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
)

const (
	// tempPrefix starts the name of every temporary file. No repository
	// name has a component starting with '.'.
	tempPrefix = ".tmp-"
	// maxDepth is the number of components of the deepest repository
	// name, blobs/sha256/ab/<hex>; List descends no further.
	maxDepth = 4
	// copyChunk is the most Put reads from its body between two checks of
	// its context.
	copyChunk = 256 << 10
	// openAttempts bounds how often Get retries when the object is
	// replaced between its check and its opening.
	openAttempts = 8
)

// Options configure [New]. The zero value opens an existing directory.
type Options struct {
	// Create makes New create the directory, and any missing parents.
	Create bool
}

// Driver is a [store.Driver] over a directory of the local file system.
// Create one with [New].
//
// A Driver is safe for concurrent use, and several Drivers, in one process
// or many, may share a directory.
type Driver struct {
	root *os.Root
	dir  string

	mu    sync.Mutex
	dirty map[string]struct{} // directories holding blobs not yet synced
}

var (
	_ store.Driver      = (*Driver)(nil)
	_ store.RangeReader = (*Driver)(nil)
	_ store.Syncer      = (*Driver)(nil)
)

// New returns a Driver over the directory root. A missing directory is an
// error matching core.ErrBucketNotFound, unless opts.Create is set. A nil
// opts means the zero [Options].
func New(root string, opts *Options) (*Driver, error) {
	if opts == nil {
		opts = &Options{}
	}
	dir, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("filestore: directory %q: %w", root, err)
	}
	if opts.Create {
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return nil, osError(err)
		}
	}
	r, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("filestore: directory %q does not exist (create it, or set Options.Create): %w", dir, core.ErrBucketNotFound)
	}
	if err != nil {
		return nil, osError(err)
	}
	return &Driver{root: r, dir: dir, dirty: map[string]struct{}{}}, nil
}

// Root returns the absolute path of the Driver's directory.
func (d *Driver) Root() string { return d.dir }

// Close releases the Driver's handle on its directory.
func (d *Driver) Close() error { return d.root.Close() }

// Put stores size bytes of body under name (see [store.Driver.Put]). A body
// shorter than size is an error matching io.ErrUnexpectedEOF and
// core.ErrSizeMismatch; content whose digest is not opts.SHA256 is an error
// matching core.ErrChecksumMismatch. Either way nothing is stored.
func (d *Driver) Put(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions) error {
	if err := check(ctx, name); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("filestore: negative size %d: %w", size, core.ErrInvalid)
	}
	if opts.SHA256 != nil && len(opts.SHA256) != sha256.Size {
		return fmt.Errorf("filestore: PutOptions.SHA256 holds %d bytes, want %d: %w", len(opts.SHA256), sha256.Size, core.ErrInvalid)
	}
	if err := d.makeDirs(name); err != nil {
		return err
	}
	switch fi, err := d.root.Lstat(name); {
	case err == nil && !fi.Mode().IsRegular():
		return refuse(name, fi.Mode(), "regular file")
	case err == nil && opts.CreateOnly:
		return errExists
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return osError(err)
	}

	dir := path.Dir(name)
	tmp := dir + "/" + tempPrefix + rand.Text()
	f, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return osError(err)
	}
	defer d.root.Remove(tmp) // gone after a rename; a second link after a link
	err = writeBody(ctx, f, body, size, opts.SHA256)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = osError(cerr)
	}
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if opts.CreateOnly {
		err = d.root.Link(tmp, name)
		if errors.Is(err, fs.ErrExist) {
			return errExists
		}
	} else {
		err = d.root.Rename(tmp, name)
	}
	if err != nil {
		return osError(err)
	}
	if strings.HasPrefix(name, store.BlobsPrefix) {
		// The file itself is synced; its directory entry is made durable
		// by Sync, which the flows call before they commit, so a large
		// export pays one directory sync per fan-out directory, not one
		// per blob.
		d.mu.Lock()
		d.dirty[dir] = struct{}{}
		d.mu.Unlock()
		return nil
	}
	return d.syncDir(dir)
}

// Sync makes every blob stored so far durable, with their directories up
// to the root (see [store.Syncer]). Other objects are durable when Put
// returns.
func (d *Driver) Sync(ctx context.Context) error {
	d.mu.Lock()
	dirs := d.dirty
	d.dirty = map[string]struct{}{}
	d.mu.Unlock()
	if len(dirs) == 0 {
		return nil
	}
	for _, parent := range []string{"blobs/sha256", "blobs", "."} {
		dirs[parent] = struct{}{}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	var mu sync.Mutex
	var failed []string
	for dir := range dirs {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			if err := d.syncDir(dir); err != nil {
				mu.Lock()
				failed = append(failed, dir)
				mu.Unlock()
				return err
			}
			return nil
		})
	}
	err := g.Wait()
	if err != nil {
		d.mu.Lock()
		for dir := range dirs { // try them all again next time
			d.dirty[dir] = struct{}{}
		}
		d.mu.Unlock()
		return fmt.Errorf("filestore: sync %d directories (%v…): %w", len(dirs), failed, err)
	}
	return nil
}

var errExists = fmt.Errorf("filestore: %w", core.ErrExists)

// writeBody copies size bytes of body to f, checking ctx between chunks
// and, if want is set, that their SHA-256 digest is want, then syncs f.
func writeBody(ctx context.Context, f *os.File, body io.ReaderAt, size int64, want []byte) error {
	var w io.Writer = f
	var h hash.Hash
	if want != nil {
		h = sha256.New()
		w = io.MultiWriter(f, h)
	}
	src := io.NewSectionReader(body, 0, size)
	buf := make([]byte, min(size, copyChunk))
	var n int64
	for n < size {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, rerr := src.Read(buf)
		if _, err := w.Write(buf[:m]); err != nil {
			return osError(err)
		}
		n += int64(m)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("filestore: read body: %w", rerr)
		}
	}
	if n < size {
		return fmt.Errorf("filestore: body ended after %d of %d bytes: %w: %w", n, size, core.ErrSizeMismatch, io.ErrUnexpectedEOF)
	}
	if h != nil {
		if got := h.Sum(nil); !bytes.Equal(got, want) {
			return fmt.Errorf("filestore: content has SHA-256 %x, want %x: %w", got, want, core.ErrChecksumMismatch)
		}
	}
	return osError(f.Sync())
}

// Get opens the object name for reading (see [store.Driver.Get]). ctx
// governs the opening only.
func (d *Driver) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	return d.open(ctx, name)
}

// GetRange opens length bytes of the object name from offset for reading
// (see [store.RangeReader]). ctx governs the opening only.
func (d *Driver) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("filestore: range of %d bytes from %d: %w", length, offset, core.ErrInvalid)
	}
	f, err := d.open(ctx, name)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, offset, length), f}, nil
}

// open opens the regular file name.
func (d *Driver) open(ctx context.Context, name string) (*os.File, error) {
	if err := check(ctx, name); err != nil {
		return nil, err
	}
	// Root.Open follows symbolic links inside the root: check that name is
	// a regular file, open it, and make sure the file opened is the one
	// checked. A concurrent Put may replace it in between: try again.
	for range openAttempts {
		fi, err := d.lstat(name)
		if err != nil {
			return nil, err
		}
		f, err := d.root.Open(name)
		if err != nil {
			return nil, osError(err)
		}
		if ofi, err := f.Stat(); err == nil && os.SameFile(fi, ofi) {
			return f, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("filestore: %q was replaced %d times while being opened: %w", name, openAttempts, core.ErrConflict)
}

// Stat returns the attributes of the object name.
func (d *Driver) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	if err := check(ctx, name); err != nil {
		return store.ObjectInfo{}, err
	}
	fi, err := d.lstat(name)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	return store.ObjectInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete removes the object name.
func (d *Driver) Delete(ctx context.Context, name string) error {
	if err := check(ctx, name); err != nil {
		return err
	}
	if _, err := d.lstat(name); err != nil {
		return err
	}
	return osError(d.root.Remove(name))
}

// List calls fn for every regular file whose name starts with prefix (see
// [store.Driver.List]). It reads only the directories that can hold such
// names, and skips symbolic links, temporary files, and every name
// starting with '.'.
func (d *Driver) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	if err := store.ValidPrefix(prefix); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	start := "."
	for p := range parents(prefix) {
		if path.Clean(p) != p {
			return nil // "." components: no repository name starts so
		}
		err := d.checkDir(p)
		if errors.Is(err, core.ErrNotFound) || errors.Is(err, core.ErrInvalidPath) {
			return nil // missing, or not a directory: holds no objects
		}
		if err != nil {
			return err
		}
		start = p
	}
	return d.walk(ctx, start, prefix, func(name string, typ fs.FileMode) error {
		if !typ.IsRegular() || strings.HasPrefix(path.Base(name), ".") {
			return nil
		}
		fi, err := d.root.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return osError(err)
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		return fn(store.ObjectInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()})
	})
}

// RemoveStaleTemp removes the temporary files that Puts interrupted by a
// crash left behind, when they were last written more than olderThan ago,
// and returns how many it removed. A Put whose temporary file it removes
// fails, so olderThan must exceed the time any Put may take.
func (d *Driver) RemoveStaleTemp(ctx context.Context, olderThan time.Duration) (int, error) {
	cutoff := time.Now().Add(-olderThan)
	removed := 0
	err := d.walk(ctx, ".", "", func(name string, typ fs.FileMode) error {
		if !typ.IsRegular() || !strings.HasPrefix(path.Base(name), tempPrefix) {
			return nil
		}
		fi, err := d.root.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) || err == nil && fi.ModTime().After(cutoff) {
			return nil
		}
		if err == nil {
			err = d.root.Remove(name)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return osError(err)
		}
		removed++
		return nil
	})
	return removed, err
}

// walk calls visit with the name and type of every entry that is not a
// directory in dir and, down to maxDepth components, in the directories
// under dir that can hold names starting with prefix; dir is the deepest
// directory that prefix names whole. It never follows symbolic links, and
// skips directories whose names start with '.'.
func (d *Driver) walk(ctx context.Context, dir, prefix string, visit func(name string, typ fs.FileMode) error) error {
	f, err := d.root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return osError(err)
	}
	defer f.Close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		entries, rerr := f.ReadDir(256)
		for _, e := range entries {
			name := e.Name()
			if dir != "." {
				name = dir + "/" + name
			}
			switch {
			case !e.IsDir():
				if strings.HasPrefix(name, prefix) {
					if err := visit(name, e.Type()); err != nil {
						return err
					}
				}
			case strings.HasPrefix(e.Name(), "."), strings.Count(name, "/")+1 >= maxDepth:
			case strings.HasPrefix(name+"/", prefix):
				if err := d.walk(ctx, name, prefix, visit); err != nil {
					return err
				}
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return osError(rerr)
		}
	}
}

// check refuses a name that is not a repository name (the Store has
// checked it already; this guards direct callers) and a done context.
func check(ctx context.Context, name string) error {
	if err := store.ValidName(name); err != nil {
		return err
	}
	return ctx.Err()
}

// parents yields the directories leading to name, outermost first: "a"
// then "a/b" for "a/b/c".
func parents(name string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for i := range len(name) {
			if name[i] == '/' && !yield(name[:i]) {
				return
			}
		}
	}
}

// checkDir returns nil if dir is a directory and not a symbolic link.
func (d *Driver) checkDir(dir string) error {
	fi, err := d.root.Lstat(dir)
	if err != nil {
		return osError(err)
	}
	if !fi.IsDir() {
		return refuse(dir, fi.Mode(), "directory")
	}
	return nil
}

// lstat returns the attributes of name after checking that it is a
// regular file and that no directory leading to it is a symbolic link.
func (d *Driver) lstat(name string) (fs.FileInfo, error) {
	for p := range parents(name) {
		if err := d.checkDir(p); err != nil {
			return nil, err
		}
	}
	fi, err := d.root.Lstat(name)
	if err != nil {
		return nil, osError(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, refuse(name, fi.Mode(), "regular file")
	}
	return fi, nil
}

// makeDirs creates the missing directories leading to name, after
// checking that none of those present is a symbolic link.
func (d *Driver) makeDirs(name string) error {
	for p := range parents(name) {
		err := d.checkDir(p)
		if errors.Is(err, core.ErrNotFound) {
			err = d.root.Mkdir(p, 0o777)
			if errors.Is(err, fs.ErrExist) {
				err = d.checkDir(p) // created concurrently
			} else {
				err = osError(err)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// syncDir makes the entries of dir durable.
func (d *Driver) syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be synced there; NTFS journals renames
	}
	f, err := d.root.Open(dir)
	if err != nil {
		return osError(err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return osError(err)
}

// refuse returns the error for a path that is not the kind of file a
// repository holds there.
func refuse(name string, mode fs.FileMode, want string) error {
	if mode&fs.ModeSymlink != 0 {
		return fmt.Errorf("filestore: %q is a symbolic link, which filestore never follows: %w", name, core.ErrInvalidPath)
	}
	return fmt.Errorf("filestore: %q is not a %s (mode %v): %w", name, want, mode, core.ErrInvalidPath)
}

// osError wraps an error of package os, adding core.ErrNotFound or
// core.ErrPermission where they apply. It returns nil for nil.
func osError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return &fileError{err: err, kind: core.ErrNotFound}
	case errors.Is(err, fs.ErrPermission):
		return &fileError{err: err, kind: core.ErrPermission}
	}
	return &fileError{err: err}
}

// fileError is an error of package os that also matches a sentinel of
// package core, without repeating it in its message.
type fileError struct {
	err  error
	kind error // may be nil
}

func (e *fileError) Error() string { return "filestore: " + e.err.Error() }

func (e *fileError) Unwrap() []error {
	if e.kind == nil {
		return []error{e.err}
	}
	return []error{e.kind, e.err}
}

func init() { store.Register("file", openURL) }

// openURL opens a file:///absolute/path URL, creating the directory.
func openURL(_ context.Context, u *url.URL) (store.Driver, error) {
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("filestore: file URL with host %q: want file:///absolute/path: %w", u.Host, core.ErrInvalid)
	}
	if u.RawQuery != "" {
		return nil, fmt.Errorf("filestore: file URL takes no query parameters: %w", core.ErrInvalid)
	}
	return New(filepath.FromSlash(u.Path), &Options{Create: true})
}
