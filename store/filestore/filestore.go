package filestore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
)

const (
	// tempPrefix starts the name of every temporary file. No valid object
	// name has a segment starting with '.' (see store.ValidName). The
	// name goes on with its writer's process id and instance (see
	// tempName).
	tempPrefix = ".tmp-"
	// stagingDir is the directory, in the Driver's root, where deferred
	// Puts stage their files on Linux's ext4 and XFS (see
	// Driver.stagingFor). Like every name starting with '.', it is no
	// object's, and List does not enter it.
	stagingDir = ".staging"
	// copyChunk is the most Put reads from its body between two checks of
	// its context.
	copyChunk = 256 << 10
	// openAttempts bounds how often Get retries when the object is
	// replaced between its check and its opening.
	openAttempts = 8
	// syncParallel is how many directories Sync syncs at once: the file
	// system's journal commits the syncs that wait together in one go.
	syncParallel = 16
)

// DefaultMaxConcurrency is the default of Options.MaxConcurrency. Small
// writes to a local file system wait on their syncs, which the file
// system's journal commits together: the more wait at once, the fewer
// commits. 32 is where a bare create, write and fsync loop of 4 KiB files
// is fastest here (see docs/benchmarks.md), twice the engine's default.
const DefaultMaxConcurrency = 32

// Options configure [New]. The zero value creates the directory at the
// first Put and keeps DefaultMaxConcurrency operations in flight.
type Options struct {
	// Create makes New create the directory, and any missing parents, at
	// once.
	Create bool
	// MaxConcurrency is the number of operations the engine keeps in
	// flight to the driver (see [store.Concurrency]). 0 means
	// DefaultMaxConcurrency.
	MaxConcurrency int
	// KeepCache keeps what Put writes in the system's page cache. By
	// default, on Linux, a Put of a body of 1 MiB or more drops the pages
	// it wrote from the cache once they are synced: a snapshot's blobs
	// are written once and seldom read back soon, and an export would
	// otherwise fill the cache with them, pushing out what other programs
	// read. Set it where the same machine reads the objects back at once
	// (an import right after the export): it then reads them from memory
	// rather than from the disk.
	KeepCache bool
}

// Driver is a [store.Driver] over a directory of the local file system.
// Create one with [New].
//
// A Driver is safe for concurrent use, and several Drivers, in one process
// or many, may share a directory.
type Driver struct {
	dir            string
	maxConcurrency int
	keepCache      bool

	mu     sync.Mutex
	root   *os.Root               // nil until the directory is found
	closed bool                   // set by Close
	dirs   map[string]*openDir    // handles on directories, by path (see openDir)
	dirty  map[string]fs.FileInfo // directories written by deferred Puts since the last Sync, with the identity of those written into

	staged staging // files of deferred Puts awaiting their commit (see stage)

	noUnnamed atomic.Bool // set once the file system refuses unnamed files (see createUnnamed)
}

var (
	_ store.Driver            = (*Driver)(nil)
	_ store.Syncer            = (*Driver)(nil)
	_ store.Cleaner           = (*Driver)(nil)
	_ store.ConditionalPutter = (*Driver)(nil)
	_ store.Concurrency       = (*Driver)(nil)
	_ store.Local             = (*Driver)(nil)
)

// New returns a Driver over the directory root. A missing directory is
// not an error: every operation but Put then fails with an error matching
// core.ErrBucketNotFound that names it, and the first Put creates it, with
// any missing parents. A path that exists but is not a directory is an
// error. A nil opts means the zero [Options].
func New(root string, opts *Options) (*Driver, error) {
	if opts == nil {
		opts = &Options{}
	}
	dir, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("filestore: directory %q: %w", root, err)
	}
	d := &Driver{dir: dir, maxConcurrency: opts.MaxConcurrency, keepCache: opts.KeepCache, dirs: map[string]*openDir{}, dirty: map[string]fs.FileInfo{}}
	d.staged.init()
	if d.maxConcurrency <= 0 {
		d.maxConcurrency = DefaultMaxConcurrency
	}
	if _, err := d.open(opts.Create); err != nil && !errors.Is(err, core.ErrBucketNotFound) {
		return nil, err
	}
	return d, nil
}

