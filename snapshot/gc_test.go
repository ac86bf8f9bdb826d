package snapshot_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
)

// bucketStore returns an object store holding objects (key: content) in
// one bucket of account a, region r.
func bucketStore(t *testing.T, objects map[string]string) *coretest.ObjectStore {
	t.Helper()
	ctx := t.Context()
	svc := coretest.NewObjectStore()
	require.NoError(t, svc.CreateBucket(ctx, "a", "r", "b", false))
	for k, v := range objects {
		_, err := svc.PutObject(ctx, "a", "r", "b", k, []byte(v))
		require.NoError(t, err)
	}
	return svc
}

// blobDigests returns the digests of the stored blobs.
func blobDigests(t *testing.T, r *repo.Repo) map[digest.Digest]bool {
	t.Helper()
	blobs := map[digest.Digest]bool{}
	require.NoError(t, r.ListBlobs(t.Context(), func(d digest.Digest, _ int64) error {
		blobs[d] = true
		return nil
	}))
	return blobs
}

// requireWholeSnapshots checks that every listed snapshot of r has its
// view and every blob, with the recorded digests.
func requireWholeSnapshots(t *testing.T, r *snapshot.Repo) []*manifest.Manifest {
	t.Helper()
	ms, err := r.List(t.Context(), snapshot.Filter{})
	require.NoError(t, err)
	for _, m := range ms {
		_, err := r.Verify(t.Context(), m.ID.String(), &snapshot.VerifyOptions{ReadData: true})
		require.NoError(t, err, "committed snapshot %s is not whole", m.ID.Short())
	}
	return ms
}

// hookDriver calls hook once, before the n-th call that reaches it (from
// 1), and counts the calls. It passes conditional writes on.
type hookDriver struct {
	store.Driver
	n     int64
	calls atomic.Int64
	hook  func()
}

func (d *hookDriver) call() {
	if d.calls.Add(1) == d.n && d.hook != nil {
		d.hook()
	}
}

func (d *hookDriver) Put(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions) error {
	d.call()
	return d.Driver.Put(ctx, name, body, size, opts)
}

func (d *hookDriver) PutIfMatch(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions, version string) error {
	d.call()
	return d.Driver.(store.ConditionalPutter).PutIfMatch(ctx, name, body, size, opts, version)
}

func (d *hookDriver) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	d.call()
	return d.Driver.Get(ctx, name)
}

func (d *hookDriver) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	d.call()
	return d.Driver.Stat(ctx, name)
}

func (d *hookDriver) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	d.call()
	return d.Driver.List(ctx, prefix, fn)
}

func (d *hookDriver) Delete(ctx context.Context, name string) error {
	d.call()
	return d.Driver.Delete(ctx, name)
}

func (d *hookDriver) Sync(ctx context.Context) error {
	d.call()
	return d.Driver.(store.Syncer).Sync(ctx)
}

// clock is time.Now moved by an offset a test sets.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// interleaving is one run of TestGCInterleavedWithExport.
type interleaving struct {
	exportErr, gcErr error
	gcRan            bool
}

