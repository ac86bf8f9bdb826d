// Package repotest is the end-to-end conformance suite every storage
// backend runs through the snapshot flows: hostile keys, empty and large
// blobs, unknown sizes, corruption, tampering, concurrent exports and
// cancellation. A backend's test calls [Run] with a function that opens a
// fresh, empty repository.
package repotest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
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
	"github.com/statebucket/statebucket/visitors"
)

const (
	acct   = "123456789012"
	region = "eu-west-1"
)

// Options tune [Run] for slower backends.
type Options struct {
	// HostileKeys is how many hostile keys round-trip; 0 means 1,000.
	HostileKeys int
	// LargeBlob is the size of the large-blob case; 0 means 40 MiB, above
	// the import engine's threshold for chunked reads.
	LargeBlob int
}

// Run runs the suite. newRepo returns a fresh, empty repository for each
// subtest; the suite closes it.
func Run(t *testing.T, newRepo func(t *testing.T) *snapshot.Repo, opts *Options) {
	o := Options{HostileKeys: 1000, LargeBlob: 40 << 20}
	if opts != nil {
		if opts.HostileKeys > 0 {
			o.HostileKeys = opts.HostileKeys
		}
		if opts.LargeBlob > 0 {
			o.LargeBlob = opts.LargeBlob
		}
	}
	open := func(t *testing.T) *snapshot.Repo {
		r := newRepo(t)
		t.Cleanup(func() { r.Close() })
		return r
	}
	t.Run("HostileKeysRoundTrip", func(t *testing.T) { testHostileKeys(t, open(t), o.HostileKeys) })
	t.Run("EmptyAndLargeBlobs", func(t *testing.T) { testEmptyAndLarge(t, open(t), o.LargeBlob) })
	t.Run("SecondExportUploadsNothing", func(t *testing.T) { testSecondExport(t, open(t)) })
	t.Run("FlippedByte", func(t *testing.T) { testFlippedByte(t, open(t)) })
	t.Run("TruncatedBlob", func(t *testing.T) { testTruncated(t, open(t)) })
	t.Run("MissingBlob", func(t *testing.T) { testMissingBlob(t, open(t)) })
	t.Run("TamperedManifest", func(t *testing.T) { testTamperedManifest(t, open(t)) })
	t.Run("ConcurrentExports", func(t *testing.T) { testConcurrentExports(t, open(t)) })
	t.Run("CancelledExport", func(t *testing.T) { testCancelledExport(t, open(t)) })
	t.Run("Refs", func(t *testing.T) { testRefs(t, open(t)) })
	t.Run("PlainService", func(t *testing.T) { testPlainService(t, open(t)) })
	t.Run("VerifyReadData", func(t *testing.T) { testVerify(t, open(t)) })
	t.Run("TagMoveRace", func(t *testing.T) { testTagMoveRace(t, open(t)) })
	t.Run("RemoveAndCollect", func(t *testing.T) { testRemoveAndCollect(t, open(t)) })
}

// fill returns an object store holding n objects with hostile keys.
func hostileStore(t *testing.T, n int) *coretest.ObjectStore {
	t.Helper()
	ctx := t.Context()
	svc := coretest.NewObjectStore()
	require.NoError(t, svc.CreateBucket(ctx, acct, region, "hostile", true))
	for i, key := range coretest.HostileKeys(n, 7) {
		data := bytes.Repeat([]byte{byte(i)}, i%97) // includes empty blobs
		_, err := svc.PutObject(ctx, acct, region, "hostile", key, data)
		require.NoError(t, err)
	}
	return svc
}

func smallStore(t *testing.T) *coretest.ObjectStore {
	t.Helper()
	svc := coretest.NewObjectStore()
	_, _, err := coretest.Fill(t.Context(), svc, acct, region, coretest.FillOptions{Objects: 40, Size: 8 << 10, Seed: 3, Hostile: true})
	require.NoError(t, err)
	return svc
}

// requireSameState asserts that two services hold the same view and blobs.
func requireSameState(t *testing.T, want, got *coretest.ObjectStore) {
	t.Helper()
	wv, wb := snapshotAll(t, want)
	gv, gb := snapshotAll(t, got)
	require.Equal(t, wv, gv, "views differ")
	require.Equal(t, len(wb), len(gb), "blob counts differ")
	for k, b := range wb {
		require.True(t, bytes.Equal(b, gb[k]), "blob %q differs", k)
	}
}