// MaxConcurrency returns Options.MaxConcurrency: the number of operations
// the engine should keep in flight (see [store.Concurrency]).
func (d *Driver) MaxConcurrency() int { return d.maxConcurrency }

// Local implements [store.Local]: the objects are files on this machine.
func (d *Driver) Local() bool { return true }

// Root returns the absolute path of the Driver's directory.
func (d *Driver) Root() string { return d.dir }

// Close releases the Driver's handles on its directory and those in it.
func (d *Driver) Close() error {
	d.discardStaged()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	d.closeDirs()
	if d.root == nil {
		return nil
	}
	return d.root.Close()
}

// open returns the handle on the directory, opening it the first time it
// is found, and creating it first, with its missing parents, if create is
// set.
func (d *Driver) open(create bool) (*os.Root, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, fmt.Errorf("filestore: %s: driver closed: %w", d.dir, fs.ErrClosed)
	}
	if d.root != nil {
		return d.root, nil
	}
	r, err := os.OpenRoot(d.dir)
	if errors.Is(err, fs.ErrNotExist) && create {
		if err := mkdirAll(d.dir); err != nil {
			return nil, err
		}
		r, err = os.OpenRoot(d.dir)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("filestore: repository directory %s does not exist (check the path; the first write creates it): %w", d.dir, core.ErrBucketNotFound)
	}
	if err != nil {
		return nil, osError(err)
	}
	d.root = r
	return r, nil
}

// mkdirAll creates dir and its missing parents, and makes their entries
// durable.
func mkdirAll(dir string) error {
	top := dir // the outermost directory missing
	for p := filepath.Dir(top); p != top; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		}
		top = p
	}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return osError(err)
	}
	for p := dir; ; p = filepath.Dir(p) {
		if err := syncPath(filepath.Dir(p)); err != nil {
			return err
		}
		if p == top {
			return nil
		}
	}
}

// Put stores size bytes of body under name (see [store.Driver.Put]),
// creating the Driver's directory if it is missing. A body shorter than
// size is an error matching io.ErrUnexpectedEOF and core.ErrSizeMismatch;
// content whose digest is not opts.SHA256 is an error matching
// core.ErrChecksumMismatch. Either way nothing is stored.
//
// The file is synced before it takes its name. Its directory entry, and
// those of the directories leading to it, are synced before Put returns,
// unless opts.DeferSync is set: then [Driver.Sync] syncs them.
func (d *Driver) Put(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions) error {
	r, err := d.prepare(ctx, name, size, opts)
	if err != nil {
		return err
	}
	return d.inDir(r, name, true, func(od *openDir, base string) error {
		switch fi, err := od.root.Lstat(base); {
		case err == nil && !fi.Mode().IsRegular():
			return refuse(name, fi.Mode(), "regular file")
		case err == nil && opts.CreateOnly:
			return errExists
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return osError(err)
		}
		if err := d.stage(ctx, od, name, base, body, size, opts); !errors.Is(err, errNoStage) {
			return err
		}
		if opts.CreateOnly {
			err := d.createUnnamed(ctx, od, name, base, body, size, opts.SHA256)
			if !errors.Is(err, errNoUnnamed) {
				if err != nil {
					return err
				}
				return d.syncEntries(r, od, name, opts)
			}
		}
		return d.write(ctx, r, od, name, base, body, size, opts)
	})
}

