package snapshot_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

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
	"github.com/statebucket/statebucket/visitors"
)

// filledStore returns an object store holding n objects with hostile
// keys, from seed.
func filledStore(t *testing.T, n int, seed int64) *coretest.ObjectStore {
	t.Helper()
	svc := coretest.NewObjectStore()
	_, _, err := coretest.Fill(t.Context(), svc, testAccount, testRegion, coretest.FillOptions{Objects: n, Size: 8 << 10, Seed: seed, Hostile: true})
	require.NoError(t, err)
	return svc
}

// rawManifest returns the stored bytes of the manifest of id in r.
func rawManifest(t *testing.T, r *snapshot.Repo, id digest.Digest) []byte {
	t.Helper()
	data, err := r.Store().GetBytes(t.Context(), repo.ManifestName(id), 1<<30)
	require.NoError(t, err)
	return data
}

// A copy moves a snapshot whole, byte-exact, with its tag; a second copy
// moves nothing.
func TestCopyRoundTrip(t *testing.T) {
	ctx := t.Context()
	from, to := openTemp(t), openTemp(t)
	svc := filledStore(t, 200, 1)
	key := []byte("signing key")
	m, err := snapshot.Export(ctx, from, svc, testAccount, testRegion, &snapshot.ExportOptions{Tag: "fixture", SigningKey: key})
	require.NoError(t, err)

	var events []visitors.Event
	var mu sync.Mutex
	var started int
	rep, err := snapshot.Copy(ctx, from, to, []string{"fixture"}, &snapshot.CopyOptions{
		OnStart: func(blobs int, _ int64) { started = blobs },
		Visitor: visitors.Options{OnBlob: func(e visitors.Event) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		}},
	})
	require.NoError(t, err)
	require.Len(t, rep.Snapshots, 1)
	assert.Equal(t, m.ID, rep.Snapshots[0].Manifest.ID)
	assert.False(t, rep.Snapshots[0].Existed)
	assert.Equal(t, []snapshot.CopiedTag{{Name: "fixture", Snapshot: m.ID}}, rep.Tags)
	assert.Equal(t, len(m.Blobs), rep.Blobs)
	assert.Equal(t, len(m.Blobs), started)
	assert.Len(t, events, len(m.Blobs))
	assert.Positive(t, rep.Transferred)
	assert.Equal(t, rep.Blobs, rep.Transferred+rep.Skipped)
	assert.Equal(t, rawManifest(t, from, m.ID), rawManifest(t, to, m.ID), "the manifest is copied byte-exact")

	dst := coretest.NewObjectStore()
	_, err = snapshot.Import(ctx, to, dst, testAccount, testRegion, "fixture", &snapshot.ImportOptions{
		Manifest: manifest.DecodeOptions{HMACKey: key},
	})
	require.NoError(t, err, "the signature holds on the target")
	// The id of a dry run covers the view and every blob's key and digest.
	restored, err := snapshot.Export(ctx, nil, dst, testAccount, testRegion, &snapshot.ExportOptions{DryRun: true})
	require.NoError(t, err)
	assert.Equal(t, m.ID, restored.ID, "the restored state is the exported one")
	_, err = to.Verify(ctx, m.ID.String(), &snapshot.VerifyOptions{ReadData: true})
	require.NoError(t, err)

	again, err := snapshot.Copy(ctx, from, to, []string{"fixture"}, nil)
	require.NoError(t, err)
	require.Len(t, again.Snapshots, 1)
	assert.True(t, again.Snapshots[0].Existed)
	assert.Zero(t, again.Transferred)
	assert.Zero(t, again.Blobs, "a snapshot held already is not looked at")
	assert.Empty(t, again.Tags, "the tag points there already")

	locks, err := repo.New(to.Store(), nil).Locks(ctx)
	require.NoError(t, err)
	assert.Empty(t, locks, "the copy released its lock")
}

// Only the blobs the target lacks move: a snapshot sharing most blobs
// with one the target holds transfers only the others.
func TestCopyTransfersOnlyMissingBlobs(t *testing.T) {
	ctx := t.Context()
	from, to := openTemp(t), openTemp(t)
	svc := filledStore(t, 100, 2)
	first, err := snapshot.Export(ctx, from, svc, testAccount, testRegion, nil)
	require.NoError(t, err)
	_, err = snapshot.Copy(ctx, from, to, []string{first.ID.String()}, nil)
	require.NoError(t, err)

	_, err = svc.PutObject(ctx, testAccount, testRegion, "coretest-plain", "new-object", []byte("brand new bytes"))
	require.NoError(t, err)
	second, err := snapshot.Export(ctx, from, svc, testAccount, testRegion, nil)
	require.NoError(t, err)
	rep, err := snapshot.Copy(ctx, from, to, []string{second.ID.String()}, nil)
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Transferred, "only the new blob moves")
	assert.Equal(t, int64(len("brand new bytes")), rep.TransferredBytes)
	assert.Equal(t, len(second.Blobs)-1, rep.Skipped)
}