func snapshotAll(t *testing.T, svc *coretest.ObjectStore) (coretest.ObjectStoreView, map[string][]byte) {
	t.Helper()
	v := &coretest.MemoryVisitor{}
	view, err := svc.SnapshotWithBlobs(t.Context(), acct, region, v)
	require.NoError(t, err)
	return view, v.Blobs()
}

func testHostileKeys(t *testing.T, r *snapshot.Repo, n int) {
	ctx := t.Context()
	src := hostileStore(t, n)
	m, err := snapshot.Export(ctx, r, src, acct, region, nil)
	require.NoError(t, err)
	require.Len(t, m.Blobs, n)

	dst := coretest.NewObjectStore()
	got, err := snapshot.Import(ctx, r, dst, acct, region, m.ID.String(), nil)
	require.NoError(t, err)
	require.Equal(t, m.ID, got.ID)
	requireSameState(t, src, dst)
}

func testEmptyAndLarge(t *testing.T, r *snapshot.Repo, large int) {
	ctx := t.Context()
	src := coretest.NewObjectStore()
	require.NoError(t, src.CreateBucket(ctx, acct, region, "b", false))
	big := make([]byte, large)
	for i := range big {
		big[i] = byte(i*7 + i>>13)
	}
	for key, data := range map[string][]byte{"empty": {}, "large": big, "one": {1}} {
		_, err := src.PutObject(ctx, acct, region, "b", key, data)
		require.NoError(t, err)
	}
	var m *manifest.Manifest
	for _, known := range []bool{false, true} {
		src.KnownSizes = known
		var err error
		m, err = snapshot.Export(ctx, r, src, acct, region, nil)
		require.NoError(t, err)
		dst := coretest.NewObjectStore()
		_, err = snapshot.Import(ctx, r, dst, acct, region, m.ID.String(), nil)
		require.NoError(t, err)
		requireSameState(t, src, dst)
	}

	// A flipped byte near the end of the large blob, which streams in
	// chunks where the driver reads ranges, still fails the import.
	e := largestEntry(m)
	rewrite(t, r, blobName(e), func(b []byte) []byte { b[len(b)-2] ^= 0x80; return b })
	dst := coretest.NewObjectStore()
	_, err := snapshot.Import(ctx, r, dst, acct, region, m.ID.String(), nil)
	require.ErrorIs(t, err, core.ErrChecksumMismatch)
	assert.Contains(t, err.Error(), fmt.Sprintf("%q", e.Key))
	n, _ := dst.Stats(acct, region)
	assert.Zero(t, n, "a failed import left objects behind")
}

func testSecondExport(t *testing.T, r *snapshot.Repo) {
	ctx := t.Context()
	svc := smallStore(t)
	var first, second visitors.Stats
	m1, err := snapshot.Export(ctx, r, svc, acct, region, &snapshot.ExportOptions{Stats: &first})
	require.NoError(t, err)
	require.Positive(t, first.Uploaded)
	m2, err := snapshot.Export(ctx, r, svc, acct, region, &snapshot.ExportOptions{Stats: &second})
	require.NoError(t, err)
	assert.Equal(t, m1.ID, m2.ID, "same state, same id")
	assert.Zero(t, second.Uploaded, "second export uploaded blobs")
	assert.Equal(t, first.Blobs, second.Blobs)
}

// largestEntry returns the entry with the largest size in m.
func largestEntry(m *manifest.Manifest) manifest.Entry {
	var e manifest.Entry
	for _, b := range m.Blobs {
		if b.Size > e.Size {
			e = b
		}
	}
	return e
}

// blobName returns the object name of the blob of e.
func blobName(e manifest.Entry) string { return repo.BlobName(e.Digest) }

// rewrite replaces a stored object's bytes with edit(old).
func rewrite(t *testing.T, r *snapshot.Repo, name string, edit func([]byte) []byte) {
	t.Helper()
	old, err := r.Store().GetBytes(t.Context(), name, 1<<30)
	require.NoError(t, err)
	require.NoError(t, r.Store().PutBytes(t.Context(), name, edit(bytes.Clone(old)), store.PutOptions{}))
}