// PutIfMatch stores size bytes of body under name, as Put does, if the
// object is still at version, its identity as Stat reported it (see
// [store.ConditionalPutter]). It compares and renames while holding an
// advisory lock (flock) on the file ".cas.lock" of the object's
// directory, which every PutIfMatch on that directory takes, in this
// process or another; the kernel releases it if the holder dies, so it is
// never stale. Plain Puts do not take it. On systems without flock it
// fails with an error matching errors.ErrUnsupported.
//
// A file's identity is its device, inode, modification time and size. A
// replaced file gets a new inode, which the system may give again to a
// later file; for that later file to pass for the one read, it would also
// need the same size and modification time, to the file system's
// timestamp granularity.
func (d *Driver) PutIfMatch(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions, version string) error {
	if opts.CreateOnly {
		return fmt.Errorf("filestore: conditional put with CreateOnly: %w", core.ErrInvalid)
	}
	r, err := d.prepare(ctx, name, size, opts)
	if err != nil {
		return err
	}
	err = d.inDir(r, name, true, func(od *openDir, base string) error {
		unlock, err := lockDir(ctx, od.root, ".")
		if err != nil {
			return err
		}
		defer unlock()
		fi, err := lstat(od.root, base)
		switch {
		case err != nil:
			return err
		case fileVersion(fi) != version:
			return fmt.Errorf("filestore: %q was replaced since version %s: %w", name, version, core.ErrConflict)
		}
		return d.write(ctx, r, od, name, base, body, size, opts)
	})
	if errors.Is(err, core.ErrNotFound) {
		return fmt.Errorf("filestore: %q was removed since version %s: %w", name, version, core.ErrConflict)
	}
	return err
}

// prepare checks the arguments of a Put, and returns the handle on the
// directory, creating it if it is missing.
func (d *Driver) prepare(ctx context.Context, name string, size int64, opts store.PutOptions) (*os.Root, error) {
	if err := check(ctx, name); err != nil {
		return nil, err
	}
	if size < 0 {
		return nil, fmt.Errorf("filestore: negative size %d: %w", size, core.ErrInvalid)
	}
	if opts.SHA256 != nil && len(opts.SHA256) != sha256.Size {
		return nil, fmt.Errorf("filestore: PutOptions.SHA256 holds %d bytes, want %d: %w", len(opts.SHA256), sha256.Size, core.ErrInvalid)
	}
	d.settle(name)
	return d.open(true)
}

// write stores body under name, the file base of od, through a temporary
// file, synced, then renamed over base, or linked to it for a create-only
// Put, and syncs the directories leading to it, from the Driver's root r,
// unless opts defers that (see syncEntries).
func (d *Driver) write(ctx context.Context, r *os.Root, od *openDir, name, base string, body io.ReaderAt, size int64, opts store.PutOptions) error {
	tmp := tempName()
	f, err := od.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return osError(err)
	}
	renamed := false
	defer func() {
		if renamed {
			return
		}
		// Not renamed, or linked (a create-only Put): the temporary name
		// goes, through the Driver's root if the handle was dropped
		// meanwhile (see inDir).
		if err := od.root.Remove(tmp); errors.Is(err, fs.ErrClosed) {
			r.Remove(path.Join(path.Dir(name), tmp))
		}
	}()
	err = writeBody(ctx, f, body, size, opts.SHA256, d.keepCache)
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
		err = od.root.Link(tmp, base)
		if errors.Is(err, fs.ErrExist) {
			return errExists
		}
	} else {
		err = od.root.Rename(tmp, base)
		renamed = err == nil
	}
	if err != nil {
		return osError(err)
	}
	return d.syncEntries(r, od, name, opts)
}

// syncEntries makes durable the entry of name, just written into od, and
// those of the directories leading to it, from the Driver's root r, or,
// if opts defers that, records those directories for the next Sync.
func (d *Driver) syncEntries(r *os.Root, od *openDir, name string, opts store.PutOptions) error {
	dir := path.Dir(name)
	if opts.DeferSync {
		d.mu.Lock()
		for p := range dirsOf(name) {
			// The first identity written into stays: if the directory
			// was replaced since, Sync reports it.
			if id, seen := d.dirty[p]; !seen || id == nil && p == dir {
				d.dirty[p] = dirID(p, dir, od)
			}
		}
		d.mu.Unlock()
		return nil
	}
	for p := range dirsOf(name) {
		if err := d.syncDir(r, p, dirID(p, dir, od)); err != nil {
			return err
		}
	}
	return nil
}