// corruptBlob flips a byte of the largest blob of m in r and returns its
// entry.
func corruptBlob(t *testing.T, r *snapshot.Repo, m *manifest.Manifest) manifest.Entry {
	t.Helper()
	var e manifest.Entry
	for _, b := range m.Blobs {
		if b.Size > e.Size {
			e = b
		}
	}
	name := repo.BlobName(e.Digest)
	data, err := r.Store().GetBytes(t.Context(), name, 1<<30)
	require.NoError(t, err)
	data[len(data)/2] ^= 0xff
	require.NoError(t, r.Store().PutBytes(t.Context(), name, data, store.PutOptions{}))
	return e
}

// A damaged source blob fails the copy naming its key; the target holds
// no manifest and no tag of the snapshot, and no lock.
func TestCopyOfACorruptBlobCommitsNothing(t *testing.T) {
	ctx := t.Context()
	from, to := openTemp(t), openTemp(t)
	m, err := snapshot.Export(ctx, from, filledStore(t, 50, 3), testAccount, testRegion, &snapshot.ExportOptions{Tag: "fixture"})
	require.NoError(t, err)
	bad := corruptBlob(t, from, m)

	rep, err := snapshot.Copy(ctx, from, to, []string{"fixture"}, nil)
	require.ErrorIs(t, err, core.ErrChecksumMismatch)
	assert.Contains(t, err.Error(), fmt.Sprintf("%q", bad.Key), "the error names the key")
	var mm *repo.MismatchError
	require.ErrorAs(t, err, &mm)
	assert.Equal(t, bad.Key, mm.Key)
	assert.Empty(t, rep.Snapshots)
	assert.Empty(t, rep.Tags)

	ms, err := to.List(ctx, snapshot.Filter{})
	require.NoError(t, err)
	assert.Empty(t, ms, "no manifest on the target")
	tags, err := to.Tags(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, tags, "no tag on the target")
	locks, err := repo.New(to.Store(), nil).Locks(ctx)
	require.NoError(t, err)
	assert.Empty(t, locks)
	_, err = to.Store().Stat(ctx, repo.BlobName(bad.Digest))
	require.ErrorIs(t, err, core.ErrNotFound, "the damaged blob was stored")
}