// corruptAndImport exports a store, damages its largest blob with edit,
// and imports into a service that already holds other state.
func corruptAndImport(t *testing.T, r *snapshot.Repo, edit func([]byte) []byte) (manifest.Entry, *coretest.ObjectStore, coretest.ObjectStoreView, error) {
	ctx := t.Context()
	m, err := snapshot.Export(ctx, r, smallStore(t), acct, region, nil)
	require.NoError(t, err)
	e := largestEntry(m)
	rewrite(t, r, blobName(e), edit)

	dst := coretest.NewObjectStore()
	require.NoError(t, dst.CreateBucket(ctx, acct, region, "previous", false))
	_, err = dst.PutObject(ctx, acct, region, "previous", "state", []byte("must survive"))
	require.NoError(t, err)
	before, err := dst.Snapshot(ctx, acct, region)
	require.NoError(t, err)
	_, err = snapshot.Import(ctx, r, dst, acct, region, m.ID.String(), nil)
	return e, dst, before, err
}

func requireUnchanged(t *testing.T, svc *coretest.ObjectStore, before coretest.ObjectStoreView) {
	t.Helper()
	after, err := svc.Snapshot(t.Context(), acct, region)
	require.NoError(t, err)
	require.Equal(t, before, after, "a failed import changed the service's state")
	data, err := svc.GetObject(t.Context(), acct, region, "previous", "state")
	require.NoError(t, err)
	require.Equal(t, "must survive", string(data))
}

func testFlippedByte(t *testing.T, r *snapshot.Repo) {
	e, dst, before, err := corruptAndImport(t, r, func(b []byte) []byte { b[len(b)/2] ^= 0x20; return b })
	require.ErrorIs(t, err, core.ErrChecksumMismatch)
	var me *repo.MismatchError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, e.Key, me.Key)
	assert.Equal(t, e.Digest.String(), me.Expected)
	assert.Contains(t, err.Error(), fmt.Sprintf("%q", e.Key), "error names the key")
	requireUnchanged(t, dst, before)
}

func testTruncated(t *testing.T, r *snapshot.Repo) {
	e, dst, before, err := corruptAndImport(t, r, func(b []byte) []byte { return b[:len(b)-1] })
	require.ErrorIs(t, err, core.ErrSizeMismatch)
	var me *repo.MismatchError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, e.Key, me.Key)
	assert.Equal(t, fmt.Sprintf("%d bytes", e.Size), me.Expected)
	assert.Equal(t, fmt.Sprintf("%d bytes", e.Size-1), me.Actual)
	requireUnchanged(t, dst, before)

	// A blob that grew is caught too, without reading past size+1.
	_, dst, before, err = corruptAndImport(t, r, func(b []byte) []byte { return append(b, make([]byte, 1<<20)...) })
	require.ErrorIs(t, err, core.ErrSizeMismatch)
	requireUnchanged(t, dst, before)
}

func testMissingBlob(t *testing.T, r *snapshot.Repo) {
	ctx := t.Context()
	m, err := snapshot.Export(ctx, r, smallStore(t), acct, region, nil)
	require.NoError(t, err)
	e := largestEntry(m)
	require.NoError(t, r.Store().Delete(ctx, blobName(e)))
	_, err = snapshot.Import(ctx, r, coretest.NewObjectStore(), acct, region, m.ID.String(), nil)
	require.ErrorIs(t, err, core.ErrNotFound)
	assert.Contains(t, err.Error(), fmt.Sprintf("%q", e.Key))
	_, err = r.Verify(ctx, m.ID.String(), nil)
	require.ErrorIs(t, err, core.ErrNotFound)
}

// countingDriver counts blob reads.
type countingDriver struct {
	store.Driver
	blobGets atomic.Int64
}

func (d *countingDriver) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if _, ok := repo.ParseBlobName(name); ok {
		d.blobGets.Add(1)
	}
	return d.Driver.Get(ctx, name)
}