// dirID returns the identity of od, the handle on dir, if p is dir, and
// nil otherwise.
func dirID(p, dir string, od *openDir) fs.FileInfo {
	if p == dir {
		return od.id
	}
	return nil
}

// Sync makes every Put with PutOptions.DeferSync that has returned
// durable (see [store.Syncer]): it commits the staged files (see
// [Driver.Put]), then syncs the entries of the directories written since
// the last Sync, and of the directories leading to them. It fails if a
// staged file could not be made durable or named since the last Sync.
// Other Puts are durable when they return.
func (d *Driver) Sync(ctx context.Context) error {
	staged := d.commitStaged()
	d.mu.Lock()
	dirs := d.dirty
	d.dirty = map[string]fs.FileInfo{}
	d.mu.Unlock()
	if len(dirs) == 0 {
		return staged
	}
	err := d.syncAll(ctx, dirs)
	if err != nil {
		d.mu.Lock()
		for dir, id := range dirs { // try them all again next time
			if _, seen := d.dirty[dir]; !seen {
				d.dirty[dir] = id
			}
		}
		d.mu.Unlock()
		return errors.Join(staged, fmt.Errorf("filestore: sync %d directories: %w", len(dirs), err))
	}
	return staged
}

// syncAll syncs dirs, syncParallel at once, and removes from it those
// done and those found replaced (see syncDir), which no retry would make
// good.
func (d *Driver) syncAll(ctx context.Context, dirs map[string]fs.FileInfo) error {
	r, err := d.open(false)
	if err != nil {
		return err
	}
	type pending struct {
		dir string
		id  fs.FileInfo
	}
	todo := make([]pending, 0, len(dirs))
	for dir, id := range dirs {
		todo = append(todo, pending{dir, id})
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(syncParallel)
	for _, t := range todo {
		dir, id := t.dir, t.id
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			err := d.syncDir(r, dir, id)
			if err == nil || errors.Is(err, core.ErrConflict) {
				mu.Lock()
				delete(dirs, dir)
				mu.Unlock()
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		return err
	}
	return nil
}

var errExists = fmt.Errorf("filestore: %w", core.ErrExists)

// errNoUnnamed is createUnnamed's answer where unnamed files cannot be
// made: the Put then goes through a temporary file.
var errNoUnnamed = errors.New("filestore: no unnamed files here")

// errNoStage is stage's answer for a Put it does not stage: the Put then
// syncs its file itself.
var errNoStage = errors.New("filestore: not staged")

// Get opens the object name for reading (see [store.Driver.Get]). ctx
// governs the opening only.
func (d *Driver) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	return d.openFile(ctx, name)
}

// GetRange opens length bytes of the object name from offset for reading
// (see [store.Driver.GetRange]). ctx governs the opening only.
func (d *Driver) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("filestore: range of %d bytes from %d: %w", length, offset, core.ErrInvalid)
	}
	f, err := d.openFile(ctx, name)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, offset, length), f}, nil
}