// Refs name snapshots by tag, id, id prefix and latest (under the
// filter); refs naming one snapshot copy it once, and every tag pointing
// at a copied snapshot comes along.
func TestCopyRefs(t *testing.T) {
	ctx := t.Context()
	from := openTemp(t)
	a := exportKV(t, from, "a", "x")
	b := exportKV(t, from, "b", "y")
	_, err := from.Tag(ctx, "tag-a", a.ID.String(), nil)
	require.NoError(t, err)
	_, err = from.Tag(ctx, "other-a", a.ID.String(), nil)
	require.NoError(t, err)
	_, err = from.Tag(ctx, "tag-b", b.ID.String(), nil)
	require.NoError(t, err)
	kv := coretest.NewKV()
	require.NoError(t, kv.Put(ctx, "other-account", "r", "c", "z"))
	c, err := snapshot.ExportState(ctx, from, kv, "other-account", "r", nil)
	require.NoError(t, err)
	newest, err := from.Show(ctx, snapshot.Latest, snapshot.Filter{Account: "a"})
	require.NoError(t, err)

	for _, tc := range []struct {
		name   string
		refs   []string
		filter snapshot.Filter
		want   []digest.Digest
	}{
		{"tag", []string{"tag-a"}, snapshot.Filter{}, []digest.Digest{a.ID}},
		{"full id and prefix, once", []string{b.ID.String(), b.ID.Hex()[:8]}, snapshot.Filter{}, []digest.Digest{b.ID}},
		{"latest under a filter", []string{snapshot.Latest}, snapshot.Filter{Account: "a"}, []digest.Digest{newest.ID}},
		{"latest of another filter", []string{snapshot.Latest}, snapshot.Filter{Account: "other-account"}, []digest.Digest{c.ID}},
		{"several", []string{"tag-b", "tag-a"}, snapshot.Filter{}, []digest.Digest{b.ID, a.ID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to := openTemp(t)
			rep, err := snapshot.Copy(ctx, from, to, tc.refs, &snapshot.CopyOptions{Filter: tc.filter})
			require.NoError(t, err)
			var got []digest.Digest
			for _, s := range rep.Snapshots {
				got = append(got, s.Manifest.ID)
			}
			assert.Equal(t, tc.want, got)
			ms, err := to.List(ctx, snapshot.Filter{})
			require.NoError(t, err)
			assert.Len(t, ms, len(tc.want))
			tags, err := to.Tags(ctx, nil)
			require.NoError(t, err)
			for _, tag := range tags {
				assert.Contains(t, tc.want, tag.Snapshot)
			}
			for _, s := range rep.Snapshots {
				n := map[digest.Digest]int{a.ID: 2, b.ID: 1, c.ID: 0}[s.Manifest.ID] // tag-a and other-a; tag-b
				count := 0
				for _, tag := range tags {
					if tag.Snapshot == s.Manifest.ID {
						count++
					}
				}
				assert.Equal(t, n, count, "tags of %s", s.Manifest.ID.Short())
			}
		})
	}

	to := openTemp(t)
	_, err = snapshot.Copy(ctx, from, to, []string{"no-such-tag"}, nil)
	require.ErrorIs(t, err, core.ErrNotFound)
	assert.Contains(t, err.Error(), "no-such-tag")
	_, err = snapshot.Copy(ctx, from, to, nil, nil)
	require.ErrorIs(t, err, core.ErrInvalid)

	rep, err := snapshot.Copy(ctx, from, to, []string{"tag-a"}, &snapshot.CopyOptions{NoTags: true})
	require.NoError(t, err)
	assert.Empty(t, rep.Tags)
	tags, err := to.Tags(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, tags, "NoTags copies no tag")
}

// A tag the target has pointing elsewhere follows the source, and the
// report says where it pointed.
func TestCopyMovesTagsToFollowTheSource(t *testing.T) {
	ctx := t.Context()
	from, to := openTemp(t), openTemp(t)
	a := exportKV(t, from, "a", "x")
	old := exportKV(t, to, "b", "y")
	_, err := from.Tag(ctx, "fixture", a.ID.String(), nil)
	require.NoError(t, err)
	_, err = to.Tag(ctx, "fixture", old.ID.String(), nil)
	require.NoError(t, err)

	rep, err := snapshot.Copy(ctx, from, to, []string{"fixture"}, nil)
	require.NoError(t, err)
	assert.Equal(t, []snapshot.CopiedTag{{Name: "fixture", Snapshot: a.ID, Previous: old.ID}}, rep.Tags)
	m, err := to.Show(ctx, "fixture", snapshot.Filter{})
	require.NoError(t, err)
	assert.Equal(t, a.ID, m.ID)
}

// The copy holds a shared lock on the target while blobs move, and an
// exclusive lock there (a collection running) stops it before it writes.
func TestCopyLocksTheTarget(t *testing.T) {
	ctx := t.Context()
	from, to := openTemp(t), openTemp(t)
	m, err := snapshot.Export(ctx, from, filledStore(t, 20, 4), testAccount, testRegion, nil)
	require.NoError(t, err)
	layer := repo.New(to.Store(), nil)

	gc, err := layer.Lock(ctx, repo.ExclusiveLock)
	require.NoError(t, err)
	_, err = snapshot.Copy(ctx, from, to, []string{m.ID.String()}, nil)
	require.ErrorIs(t, err, core.ErrConflict)
	assert.Contains(t, err.Error(), gc.Info().ID)
	require.NoError(t, gc.Unlock(ctx))

	var mu sync.Mutex
	var seen [][]repo.LockInfo
	_, err = snapshot.Copy(ctx, from, to, []string{m.ID.String()}, &snapshot.CopyOptions{Visitor: visitors.Options{OnBlob: func(visitors.Event) {
		locks, err := layer.Locks(ctx)
		assert.NoError(t, err)
		mu.Lock()
		seen = append(seen, locks)
		mu.Unlock()
	}}})
	require.NoError(t, err)
	require.NotEmpty(t, seen)
	for _, locks := range seen {
		require.Len(t, locks, 1)
		assert.Equal(t, repo.SharedLock, locks[0].Kind)
	}
}

