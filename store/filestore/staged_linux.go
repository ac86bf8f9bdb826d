package filestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/statebucket/statebucket/store"
)

const (
	// stageMax is the largest body a deferred Put stages (see
	// [Driver.stage]): past it, a file's own sync costs little beside its
	// writes, and a group of them would hold much unwritten data.
	stageMax = 256 << 10
	// groupFiles and groupBytes bound a group of staged files: its files
	// stay open until it commits, and its bytes in the page cache.
	groupFiles = 1024
	groupBytes = 64 << 20
)

// staging is a Driver's group of staged files, those written by deferred
// Puts (see [Driver.stage]) that the next commit makes durable and names.
type staging struct {
	mu    sync.Mutex
	files []stagedFile
	bytes int64
	names map[string]int // the names of the files staged and not committed yet
	limit int            // the files a group takes before it commits; 0: stage none
	err   error          // the failures of the commits since the last Sync

	commit sync.Mutex // held while a group is taken and committed or discarded
}

// stagedFile is a file written for a deferred Put, not synced yet and
// under a temporary name: tmp in the staging directory sd, or in od where
// sd is nil, for the object name, base in od.
type stagedFile struct {
	od, sd     *openDir // referenced until the commit (see Driver.release)
	fd         int      // open until the commit, so that its check sees any failure to write it back
	tmp, base  string
	name       string
	createOnly bool
}

// dir returns the directory f's temporary file is in.
func (f *stagedFile) dir() *openDir {
	if f.sd != nil {
		return f.sd
	}
	return f.od
}

// tmpPath returns the path of f's temporary file in the Driver's root.
func (f *stagedFile) tmpPath() string {
	if f.sd != nil {
		return path.Join(stagingDir, f.tmp)
	}
	return path.Join(path.Dir(f.name), f.tmp)
}

// init sets the group's size: groupFiles, or fewer where the limit on
// open files is low, since a group's files stay open.
func (s *staging) init() {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	s.limit = int(min(uint64(groupFiles), lim.Cur/8))
	if s.limit < 16 {
		s.limit = 0
	}
}

// batchable reports whether the file system of the directory open at fd
// makes a whole group of files durable in one sync (syncfs): one of the
// local file systems known to sync everything written, data and
// metadata, and to rename without replacing (RENAME_NOREPLACE). Elsewhere
// (network and FUSE file systems among them) each file is synced on its
// own. journaled reports whether it is also one whose journal records a
// rename between two directories as one transaction, committed in order
// with the others and by a sync of either directory (ext4, XFS): files
// staged for the directory can then wait in the staging directory (see
// stagingFor).
func batchable(fd int) (batch, journaled bool) {
	var st unix.Statfs_t
	if unix.Fstatfs(fd, &st) != nil {
		return false, false
	}
	switch uint32(st.Type) {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC:
		return true, true
	case unix.BTRFS_SUPER_MAGIC, unix.TMPFS_MAGIC, unix.F2FS_SUPER_MAGIC:
		return true, false
	}
	return false, false
}

// stagingFor returns the handle on the staging directory, creating it
// the first time, for a file staged for od; nil if the file is to wait in
// od itself: where od's file system does not journal renames between
// directories (see batchable), where the staging directory is on another
// file system or cannot be made, and where od was removed. The caller
// releases the handle.
//
// A staged file waits under a temporary name, and is renamed to its
// object's name once its group is durable. In od, that temporary name
// goes in and out of od's entries, which in a repository holding many
// blobs are spread over many blocks: each file then dirties two blocks of
// its directory, in two commits of the journal, where one file written
// under its name dirties one. Exporting 10,000 blobs into a repository
// holding 1,000,000 took 1.6 times as long as into an empty one that
// way, 1.25 times now; the staging directory holds only the files
// waiting, and stays small (docs/benchmarks.md).
func (d *Driver) stagingFor(od *openDir) *openDir {
	var st unix.Stat_t
	if !od.journaled || unix.Fstat(od.fd, &st) != nil || st.Nlink == 0 {
		// A directory removed since its handle was opened takes no
		// file: staging in it fails as a Put there does, and the Put
		// opens it anew (see inDir).
		return nil
	}
	r, err := d.open(false)
	if err != nil {
		return nil
	}
	sd, err := d.dirFor(r, stagingDir, true)
	if err != nil {
		return nil
	}
	if !sd.journaled || deviceOf(sd.id) != deviceOf(od.id) {
		d.release(sd)
		return nil
	}
	return sd
}