// openFile opens the regular file name.
func (d *Driver) openFile(ctx context.Context, name string) (*os.File, error) {
	if err := check(ctx, name); err != nil {
		return nil, err
	}
	d.settle(name)
	r, err := d.open(false)
	if err != nil {
		return nil, err
	}
	// Root.Open follows symbolic links inside the root: check that name is
	// a regular file, open it, and make sure the file opened is the one
	// checked. A concurrent Put may replace it in between: try again.
	var f *os.File
	err = d.inDir(r, name, false, func(od *openDir, base string) error {
		for range openAttempts {
			fi, err := lstat(od.root, base)
			if err != nil {
				return err
			}
			f, err = od.root.Open(base)
			if err != nil {
				return osError(err)
			}
			if ofi, err := f.Stat(); err == nil && os.SameFile(fi, ofi) {
				return nil
			}
			f.Close()
		}
		return fmt.Errorf("filestore: %q was replaced %d times while being opened: %w", name, openAttempts, core.ErrConflict)
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Stat returns the attributes of the object name.
func (d *Driver) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	if err := check(ctx, name); err != nil {
		return store.ObjectInfo{}, err
	}
	d.settle(name)
	r, err := d.open(false)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	var fi fs.FileInfo
	err = d.inDir(r, name, false, func(od *openDir, base string) error {
		fi, err = lstat(od.root, base)
		return err
	})
	if err != nil {
		return store.ObjectInfo{}, err
	}
	return store.ObjectInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime(), Version: fileVersion(fi)}, nil
}

// Delete removes the object name. Directories it leaves empty stay.
func (d *Driver) Delete(ctx context.Context, name string) error {
	if err := check(ctx, name); err != nil {
		return err
	}
	d.settle(name)
	r, err := d.open(false)
	if err != nil {
		return err
	}
	return d.inDir(r, name, false, func(od *openDir, base string) error {
		if _, err := lstat(od.root, base); err != nil {
			return err
		}
		return osError(od.root.Remove(base))
	})
}

// List calls fn for every regular file whose name starts with prefix (see
// [store.Driver.List]), at any depth. It reads only the directories that
// can hold such names, and skips symbolic links and every file and
// directory whose name starts with '.', temporary files among them.
func (d *Driver) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	if err := store.ValidPrefix(prefix); err != nil {
		return err
	}
	d.settle("")
	if err := ctx.Err(); err != nil {
		return err
	}
	r, err := d.open(false)
	if err != nil {
		return err
	}
	start := "."
	for p := range parents(prefix) {
		err := checkDir(r, p)
		if errors.Is(err, core.ErrNotFound) || errors.Is(err, core.ErrInvalidPath) {
			return nil // missing, or not a directory: holds no objects
		}
		if err != nil {
			return err
		}
		start = p
	}
	return walk(ctx, r, start, prefix, func(name string, typ fs.FileMode) error {
		if !typ.IsRegular() || strings.HasPrefix(path.Base(name), ".") {
			return nil
		}
		fi, err := r.Lstat(name)
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

// DefaultStaleAge is the age from which [Driver.CleanStale] removes the
// temporary files of writers that are gone, when given no other.
const DefaultStaleAge = time.Hour

// instance tells this process's temporary files from those of an earlier
// process that had the same id.
var instance = rand.Text()[:8]

// tempOwner is the part of a temporary file's name that names its
// writer: the process id and instance.
var tempOwner = strconv.Itoa(os.Getpid()) + "-" + instance + "-"

// tempName returns a new name for a temporary file: tempPrefix, the
// writer's process id and instance, and a random part.
func tempName() string {
	return tempPrefix + tempOwner + rand.Text()
}

// tempOwnerLive reports whether the temporary file name may belong to a
// Put still running: one of this process, or of another process alive on
// this machine. Names without an owner (of older versions) have none.
func tempOwnerLive(name string) bool {
	pid, rest, ok := strings.Cut(strings.TrimPrefix(name, tempPrefix), "-")
	inst, _, ok2 := strings.Cut(rest, "-")
	n, err := strconv.Atoi(pid)
	if !ok || !ok2 || err != nil || n <= 0 {
		return false
	}
	if n == os.Getpid() {
		return inst == instance // else an earlier process with our id
	}
	return processAlive(n)
}

// CleanStale removes the temporary files that Puts interrupted by a crash
// or a kill left behind, and returns how many it removed (see
// [store.Cleaner]). It removes a temporary file only if it was last
// written more than olderThan ago (DefaultStaleAge if olderThan ≤ 0) and
// its writer is gone: the file names its writer's process, and a file of
// this process, or of a process alive on this machine, is kept, however
// old. (On systems other than Unix, and for files written by other
// machines sharing the directory, only the age tells.) It is safe to call
// while other processes write to the directory; exporters call it as they
// start.
func (d *Driver) CleanStale(ctx context.Context, olderThan time.Duration) (int, error) {
	if olderThan <= 0 {
		olderThan = DefaultStaleAge
	}
	r, err := d.open(false)
	if err != nil {
		return 0, err
	}
	cutoff := time.Now().Add(-olderThan)
	removed := 0
	visit := func(name string, typ fs.FileMode) error {
		base := path.Base(name)
		if !typ.IsRegular() || !strings.HasPrefix(base, tempPrefix) {
			return nil
		}
		fi, err := r.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) || err == nil && (fi.ModTime().After(cutoff) || tempOwnerLive(base)) {
			return nil
		}
		if err == nil {
			err = r.Remove(name)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return osError(err)
		}
		removed++
		return nil
	}
	err = walk(ctx, r, ".", "", visit)
	if err == nil {
		err = walk(ctx, r, stagingDir, "", visit)
	}
	return removed, err
}

// walk calls visit with the name and type of every entry that is not a
// directory in dir and in the directories under dir that can hold names
// starting with prefix; dir is the deepest directory that prefix names
// whole. It never follows symbolic links, skips directories whose names
// start with '.', and descends no deeper than a valid name can reach.
func walk(ctx context.Context, r *os.Root, dir, prefix string, visit func(name string, typ fs.FileMode) error) error {
	f, err := r.Open(dir)
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
			case strings.HasPrefix(e.Name(), "."), len(name) >= store.MaxNameLength:
			case strings.HasPrefix(name+"/", prefix):
				if err := walk(ctx, r, name, prefix, visit); err != nil {
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

// check refuses a name that is not a valid object name (the Store has
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

// dirsOf yields the directories whose entries hold name, innermost first:
// "a/b", "a" then "." for "a/b/c".
func dirsOf(name string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for p := path.Dir(name); ; p = path.Dir(p) {
			if !yield(p) || p == "." {
				return
			}
		}
	}
}

// checkDir returns nil if dir is a directory and not a symbolic link.
func checkDir(r *os.Root, dir string) error {
	fi, err := r.Lstat(dir)
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
func lstat(r *os.Root, name string) (fs.FileInfo, error) {
	for p := range parents(name) {
		if err := checkDir(r, p); err != nil {
			return nil, err
		}
	}
	fi, err := r.Lstat(name)
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
func makeDirs(r *os.Root, name string) error {
	for p := range parents(name) {
		err := checkDir(r, p)
		if errors.Is(err, core.ErrNotFound) {
			err = r.Mkdir(p, 0o777)
			if errors.Is(err, fs.ErrExist) {
				err = checkDir(r, p) // created concurrently
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

// syncDir makes the entries of dir durable. If id is not nil, it is the
// directory that objects were written into: if dir is now another, they
// are not in the repository, and syncDir closes the handle on the one
// written into and fails with an error matching core.ErrConflict.
func (d *Driver) syncDir(r *os.Root, dir string, id fs.FileInfo) error {
	if runtime.GOOS == "windows" && id == nil {
		return nil // directories cannot be synced there; NTFS journals renames
	}
	f, err := r.Open(dir)
	if err != nil {
		return osError(err)
	}
	if id != nil {
		fi, err := f.Stat()
		switch {
		case err != nil:
			f.Close()
			return osError(err)
		case !os.SameFile(fi, id):
			f.Close()
			d.forgetReplaced(dir, id)
			return fmt.Errorf("filestore: directory %q was replaced while objects were written into it, which are lost: write them again: %w", dir, core.ErrConflict)
		case runtime.GOOS == "windows":
			return osError(f.Close())
		}
	}
	return closeSynced(f)
}

// syncPath makes the entries of the directory at path p durable.
func syncPath(p string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return osError(err)
	}
	return closeSynced(f)
}

// closeSynced syncs and closes f.
func closeSynced(f *os.File) error {
	err := f.Sync()
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

// openURL opens a file:///absolute/path URL. It does not create the
// directory: the first Put does.
func openURL(_ context.Context, u *url.URL) (store.Driver, error) {
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("filestore: file URL with host %q: want file:///absolute/path: %w", u.Host, core.ErrInvalid)
	}
	if u.RawQuery != "" {
		return nil, fmt.Errorf("filestore: file URL takes no query parameters: %w", core.ErrInvalid)
	}
	return New(filepath.FromSlash(u.Path), nil)
}