// runInterleaved prepares a repository in a fresh directory (a snapshot
// exported and removed, so that its blobs are garbage which the export
// that follows finds stored and does not upload again), then exports a
// state sharing blobs with it, running a garbage collection before the
// n-th call of the export reaches the store (never if n is 0). With stale
// set, the clock first jumps past the stale age of locks, as if the
// exporter had been suspended that long.
//
// With parent set, the first snapshot stays until the n-th call, and is
// the head the export finds, its parent: the export takes the shared
// blobs for stored on its word, uploading nothing of them. Before the
// n-th call the snapshot is removed, and then a collection runs. That
// cannot leave the export's commit without those blobs: the export reads
// the parent's manifest holding its shared lock, so the blobs it records
// stay stored until the lock goes; a collection either refuses (the lock
// is live), or took the lock for stale, and the export then withdraws its
// commit when it checks its lock (see docs/design.md, "Deduplication").
func runInterleaved(t *testing.T, n int64, stale, parent bool) (interleaving, int64) {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	clk := &clock{}
	open := func(drv store.Driver) *snapshot.Repo {
		return snapshot.FromRepo(repo.New(store.New(drv, dir, nil), &repo.Options{Now: clk.now}))
	}
	fs := func() store.Driver {
		drv, err := filestore.New(dir, nil)
		require.NoError(t, err)
		return drv
	}
	setup := open(fs())
	defer setup.Close()
	old, err := snapshot.Export(ctx, setup, bucketStore(t, map[string]string{"a1": "shared one", "a2": "shared two", "a3": "old three", "a4": "old four"}), "a", "r", nil)
	require.NoError(t, err)
	if !parent {
		_, err = setup.Remove(ctx, []string{old.ID.String()}, nil)
		require.NoError(t, err)
	}

	var res interleaving
	drv := &hookDriver{Driver: fs(), n: n, hook: func() {
		if stale {
			clk.offset.Store(int64(repo.DefaultLockStaleAge + time.Minute))
		}
		collector := open(fs())
		defer collector.Close()
		if parent {
			_, err := collector.Remove(ctx, []string{old.ID.String()}, nil)
			require.NoError(t, err)
		}
		res.gcRan = true
		_, res.gcErr = collector.GC(ctx, &snapshot.GCOptions{Grace: -1})
	}}
	exporter := open(drv)
	defer exporter.Close()
	svc := bucketStore(t, map[string]string{"a1": "shared one", "a2": "shared two", "b1": "new one", "b2": "new two"})
	m, exportErr := snapshot.Export(ctx, exporter, svc, "a", "r", nil)
	res.exportErr = exportErr

	// Whatever happened, no committed snapshot lacks a blob.
	ms := requireWholeSnapshots(t, setup)
	if parent && n == 0 {
		ms = slices.DeleteFunc(ms, func(m *manifest.Manifest) bool { return m.ID == old.ID })
	}
	if exportErr == nil {
		require.Len(t, ms, 1, "the export's snapshot is listed")
		assert.Equal(t, m.ID, ms[0].ID)
	} else {
		require.ErrorIs(t, exportErr, core.ErrConflict, "an export fails cleanly, on its lock")
		assert.Empty(t, ms, "a failed export leaves no snapshot")
	}
	if res.gcErr != nil {
		require.ErrorIs(t, res.gcErr, core.ErrConflict, "a collection refuses, on the export's lock")
		assert.Contains(t, res.gcErr.Error(), "shared lock")
	}
	return res, drv.calls.Load()
}

// TestGCInterleavedWithExport runs a garbage collection at every step of
// an export: before each call the export makes to the store (taking its
// lock, reading its head and parent, between the blob uploads, before and
// after the commit, writing its head, releasing its lock), once with no
// parent and once with a parent removed just before the collection (see
// runInterleaved). With the export's lock live,
// the collection refuses to start; with the clock moved past the lock's
// stale age (an exporter suspended that long), the collection runs and
// the export fails on its lost lock, withdrawing a commit it made, or
// both succeed. Either way no committed manifest ever references a
// missing blob.
func TestGCInterleavedWithExport(t *testing.T) {
	for _, parent := range []bool{false, true} {
		t.Run(fmt.Sprintf("parent=%t", parent), func(t *testing.T) { testGCInterleavedWithExport(t, parent) })
	}
}