// stage stores body for a Put of name, base in od, deferred to the next
// Sync (opts.DeferSync): it writes body to a temporary file, in the
// staging directory or in od (see stagingFor), checking opts.SHA256, and
// does not sync it. The file takes its name only once a group of them
// is durable, in one sync of the file system instead of one per file:
// when the group is full, in the Put that fills it, and at Sync. Until
// then the object is out of its name: an operation of this Driver on it
// commits the group first (see settle), other Drivers and processes do
// not find it, and a crash leaves only temporary files, which CleanStale
// removes. A create-only Put checks the name when it runs (Put has) and
// again at the commit: a name another writer took in between keeps that
// writer's object, and this Put's bytes are dropped.
//
// It returns errNoStage, having done nothing, for a Put it does not
// stage: one not deferred, a body over stageMax, a folder whose file
// system is not batchable, or the Driver's root.
func (d *Driver) stage(ctx context.Context, od *openDir, name, base string, body io.ReaderAt, size int64, opts store.PutOptions) error {
	if !opts.DeferSync || size > stageMax || !od.batch || d.staged.limit == 0 {
		return errNoStage
	}
	f := stagedFile{od: od, sd: d.stagingFor(od), tmp: tempName(), base: base, name: name, createOnly: opts.CreateOnly}
	dir := f.dir()
	err := ignoringEINTR(func() (err error) {
		f.fd, err = unix.Openat(dir.fd, f.tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o666)
		return err
	})
	if err == nil {
		// Not synced here, and small: its pages stay in the cache.
		if err = writeBody(ctx, &unsyncedFile{unnamedFile{fd: f.fd, name: name}}, body, size, opts.SHA256, true); err == nil {
			err = ctx.Err()
		}
		if err != nil {
			unix.Close(f.fd)
			unix.Unlinkat(dir.fd, f.tmp, 0)
		}
	} else {
		err = osError(&fs.PathError{Op: "create", Path: f.tmpPath(), Err: err})
	}
	if err != nil {
		if f.sd != nil {
			d.release(f.sd)
		}
		return err
	}
	d.mu.Lock()
	od.refs++
	d.mu.Unlock()
	if d.staged.add(f, size) {
		return d.flush()
	}
	return nil
}

// add adds f, of size bytes, to the group, and reports whether the group
// is full: the caller commits it.
func (s *staging) add(f stagedFile, size int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files = append(s.files, f)
	s.bytes += size
	if s.names == nil {
		s.names = map[string]int{}
	}
	s.names[f.name]++
	return len(s.files) >= s.limit || s.bytes >= groupBytes
}

// take returns the group and starts a new one. The caller holds s.commit
// and commits or discards the group before it lets go: a name staged and
// not committed is then either in the group or in the hands of the
// holder of s.commit, which is what lets settle wait for it.
func (s *staging) take() []stagedFile {
	s.mu.Lock()
	defer s.mu.Unlock()
	group := s.files
	s.files, s.bytes = nil, 0
	return group
}

// forget removes name, committed or discarded, from the names staged.
func (s *staging) forget(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.names[name]--; s.names[name] <= 0 {
		delete(s.names, name)
	}
}