// writeDriver fails the test on any call that could change the store,
// and counts the others.
type writeDriver struct {
	store.Driver
	t     *testing.T
	mu    sync.Mutex
	calls int
}

func (d *writeDriver) touch(op string) {
	d.mu.Lock()
	d.calls++
	d.mu.Unlock()
	d.t.Errorf("a dry run called %s", op)
}

func (d *writeDriver) Put(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions) error {
	d.touch("Put " + name)
	return d.Driver.Put(ctx, name, body, size, opts)
}

func (d *writeDriver) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	d.touch("Get " + name)
	return d.Driver.Get(ctx, name)
}

func (d *writeDriver) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	d.touch("Stat " + name)
	return d.Driver.Stat(ctx, name)
}

func (d *writeDriver) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	d.touch("List " + prefix)
	return d.Driver.List(ctx, prefix, fn)
}

func (d *writeDriver) Delete(ctx context.Context, name string) error {
	d.touch("Delete " + name)
	return d.Driver.Delete(ctx, name)
}

// A dry run touches no storage at all, not even a directory that does
// not exist, and returns the id the real export then commits.
func TestDryRunReturnsTheIDTheExportCommits(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "repo")
	fs, err := filestore.New(dir, nil)
	require.NoError(t, err)
	drv := &writeDriver{Driver: fs, t: t}
	dry := snapshot.New(store.New(drv, "dry", nil))
	svc := filledStore(t, 150, 5)

	var stats visitors.Stats
	key := []byte("k")
	m, err := snapshot.Export(ctx, dry, svc, testAccount, testRegion, &snapshot.ExportOptions{DryRun: true, Tag: "fixture", SigningKey: key, Stats: &stats})
	require.NoError(t, err)
	assert.Zero(t, drv.calls)
	assert.Equal(t, len(m.Blobs), stats.Blobs)
	assert.Zero(t, stats.Uploaded)
	_, err = os.Stat(dir)
	require.ErrorIs(t, err, os.ErrNotExist, "a dry run created the repository")
	require.NoError(t, m.VerifySignature(key), "a dry run signs as the export does")

	kv := coretest.NewKV()
	require.NoError(t, kv.Put(ctx, "a", "r", "/k", "v"))
	kvm, err := snapshot.ExportState(ctx, dry, kv, "a", "r", &snapshot.ExportOptions{DryRun: true})
	require.NoError(t, err)
	assert.Zero(t, drv.calls)

	real := openTemp(t)
	committed, err := snapshot.Export(ctx, real, svc, testAccount, testRegion, nil)
	require.NoError(t, err)
	assert.Equal(t, m.ID, committed.ID)
	assert.True(t, m.Equal(committed))
	kvCommitted, err := snapshot.ExportState(ctx, real, kv, "a", "r", nil)
	require.NoError(t, err)
	assert.Equal(t, kvm.ID, kvCommitted.ID)

	// A dry run needs no repository at all.
	noRepo, err := snapshot.Export(ctx, nil, svc, testAccount, testRegion, &snapshot.ExportOptions{DryRun: true})
	require.NoError(t, err)
	assert.Equal(t, m.ID, noRepo.ID)
	noRepo, err = snapshot.ExportState(ctx, nil, kv, "a", "r", &snapshot.ExportOptions{DryRun: true})
	require.NoError(t, err)
	assert.Equal(t, kvm.ID, noRepo.ID)
	_, err = snapshot.Export(ctx, nil, svc, testAccount, testRegion, nil)
	require.ErrorIs(t, err, core.ErrInvalid, "a real export needs a repository")
}

// A dry run of a service whose blob reader fails fails too, naming the
// key.
func TestDryRunFailsOnABadBlob(t *testing.T) {
	_, err := snapshot.Export(t.Context(), openTemp(t), badBlobStore{coretest.NewObjectStore()}, testAccount, testRegion, &snapshot.ExportOptions{DryRun: true})
	require.ErrorIs(t, err, core.ErrSizeMismatch)
	assert.Contains(t, err.Error(), `"bad"`)
}

// badBlobStore exports one blob whose reader gives fewer bytes than
// announced.
type badBlobStore struct{ *coretest.ObjectStore }

func (badBlobStore) SnapshotWithBlobs(ctx context.Context, _, _ string, v core.BlobVisitor) (coretest.ObjectStoreView, error) {
	err := v.Visit(ctx, []core.BlobExportEntry{{Key: "bad", Reader: io.NopCloser(bytes.NewReader([]byte("ab"))), Size: 3}})
	return coretest.ObjectStoreView{}, err
}