func testGCInterleavedWithExport(t *testing.T, parent bool) {
	_, calls := runInterleaved(t, 0, false, parent)
	require.Greater(t, calls, int64(8), "the export's calls to the store")
	outcomes := map[string]int{}
	for _, stale := range []bool{false, true} {
		for n := int64(1); n <= calls; n++ {
			t.Run(fmt.Sprintf("stale=%t/call=%d", stale, n), func(t *testing.T) {
				res, _ := runInterleaved(t, n, stale, parent)
				require.True(t, res.gcRan)
				switch {
				case res.gcErr != nil && res.exportErr != nil:
					t.Fatalf("both failed: gc: %v; export: %v", res.gcErr, res.exportErr)
				case res.gcErr != nil:
					outcomes["gc refused"]++
				case res.exportErr != nil && strings.Contains(res.exportErr.Error(), "withdrawn"):
					outcomes["export withdrew its commit"]++
				case res.exportErr != nil:
					outcomes["export failed"]++
				default:
					outcomes["both succeeded"]++
				}
			})
		}
	}
	t.Logf("%d interleavings of gc with an export of %d store calls: %v", 2*calls, calls, outcomes)
	assert.Positive(t, outcomes["gc refused"])
	assert.Positive(t, outcomes["export failed"])
	assert.Positive(t, outcomes["export withdrew its commit"])
	assert.Positive(t, outcomes["both succeeded"])
}

// After rm of every snapshot, gc leaves no blob and no view; a dry run
// before it reports the same and deletes nothing.
func TestRemoveEverythingThenGC(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "repo")
	r, err := snapshot.Open(ctx, dir)
	require.NoError(t, err)
	defer r.Close()
	layer := repo.New(r.Store(), nil)
	var refs []string
	for i := range 3 {
		svc := coretest.NewObjectStore()
		_, _, err := coretest.Fill(ctx, svc, "a", "r", coretest.FillOptions{Objects: 20, Size: 4 << 10, Seed: int64(i % 2), Hostile: true})
		require.NoError(t, err)
		svc.PutObject(ctx, "a", "r", "extra", fmt.Sprint(i), []byte(fmt.Sprint(i)))
		m, err := snapshot.Export(ctx, r, svc, "a", "r", &snapshot.ExportOptions{Tag: fmt.Sprintf("v%d", i)})
		require.NoError(t, err)
		refs = append(refs, m.ID.Hex()[:12])
	}
	removed, err := r.Remove(ctx, refs, nil)
	require.NoError(t, err)
	require.Len(t, removed, 2, "two exports of one seed are one snapshot")
	tags, err := r.Tags(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, tags, "the tags of removed snapshots are removed")
	ms, err := r.List(ctx, snapshot.Filter{})
	require.NoError(t, err)
	assert.Empty(t, ms)

	stored := blobDigests(t, layer)
	require.NotEmpty(t, stored)
	dry, err := r.GC(ctx, &snapshot.GCOptions{DryRun: true, Grace: -1})
	require.NoError(t, err)
	assert.Equal(t, len(stored), dry.Blobs.Objects)
	assert.Equal(t, stored, blobDigests(t, layer), "a dry run deletes nothing")

	var deleted atomic.Int64
	rep, err := r.GC(ctx, &snapshot.GCOptions{Grace: -1, OnDelete: func(int64) { deleted.Add(1) }})
	require.NoError(t, err)
	assert.Equal(t, dry.Blobs, rep.Blobs)
	assert.Zero(t, rep.Views.Objects, "rm removed the views")
	assert.Equal(t, int64(len(stored)), deleted.Load())
	assert.Empty(t, blobDigests(t, layer), "gc left blobs")
	var views int
	require.NoError(t, layer.ListViews(ctx, func(repo.Object) error { views++; return nil }))
	assert.Zero(t, views)
	locks, err := layer.Locks(ctx)
	require.NoError(t, err)
	assert.Empty(t, locks, "gc released its lock")

	again, err := r.GC(ctx, &snapshot.GCOptions{Grace: -1})
	require.NoError(t, err)
	assert.Zero(t, again.Blobs.Objects)
}