func testTamperedManifest(t *testing.T, r *snapshot.Repo) {
	ctx := t.Context()
	m, err := snapshot.Export(ctx, r, smallStore(t), acct, region, nil)
	require.NoError(t, err)
	e := largestEntry(m)
	counting := &countingDriver{Driver: r.Store().Driver()}
	watched := snapshot.New(store.New(counting, r.Location(), nil))

	for name, edit := range map[string]func([]byte) []byte{
		"size": func(b []byte) []byte {
			return bytes.Replace(b, fmt.Appendf(nil, `"size": %d`, e.Size), fmt.Appendf(nil, `"size": %d`, e.Size+1), 1)
		},
		"digest": func(b []byte) []byte {
			h := e.Digest.Hex()
			flipped := []byte(h)
			flipped[0] = "01"[(flipped[0]-'0'+1)%2]
			return bytes.Replace(b, []byte(h), flipped, 1)
		},
		"region": func(b []byte) []byte { return bytes.Replace(b, []byte(region), []byte("us-east-1"), 1) },
	} {
		t.Run(name, func(t *testing.T) {
			mname := repo.ManifestName(m.ID)
			orig, err := r.Store().GetBytes(ctx, mname, 1<<30)
			require.NoError(t, err)
			edited := edit(bytes.Clone(orig))
			require.NotEqual(t, orig, edited, "edit changed nothing")
			require.NoError(t, r.Store().PutBytes(ctx, mname, edited, store.PutOptions{}))
			t.Cleanup(func() { require.NoError(t, r.Store().PutBytes(ctx, mname, orig, store.PutOptions{})) })

			_, err = snapshot.Import(ctx, watched, coretest.NewObjectStore(), acct, region, m.ID.String(), nil)
			require.ErrorIs(t, err, core.ErrCorrupt)
			assert.Contains(t, err.Error(), m.ID.Hex())
			assert.Zero(t, counting.blobGets.Load(), "a blob was read from a tampered snapshot")
		})
	}
}

func testConcurrentExports(t *testing.T, r *snapshot.Repo) {
	ctx := t.Context()
	svc := smallStore(t)
	const n = 16
	ids := make([]digest.Digest, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			m, err := snapshot.Export(ctx, r, svc, acct, region, nil)
			errs[i] = err
			if err == nil {
				ids[i] = m.ID
			}
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "export %d", i)
		require.Equal(t, ids[0], ids[i])
	}
	ms, err := r.List(ctx, snapshot.Filter{})
	require.NoError(t, err)
	require.Len(t, ms, 1)
	require.Equal(t, ids[0], ms[0].ID)
	dst := coretest.NewObjectStore()
	_, err = snapshot.Import(ctx, r, dst, acct, region, snapshot.Latest, nil)
	require.NoError(t, err)
	requireSameState(t, svc, dst)
}

// cancellingVisitor cancels the export after the first batch.
func testCancelledExport(t *testing.T, r *snapshot.Repo) {
	svc := smallStore(t)
	svc.BatchSize = 4
	ctx, cancel := context.WithCancel(t.Context())
	var blobs atomic.Int64
	_, err := snapshot.Export(ctx, r, svc, acct, region, &snapshot.ExportOptions{
		Visitor: visitors.Options{OnBlob: func(visitors.Event) {
			if blobs.Add(1) == 2 {
				cancel()
			}
		}},
	})
	require.ErrorIs(t, err, context.Canceled)
	assert.Less(t, blobs.Load(), int64(12), "export went on long after cancellation")
	ms, err := r.List(t.Context(), snapshot.Filter{})
	require.NoError(t, err)
	require.Empty(t, ms, "a cancelled export left a manifest")

	// Already cancelled: nothing at all is written.
	_, err = snapshot.Export(ctx, r, svc, acct, region, nil)
	require.ErrorIs(t, err, context.Canceled)
	ms, err = r.List(t.Context(), snapshot.Filter{})
	require.NoError(t, err)
	require.Empty(t, ms)
}