// commit makes the files of group durable, with one sync of each file
// system they are on, checks that each was written back, and gives each
// its name, recording its directories for the next Sync, as a deferred
// Put does (see syncEntries). A file that fails is removed. The failures
// are returned, and kept for the next Sync to report: the Puts of the
// other files of the group have returned already. The caller holds
// d.staged.commit.
func (d *Driver) commit(group []stagedFile) error {
	var errs []error
	synced := map[uint64]error{} // by device
	for _, f := range group {
		dev := deviceOf(f.od.id)
		err, done := synced[dev]
		if !done {
			err = ignoringEINTR(func() error { return unix.Syncfs(f.od.fd) })
			synced[dev] = err
		}
		if err == nil {
			// The sync wrote the file back; this reports a failure to
			// write it, which the sync of a whole file system may have
			// reported to another writer instead.
			err = ignoringEINTR(func() error {
				return unix.SyncFileRange(f.fd, 0, 0, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
			})
		}
		if err == nil {
			err = f.rename()
		}
		unix.Close(f.fd)
		d.staged.forget(f.name)
		if err != nil {
			unix.Unlinkat(f.dir().fd, f.tmp, 0)
			errs = append(errs, osError(&fs.PathError{Op: "sync", Path: f.name, Err: err}))
		} else {
			_ = d.syncEntries(nil, f.od, f.name, store.PutOptions{DeferSync: true})
		}
		d.releaseStaged(f)
	}
	err := errors.Join(errs...)
	if err != nil {
		err = fmt.Errorf("filestore: %d of %d deferred writes failed, and are not stored: %w", len(errs), len(group), err)
		d.staged.mu.Lock()
		d.staged.err = errors.Join(d.staged.err, err)
		d.staged.mu.Unlock()
	}
	return err
}

// rename gives f its name: over the object, or, for a create-only Put,
// only if the name is free; a name taken meanwhile keeps its object, and
// f is removed.
func (f *stagedFile) rename() error {
	from := f.dir().fd
	if !f.createOnly {
		return unix.Renameat(from, f.tmp, f.od.fd, f.base)
	}
	err := unix.Renameat2(from, f.tmp, f.od.fd, f.base, unix.RENAME_NOREPLACE)
	if err == unix.EEXIST {
		unix.Unlinkat(from, f.tmp, 0)
		return nil
	}
	return err
}

// releaseStaged ends f's use of its directories.
func (d *Driver) releaseStaged(f stagedFile) {
	d.release(f.od)
	if f.sd != nil {
		d.release(f.sd)
	}
}

// settle commits the group, after any commit under way, if a file staged
// for name is not committed yet, so that an operation on name finds what
// the Puts that returned stored: the Driver reads its own writes. An
// empty name settles every staged file. The failures of the commit are
// left for Sync to report: the object is missing meanwhile.
func (d *Driver) settle(name string) {
	d.staged.mu.Lock()
	staged := d.staged.names[name] > 0 || name == "" && len(d.staged.names) > 0
	d.staged.mu.Unlock()
	if staged {
		_ = d.flush() // kept for Sync to report
	}
}

// flush commits the group, after the commit under way, and returns the
// failures of this commit.
func (d *Driver) flush() error {
	d.staged.commit.Lock()
	defer d.staged.commit.Unlock()
	if group := d.staged.take(); len(group) > 0 {
		return d.commit(group)
	}
	return nil
}

// commitStaged commits the group (after any commit under way) and returns
// the failures of the commits since the last call.
func (d *Driver) commitStaged() error {
	_ = d.flush() // kept in d.staged.err
	d.staged.mu.Lock()
	defer d.staged.mu.Unlock()
	err := d.staged.err
	d.staged.err = nil
	return err
}

// discardStaged removes the files of the group, which no Sync will
// commit: the Driver is closing.
func (d *Driver) discardStaged() {
	d.staged.commit.Lock()
	defer d.staged.commit.Unlock()
	for _, f := range d.staged.take() {
		unix.Close(f.fd)
		unix.Unlinkat(f.dir().fd, f.tmp, 0)
		d.staged.forget(f.name)
		d.releaseStaged(f)
	}
}

// deviceOf returns the device of the directory fi.
func deviceOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Dev
	}
	return 0
}

// unsyncedFile is a staged file being written: its sync is the commit's.
type unsyncedFile struct{ unnamedFile }

func (*unsyncedFile) Sync() error { return nil }