// gc keeps what committed snapshots reference and what is younger than
// the grace period, and removes orphan views, stale temporary files and
// stale locks.
func TestGCKeepsWhatIsReferencedOrYoung(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "repo")
	clk := &clock{}
	fs, err := filestore.New(dir, nil)
	require.NoError(t, err)
	layer := repo.New(store.New(fs, dir, nil), &repo.Options{Now: clk.now})
	r := snapshot.FromRepo(layer)
	defer r.Close()

	kept, err := snapshot.Export(ctx, r, bucketStore(t, map[string]string{"k1": "kept one", "k2": "shared"}), "a", "r", nil)
	require.NoError(t, err)
	gone, err := snapshot.Export(ctx, r, bucketStore(t, map[string]string{"g1": "gone one", "k2": "shared"}), "a", "r", nil)
	require.NoError(t, err)
	_, err = r.Remove(ctx, []string{gone.ID.String()}, &snapshot.RemoveOptions{KeepTags: true})
	require.NoError(t, err)
	// An export that never committed left a view; a crash left a
	// temporary file, and a stale lock.
	orphan := manifestOf(t, "orphan view")
	require.NoError(t, layer.PutView(ctx, orphan, []byte("orphan view")))
	tmp := filepath.Join(dir, "blobs", ".tmp-CRASHED")
	require.NoError(t, os.WriteFile(tmp, []byte("partial"), 0o666))
	old := time.Now().Add(-2 * time.Hour)
	require.NoError(t, os.Chtimes(tmp, old, old))
	staleLock, err := repo.New(store.New(fs, dir, nil), &repo.Options{Now: func() time.Time { return time.Now().Add(-time.Hour) }}).Lock(ctx, repo.SharedLock)
	require.NoError(t, err)
	defer staleLock.Unlock(ctx)

	// Within the grace period, nothing unreferenced goes.
	rep, err := r.GC(ctx, &snapshot.GCOptions{Grace: time.Hour})
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Snapshots)
	assert.Equal(t, 2, rep.Referenced.Objects)
	assert.Zero(t, rep.Blobs.Objects)
	assert.Equal(t, 2, rep.Young.Objects, "the unreferenced blob and the orphan view")
	assert.Equal(t, 1, rep.TempFiles)
	require.Len(t, rep.StaleLocks, 1)
	assert.Equal(t, staleLock.Info().ID, rep.StaleLocks[0].ID)
	assert.NoFileExists(t, tmp)

	// Past it, they go.
	clk.offset.Store(int64(2 * time.Hour))
	rep, err = r.GC(ctx, &snapshot.GCOptions{Grace: time.Hour})
	require.NoError(t, err)
	assert.Equal(t, snapshot.Count{Objects: 1, Bytes: int64(len("gone one"))}, rep.Blobs)
	assert.Equal(t, snapshot.Count{Objects: 1, Bytes: int64(len("orphan view"))}, rep.Views)
	assert.Zero(t, rep.Young.Objects)
	assert.Len(t, blobDigests(t, layer), 2)
	ms := requireWholeSnapshots(t, r)
	require.Len(t, ms, 1)
	assert.Equal(t, kept.ID, ms[0].ID)
}

// manifestOf returns the manifest of a snapshot whose view is view.
func manifestOf(t *testing.T, view string) *manifest.Manifest {
	t.Helper()
	m, err := manifest.New("kv", "a", "r", manifest.Object{Digest: digest.FromBytes([]byte(view)), Size: int64(len(view))}, nil)
	require.NoError(t, err)
	return m
}

// withGarbage returns a repository holding the blobs and view of a
// removed snapshot, and its repository layer.
func withGarbage(t *testing.T) (*snapshot.Repo, *repo.Repo) {
	t.Helper()
	r := openTemp(t)
	m := exportKV(t, r, "/k", "v")
	_, err := r.Remove(t.Context(), []string{m.ID.String()}, nil)
	require.NoError(t, err)
	return r, repo.New(r.Store(), nil)
}