func testRefs(t *testing.T, r *snapshot.Repo) {
	ctx := t.Context()
	svc := smallStore(t)
	m1, err := snapshot.Export(ctx, r, svc, acct, region, &snapshot.ExportOptions{Tag: "fixture-v1"})
	require.NoError(t, err)
	require.NoError(t, svc.CreateBucket(ctx, acct, region, "added", false))
	_, err = svc.PutObject(ctx, acct, region, "added", "new-object", []byte("changed"))
	require.NoError(t, err)
	m2, err := snapshot.Export(ctx, r, svc, acct, region, nil)
	require.NoError(t, err)
	require.NotEqual(t, m1.ID, m2.ID)
	other, err := snapshot.Export(ctx, r, svc, acct, "us-east-1", nil)
	require.NoError(t, err)

	for ref, want := range map[string]digest.Digest{
		m1.ID.String():  m1.ID,
		m1.ID.Hex():     m1.ID,
		m1.ID.Short():   m1.ID,
		"fixture-v1":    m1.ID,
		snapshot.Latest: m2.ID,
		strings.TrimSuffix(m2.ID.String(), m2.ID.Hex()[10:]): m2.ID, // with the prefix
	} {
		got, err := r.Show(ctx, ref, snapshot.Filter{Service: svc.ServiceName(), Account: acct, Region: region})
		require.NoError(t, err, "ref %q", ref)
		assert.Equal(t, want, got.ID, "ref %q", ref)
	}
	got, err := r.Show(ctx, snapshot.Latest, snapshot.Filter{Region: "us-east-1"})
	require.NoError(t, err)
	assert.Equal(t, other.ID, got.ID)

	_, err = r.Show(ctx, "no-such-tag", snapshot.Filter{})
	require.ErrorIs(t, err, core.ErrNotFound)
	_, err = r.Show(ctx, snapshot.Latest, snapshot.Filter{Service: "ec2"})
	require.ErrorIs(t, err, core.ErrNotFound)
	_, err = snapshot.Import(ctx, r, coretest.NewObjectStore(), acct, "ap-south-1", snapshot.Latest, nil)
	require.ErrorIs(t, err, core.ErrNotFound)

	tags, err := r.Tags(ctx, nil)
	require.NoError(t, err)
	require.Len(t, tags, 1)
	assert.Equal(t, m1.ID, tags[0].Snapshot)
}

func testPlainService(t *testing.T, r *snapshot.Repo) {
	ctx := t.Context()
	src := coretest.NewKV()
	require.NoError(t, src.Put(ctx, acct, region, "/app/db", "postgres://"))
	require.NoError(t, src.Put(ctx, acct, region, "/app/mode", "test"))
	m, err := snapshot.ExportState(ctx, r, src, acct, region, nil)
	require.NoError(t, err)
	require.Empty(t, m.Blobs)

	dst := coretest.NewKV()
	require.NoError(t, dst.Put(ctx, acct, region, "/other", "kept by merge"))
	_, err = snapshot.ImportState(ctx, r, dst, acct, region, m.ID.String(), &snapshot.ImportOptions{Merge: true})
	require.NoError(t, err)
	v, err := dst.Get(ctx, acct, region, "/other")
	require.NoError(t, err)
	assert.Equal(t, "kept by merge", v)
	v, err = dst.Get(ctx, acct, region, "/app/mode")
	require.NoError(t, err)
	assert.Equal(t, "test", v)

	_, err = snapshot.ImportState(ctx, r, dst, acct, region, m.ID.String(), nil)
	require.NoError(t, err)
	_, err = dst.Get(ctx, acct, region, "/other")
	require.ErrorIs(t, err, core.ErrNotFound, "restore must replace")

	// A snapshot of another service is refused.
	_, err = snapshot.Import(ctx, r, coretest.NewObjectStore(), acct, region, m.ID.String(), nil)
	require.ErrorIs(t, err, core.ErrInvalid)
}

func testVerify(t *testing.T, r *snapshot.Repo) {
	ctx := t.Context()
	m, err := snapshot.Export(ctx, r, smallStore(t), acct, region, nil)
	require.NoError(t, err)
	for _, readData := range []bool{false, true} {
		rep, err := r.Verify(ctx, m.ID.String(), &snapshot.VerifyOptions{ReadData: readData})
		require.NoError(t, err)
		assert.Equal(t, len(m.Blobs), rep.Blobs)
		assert.Empty(t, rep.Problems)
	}
	e := largestEntry(m)
	rewrite(t, r, blobName(e), func(b []byte) []byte { b[0] ^= 1; return b })
	_, err = r.Verify(ctx, m.ID.String(), nil)
	require.NoError(t, err, "a same-size corruption is only seen by reading data")
	rep, err := r.Verify(ctx, m.ID.String(), &snapshot.VerifyOptions{ReadData: true})
	require.ErrorIs(t, err, core.ErrChecksumMismatch)
	require.NotEmpty(t, rep.Problems)
	assert.True(t, errors.Is(rep.Problems[0].Err, core.ErrChecksumMismatch))
}