// gc refuses to start while an export holds a live lock, naming it, and
// deletes nothing; a dry run says it would refuse.
func TestGCRefusesWhileExportsRun(t *testing.T) {
	ctx := t.Context()
	r, layer := withGarbage(t)
	export, err := layer.Lock(ctx, repo.SharedLock)
	require.NoError(t, err)
	defer export.Unlock(ctx)

	_, err = r.GC(ctx, &snapshot.GCOptions{Grace: -1})
	require.ErrorIs(t, err, core.ErrConflict)
	assert.Contains(t, err.Error(), export.Info().ID)
	dry, err := r.GC(ctx, &snapshot.GCOptions{DryRun: true, Grace: -1})
	require.NoError(t, err)
	require.Len(t, dry.LiveLocks, 1)
	assert.Equal(t, export.Info().ID, dry.LiveLocks[0].ID)
	locks, err := layer.Locks(ctx)
	require.NoError(t, err)
	assert.Len(t, locks, 1, "the refused gc left no lock")
}

// A manifest that cannot be read stops gc before it deletes anything: the
// blobs it references are unknown. rm removes it by its id.
func TestGCStopsAtAnInvalidManifest(t *testing.T) {
	ctx := t.Context()
	r, layer := withGarbage(t)
	_, err := snapshot.Export(ctx, r, bucketStore(t, map[string]string{"x": "blob"}), "a", "r", nil)
	require.NoError(t, err)
	bad := digest.FromBytes([]byte("bad"))
	require.NoError(t, r.Store().PutBytes(ctx, repo.ManifestName(bad), []byte("{}"), store.PutOptions{}))
	before := blobDigests(t, layer)

	_, err = r.GC(ctx, &snapshot.GCOptions{Grace: -1})
	require.ErrorIs(t, err, core.ErrCorrupt)
	assert.Contains(t, err.Error(), "nothing was deleted")
	assert.Contains(t, err.Error(), "statebucket rm "+bad.Hex())
	assert.Equal(t, before, blobDigests(t, layer))

	_, err = r.Remove(ctx, []string{bad.Hex()}, nil)
	require.NoError(t, err)
	_, err = r.GC(ctx, &snapshot.GCOptions{Grace: -1})
	require.NoError(t, err)
	requireWholeSnapshots(t, r)
}

// A repository that is not there is reported by gc, not created.
func TestGCDoesNotCreateARepository(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	r, err := snapshot.Open(t.Context(), dir)
	require.NoError(t, err)
	defer r.Close()
	_, err = r.GC(t.Context(), nil)
	require.ErrorIs(t, err, core.ErrBucketNotFound)
	assert.NoDirExists(t, dir)
}

// Exports and collections at the same time, many times over: the
// invariant holds under real concurrency too.
func TestGCConcurrentWithExports(t *testing.T) {
	ctx := t.Context()
	r := openTemp(t)
	var wg sync.WaitGroup
	var exported, refused atomic.Int64
	for i := range 4 {
		wg.Go(func() {
			for j := range 5 {
				svc := bucketStore(t, map[string]string{"shared": "shared", "own": fmt.Sprint(i, j)})
				m, err := snapshot.Export(ctx, r, svc, "a", fmt.Sprint("r", i), nil)
				if err != nil {
					assert.ErrorIs(t, err, core.ErrConflict)
					continue
				}
				exported.Add(1)
				if j%2 == 0 {
					_, err = r.Remove(ctx, []string{m.ID.String()}, nil)
					assert.NoError(t, err)
				}
			}
		})
	}
	wg.Go(func() {
		for range 10 {
			if _, err := r.GC(ctx, &snapshot.GCOptions{Grace: -1}); err != nil {
				assert.ErrorIs(t, err, core.ErrConflict)
				refused.Add(1)
			}
		}
	})
	wg.Wait()
	requireWholeSnapshots(t, r)
	t.Logf("%d exports, %d of 10 collections refused", exported.Load(), refused.Load())
}
