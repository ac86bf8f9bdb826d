package coretest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
)

const (
	acct   = "123456789012"
	region = "eu-west-1"
)

// dataVersion returns the view of a version holding data.
func dataVersion(bucket, key, id string, modified uint64, data []byte) VersionView {
	sum := sha256.Sum256(data)
	return VersionView{
		VersionID: id,
		Modified:  modified,
		Size:      int64(len(data)),
		SHA256:    hex.EncodeToString(sum[:]),
		Blob:      RawString(BlobKey(bucket, key, id)),
	}
}

// filledStore returns a store filled by Fill in acct/region.
func filledStore(t *testing.T, opts FillOptions) *ObjectStore {
	t.Helper()
	s := NewObjectStore()
	_, _, err := Fill(t.Context(), s, acct, region, opts)
	require.NoError(t, err)
	return s
}

func mustSnapshot(t *testing.T, s *ObjectStore, accountID, region string) ObjectStoreView {
	t.Helper()
	view, err := s.Snapshot(t.Context(), accountID, region)
	require.NoError(t, err)
	return view
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	return string(data)
}

func TestCreateBucket(t *testing.T) {
	tests := []struct {
		name   string
		bucket string
		want   error
	}{
		{"plain", "photos", nil},
		{"invalid UTF-8", "b-\xff", nil},
		{"dots", "..", nil},
		{"empty", "", core.ErrInvalidPath},
		{"slash", "a/b", core.ErrInvalidPath},
		{"nul", "a\x00b", core.ErrInvalidPath},
		{"exists", "taken", core.ErrExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewObjectStore()
			require.NoError(t, s.CreateBucket(t.Context(), acct, region, "taken", false))
			err := s.CreateBucket(t.Context(), acct, region, tt.bucket, false)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
				assert.Contains(t, err.Error(), fmt.Sprintf("%q", tt.bucket))
				return
			}
			require.NoError(t, err)
		})
	}
}

func TestObjectStoreUnversioned(t *testing.T) {
	ctx := t.Context()
	s := NewObjectStore()
	require.NoError(t, s.CreateBucket(ctx, acct, region, "b", false))

	data := []byte("first")
	id, err := s.PutObject(ctx, acct, region, "b", "k", data)
	require.NoError(t, err)
	assert.Equal(t, NullVersionID, id)
	data[0] = 'X' // the store keeps its own copy
	got, err := s.GetObject(ctx, acct, region, "b", "k")
	require.NoError(t, err)
	assert.Equal(t, "first", string(got))
	got[0] = 'Y' // and hands out copies
	got, err = s.GetObject(ctx, acct, region, "b", "k")
	require.NoError(t, err)
	assert.Equal(t, "first", string(got))

	id, err = s.PutObject(ctx, acct, region, "b", "k", []byte("second!"))
	require.NoError(t, err)
	assert.Equal(t, NullVersionID, id)
	got, err = s.GetObject(ctx, acct, region, "b", "k")
	require.NoError(t, err)
	assert.Equal(t, "second!", string(got))
	n, size := s.Stats(acct, region)
	assert.Equal(t, 1, n)
	assert.EqualValues(t, 7, size)

	require.NoError(t, s.DeleteObject(ctx, acct, region, "b", "k"))
	_, err = s.GetObject(ctx, acct, region, "b", "k")
	require.ErrorIs(t, err, core.ErrNotFound)
	n, size = s.Stats(acct, region)
	assert.Zero(t, n)
	assert.Zero(t, size)
	assert.Equal(t, `{"buckets":[{"name":"b","versioned":false,"clock":2,"objects":[]}]}`, mustJSON(t, mustSnapshot(t, s, acct, region)))
}

func TestObjectStoreVersioned(t *testing.T) {
	ctx := t.Context()
	s := NewObjectStore()
	require.NoError(t, s.CreateBucket(ctx, acct, region, "v", true))
	for i, want := range []string{"v00000001", "v00000002"} {
		id, err := s.PutObject(ctx, acct, region, "v", "k", []byte{byte(i)})
		require.NoError(t, err)
		assert.Equal(t, want, id)
	}
	got, err := s.GetObject(ctx, acct, region, "v", "k")
	require.NoError(t, err)
	assert.Equal(t, []byte{1}, got)

	require.NoError(t, s.DeleteObject(ctx, acct, region, "v", "k"))
	_, err = s.GetObject(ctx, acct, region, "v", "k")
	require.ErrorIs(t, err, core.ErrNotFound)
	require.ErrorIs(t, s.DeleteObject(ctx, acct, region, "v", "k"), core.ErrNotFound)
	n, size := s.Stats(acct, region)
	assert.Equal(t, 2, n, "older versions are kept")
	assert.EqualValues(t, 2, size)

	view := mustSnapshot(t, s, acct, region)
	require.Len(t, view.Buckets, 1)
	require.Len(t, view.Buckets[0].Objects, 1)
	assert.Equal(t, []VersionView{
		dataVersion("v", "k", "v00000001", 1, []byte{0}),
		dataVersion("v", "k", "v00000002", 2, []byte{1}),
		{VersionID: "v00000003", Modified: 3, DeleteMarker: true},
	}, view.Buckets[0].Objects[0].Versions)

	id, err := s.PutObject(ctx, acct, region, "v", "k", []byte("back"))
	require.NoError(t, err)
	assert.Equal(t, "v00000004", id)
	got, err = s.GetObject(ctx, acct, region, "v", "k")
	require.NoError(t, err)
	assert.Equal(t, "back", string(got))
}

func TestObjectStoreNotFound(t *testing.T) {
	ctx := t.Context()
	s := NewObjectStore()
	require.NoError(t, s.CreateBucket(ctx, acct, region, "b", false))
	tests := []struct {
		name string
		call func() error
		want []string // quoted in the message
	}{
		{"get missing key", func() error { _, err := s.GetObject(ctx, acct, region, "b", "no\x00key"); return err }, []string{`"b"`, `"no\x00key"`}},
		{"get missing bucket", func() error { _, err := s.GetObject(ctx, acct, region, "nob", "k"); return err }, []string{`"nob"`, `"k"`}},
		{"get other region", func() error { _, err := s.GetObject(ctx, acct, "other", "b", "k"); return err }, []string{`"b"`}},
		{"put missing bucket", func() error { _, err := s.PutObject(ctx, acct, region, "nob", "k", nil); return err }, []string{`"nob"`}},
		{"delete missing key", func() error { return s.DeleteObject(ctx, acct, region, "b", "k") }, []string{`"b"`, `"k"`}},
		{"delete missing bucket", func() error { return s.DeleteObject(ctx, acct, region, "nob", "k") }, []string{`"nob"`}},
		{"list missing bucket", func() error { _, err := s.ListObjects(ctx, acct, region, "nob", ""); return err }, []string{`"nob"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			require.ErrorIs(t, err, core.ErrNotFound)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
	_, err := s.PutObject(ctx, acct, region, "b", "", nil)
	require.ErrorIs(t, err, core.ErrInvalidPath)
}

func TestListObjects(t *testing.T) {
	ctx := t.Context()
	s := NewObjectStore()
	require.NoError(t, s.CreateBucket(ctx, acct, region, "v", true))
	for _, key := range []string{"b/2", "a", "b/1", "b/gone", "c"} {
		_, err := s.PutObject(ctx, acct, region, "v", key, []byte(key))
		require.NoError(t, err)
	}
	require.NoError(t, s.DeleteObject(ctx, acct, region, "v", "b/gone"))
	infos, err := s.ListObjects(ctx, acct, region, "v", "b/")
	require.NoError(t, err)
	sum := sha256.Sum256([]byte("b/1"))
	assert.Equal(t, []ObjectInfo{
		{Key: "b/1", VersionID: "v00000003", Size: 3, SHA256: hex.EncodeToString(sum[:]), Modified: 3},
		{Key: "b/2", VersionID: "v00000001", Size: 3, SHA256: infos[1].SHA256, Modified: 1},
	}, infos)
	infos, err = s.ListObjects(ctx, acct, region, "v", "")
	require.NoError(t, err)
	assert.Len(t, infos, 4)
}

// Identical state yields identical views, whatever the order of writes to
// different buckets and keys.
func TestSnapshotDeterministic(t *testing.T) {
	opts := FillOptions{Objects: 200, Seed: 7, Hostile: true}
	a, b := filledStore(t, opts), filledStore(t, opts)
	assert.Equal(t, mustJSON(t, mustSnapshot(t, a, acct, region)), mustJSON(t, mustSnapshot(t, b, acct, region)))

	empty := mustSnapshot(t, a, "nobody", region)
	assert.Equal(t, `{"buckets":[]}`, mustJSON(t, empty))
}

// sizeVisitor records the Size of every entry.
type sizeVisitor struct {
	MemoryVisitor
	sizes []int64
}

func (v *sizeVisitor) Visit(ctx context.Context, batch []core.BlobExportEntry) error {
	for _, e := range batch {
		v.sizes = append(v.sizes, e.Size)
	}
	return v.MemoryVisitor.Visit(ctx, batch)
}

func TestSnapshotWithBlobsBatches(t *testing.T) {
	tests := []struct {
		name       string
		batchSize  int
		knownSizes bool
		objects    int
		want       []int
	}{
		{"default", 0, false, 130, []int{64, 64, 2}},
		{"default known sizes", 0, true, 64, []int{64}},
		{"one", 1, false, 3, []int{1, 1, 1}},
		{"larger than all", 100, true, 10, []int{10}},
		{"none", 0, false, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			s := NewObjectStore()
			s.BatchSize, s.KnownSizes = tt.batchSize, tt.knownSizes
			require.NoError(t, s.CreateBucket(ctx, acct, region, "b", true))
			for i := range tt.objects {
				_, err := s.PutObject(ctx, acct, region, "b", fmt.Sprintf("k%03d", i), make([]byte, i))
				require.NoError(t, err)
			}
			v := &sizeVisitor{}
			view, err := s.SnapshotWithBlobs(ctx, acct, region, v)
			require.NoError(t, err)
			assert.Equal(t, tt.want, v.BatchSizes())
			assert.Equal(t, mustJSON(t, mustSnapshot(t, s, acct, region)), mustJSON(t, view))
			require.Len(t, v.sizes, tt.objects)
			for i, size := range v.sizes {
				if tt.knownSizes {
					assert.EqualValues(t, i, size)
				} else {
					assert.EqualValues(t, -1, size)
				}
			}
			keys := v.Keys()
			for i, key := range keys {
				assert.Equal(t, BlobKey("b", fmt.Sprintf("k%03d", i), fmt.Sprintf("v%08d", i+1)), key)
			}
		})
	}
}

// visitFunc adapts a function to core.BlobVisitor; it closes every reader.
type visitFunc func(ctx context.Context, batch []core.BlobExportEntry) error

func (f visitFunc) Visit(ctx context.Context, batch []core.BlobExportEntry) error {
	for _, e := range batch {
		defer e.Reader.Close()
	}
	return f(ctx, batch)
}

func TestSnapshotWithBlobsErrors(t *testing.T) {
	ctx := t.Context()
	s := NewObjectStore()
	s.BatchSize = 2
	require.NoError(t, s.CreateBucket(ctx, acct, region, "b", false))
	for _, key := range []string{"a", "b", "c"} {
		_, err := s.PutObject(ctx, acct, region, "b", key, []byte(key))
		require.NoError(t, err)
	}

	t.Run("visitor error", func(t *testing.T) {
		calls := 0
		_, err := s.SnapshotWithBlobs(ctx, acct, region, visitFunc(func(context.Context, []core.BlobExportEntry) error {
			calls++
			return context.Canceled
		}))
		require.ErrorIs(t, err, context.Canceled)
		var sve *core.StateViewError
		require.ErrorAs(t, err, &sve)
		assert.Equal(t, core.KindBlob, sve.Kind)
		assert.Equal(t, BlobKey("b", "a", NullVersionID), sve.Key)
		assert.Equal(t, 1, calls, "no batch after a failed one")
	})
	t.Run("cancelled between batches", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		calls := 0
		_, err := s.SnapshotWithBlobs(ctx, acct, region, visitFunc(func(context.Context, []core.BlobExportEntry) error {
			calls++
			cancel()
			return nil
		}))
		require.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, 1, calls)
	})
}

// restoreFixture returns a store holding state in acct/region, a view of
// other state, and that view's blobs.
func restoreFixture(t *testing.T) (*ObjectStore, ObjectStoreView, map[string][]byte) {
	t.Helper()
	ctx := t.Context()
	src := filledStore(t, FillOptions{Objects: 20, Seed: 1, Hostile: true})
	visitor := &MemoryVisitor{}
	view, err := src.SnapshotWithBlobs(ctx, acct, region, visitor)
	require.NoError(t, err)

	dst := NewObjectStore()
	require.NoError(t, dst.CreateBucket(ctx, acct, region, "previous", false))
	_, err = dst.PutObject(ctx, acct, region, "previous", "k", []byte("old"))
	require.NoError(t, err)
	return dst, view, visitor.Blobs()
}

// sourceFunc adapts a function to core.BlobSource.
type sourceFunc func(ctx context.Context, key string) (io.ReadCloser, error)

func (f sourceFunc) Fetch(ctx context.Context, key string) (io.ReadCloser, error) { return f(ctx, key) }

type customSourceError struct{ key string }

func (e *customSourceError) Error() string { return "custom failure on " + e.key }

// closeCounter counts readers not yet closed.
type closeCounter struct {
	io.Reader
	open *int
}

func (c closeCounter) Close() error { *c.open--; return nil }

func TestRestoreWithBlobsErrors(t *testing.T) {
	errStream := errors.New("stream broke")
	tests := []struct {
		name string
		// serve returns the reader for key given its bytes, or an error;
		// empty blobs are served intact where a fault needs bytes.
		serve  func(key string, data []byte) (io.Reader, error)
		is     error
		custom bool // errors.As reaches a *customSourceError
	}{
		{"not found", func(key string, data []byte) (io.Reader, error) {
			return nil, fmt.Errorf("no %q: %w", key, core.ErrNotFound)
		}, core.ErrNotFound, false},
		{"custom error", func(key string, data []byte) (io.Reader, error) {
			return nil, &customSourceError{key}
		}, nil, true},
		{"short", func(key string, data []byte) (io.Reader, error) {
			return bytes.NewReader(data[:max(0, len(data)-1)]), nil
		}, core.ErrSizeMismatch, false},
		{"long", func(key string, data []byte) (io.Reader, error) {
			return io.MultiReader(bytes.NewReader(data), strings.NewReader("x")), nil
		}, core.ErrSizeMismatch, false},
		{"flipped byte, then a verifying source's verdict", func(key string, data []byte) (io.Reader, error) {
			bad := bytes.Clone(data)
			if len(bad) > 0 {
				bad[len(bad)/2] ^= 1
			}
			return io.MultiReader(bytes.NewReader(bad), errReader{fmt.Errorf("blob %q: %w", key, core.ErrChecksumMismatch)}), nil
		}, core.ErrChecksumMismatch, false},
		{"reader fails", func(key string, data []byte) (io.Reader, error) {
			return io.MultiReader(bytes.NewReader(data), errReader{errStream}), nil
		}, errStream, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			dst, view, blobs := restoreFixture(t)
			before := mustJSON(t, mustSnapshot(t, dst, acct, region))
			notified := 0
			cancel := dst.Notifier().Subscribe(func(context.Context, string, string, ObjectStoreView) { notified++ })
			defer cancel()

			open, fetched := 0, 0
			err := dst.RestoreWithBlobs(ctx, acct, region, view, sourceFunc(func(_ context.Context, key string) (io.ReadCloser, error) {
				fetched++
				data, ok := blobs[key]
				require.True(t, ok, "fetched %q", key)
				r, err := tt.serve(key, data)
				if err != nil {
					return nil, err
				}
				open++
				return closeCounter{r, &open}, nil
			}))
			require.Error(t, err)
			var sve *core.StateViewError
			require.ErrorAs(t, err, &sve)
			assert.Equal(t, core.KindBlob, sve.Kind)
			assert.Equal(t, ObjectStoreName, sve.Service)
			assert.Contains(t, blobs, sve.Key)
			assert.Contains(t, err.Error(), fmt.Sprintf("%q", sve.Key))
			if tt.is != nil {
				assert.ErrorIs(t, err, tt.is)
			}
			if tt.custom {
				var custom *customSourceError
				require.ErrorAs(t, err, &custom)
				assert.Equal(t, sve.Key, custom.key)
			}
			assert.Zero(t, open, "every reader is closed")
			assert.Positive(t, fetched)
			assert.Equal(t, before, mustJSON(t, mustSnapshot(t, dst, acct, region)), "state untouched")
			assert.Zero(t, notified)
			// A failed import adds nothing to the backing store.
			require.ErrorIs(t, dst.Restore(ctx, acct, region, view), core.ErrNotFound)
		})
	}
}

func TestRestoreWithBlobsCancelled(t *testing.T) {
	dst, view, blobs := restoreFixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := dst.RestoreWithBlobs(ctx, acct, region, view, NewMemorySource(blobs))
	require.ErrorIs(t, err, context.Canceled)
	_, err = dst.GetObject(t.Context(), acct, region, "previous", "k")
	require.NoError(t, err)
}

// RestoreWithBlobs imports blobs and leaves the visible state alone; the
// Restore that follows replaces the state with the view.
func TestRestoreWithBlobsThenRestore(t *testing.T) {
	ctx := t.Context()
	dst, view, blobs := restoreFixture(t)
	before := mustJSON(t, mustSnapshot(t, dst, acct, region))
	notified := 0
	defer dst.Notifier().Subscribe(func(context.Context, string, string, ObjectStoreView) { notified++ })()
	source := NewMemorySource(blobs)
	require.NoError(t, dst.RestoreWithBlobs(ctx, acct, region, view, source))
	assert.Equal(t, before, mustJSON(t, mustSnapshot(t, dst, acct, region)), "the visible state is untouched")
	assert.Zero(t, notified)
	n, _ := dst.Stats(acct, region)
	assert.Equal(t, 1, n, "imported blobs are not the state's")
	fetched := source.Fetched()
	assert.Len(t, fetched, len(blobs))
	assert.IsIncreasing(t, fetched, "fetched in view order, which is sorted")

	require.NoError(t, dst.Restore(ctx, acct, region, view))
	assert.Equal(t, 1, notified)
	_, err := dst.GetObject(ctx, acct, region, "previous", "k")
	require.ErrorIs(t, err, core.ErrNotFound, "restore replaces entirely")
	assert.Equal(t, mustJSON(t, view), mustJSON(t, mustSnapshot(t, dst, acct, region)))
	got := &MemoryVisitor{}
	_, err = dst.SnapshotWithBlobs(ctx, acct, region, got)
	require.NoError(t, err)
	assert.Equal(t, blobs, got.Blobs())

	// Version IDs continue from the restored clock.
	id, err := dst.PutObject(ctx, acct, region, "coretest-versioned", sameKey, nil)
	require.NoError(t, err)
	assert.Greater(t, id, "v00000003")
}

// Restore drops the imported blobs it did not use; Merge resolves blobs
// as Restore does.
func TestImportedBlobsAreDropped(t *testing.T) {
	ctx := t.Context()
	dst, view, blobs := restoreFixture(t)
	require.NoError(t, dst.RestoreWithBlobs(ctx, acct, region, view, NewMemorySource(blobs)))
	require.NoError(t, dst.Restore(ctx, acct, region, ObjectStoreView{}))
	err := dst.Merge(ctx, acct, region, view)
	require.ErrorIs(t, err, core.ErrNotFound)
	assert.Contains(t, err.Error(), "import them with RestoreWithBlobs first")

	require.NoError(t, dst.RestoreWithBlobs(ctx, acct, region, view, NewMemorySource(blobs)))
	require.NoError(t, dst.Merge(ctx, acct, region, view))
	assert.Equal(t, mustJSON(t, view), mustJSON(t, mustSnapshot(t, dst, acct, region)))
}

// Restoring a view whose version IDs are not drawn from the clock does not
// make later puts collide with them.
func TestPutSkipsUsedVersionIDs(t *testing.T) {
	ctx := t.Context()
	s := NewObjectStore()
	view := ObjectStoreView{Buckets: []BucketView{{
		Name: "v", Versioned: true, Clock: 1,
		Objects: []ObjectView{{Key: "k", Versions: []VersionView{dataVersion("v", "k", "v00000002", 1, []byte("x"))}}},
	}}}
	require.NoError(t, s.RestoreWithBlobs(ctx, acct, region, view, NewMemorySource(map[string][]byte{BlobKey("v", "k", "v00000002"): []byte("x")})))
	require.NoError(t, s.Restore(ctx, acct, region, view))
	id, err := s.PutObject(ctx, acct, region, "v", "k", []byte("y"))
	require.NoError(t, err)
	assert.Equal(t, "v00000003", id)
}

func TestRestoreInvalidView(t *testing.T) {
	valid := func() ObjectStoreView {
		return ObjectStoreView{Buckets: []BucketView{{
			Name: "b", Versioned: true, Clock: 3,
			Objects: []ObjectView{{Key: "k", Versions: []VersionView{
				dataVersion("b", "k", "v1", 1, []byte("one")),
				{VersionID: "v2", Modified: 2, DeleteMarker: true},
			}}},
		}}}
	}
	tests := []struct {
		name   string
		mutate func(v *ObjectStoreView)
		want   string
	}{
		{"duplicate bucket", func(v *ObjectStoreView) { v.Buckets = append(v.Buckets, v.Buckets[0]) }, `duplicate bucket "b"`},
		{"bucket with slash", func(v *ObjectStoreView) { v.Buckets[0].Name = "a/b" }, `"a/b"`},
		{"duplicate key", func(v *ObjectStoreView) {
			v.Buckets[0].Objects = append(v.Buckets[0].Objects, v.Buckets[0].Objects[0])
		}, `duplicate key "k"`},
		{"empty key", func(v *ObjectStoreView) { v.Buckets[0].Objects[0].Key = "" }, "empty key"},
		{"no versions", func(v *ObjectStoreView) { v.Buckets[0].Objects[0].Versions = nil }, "no versions"},
		{"duplicate version", func(v *ObjectStoreView) {
			o := &v.Buckets[0].Objects[0]
			o.Versions[1] = o.Versions[0]
		}, `duplicate version "v1"`},
		{"blob key of another object", func(v *ObjectStoreView) {
			v.Buckets[0].Objects[0].Versions[0].Blob = RawString(BlobKey("b", "other", "v1"))
		}, "does not name this version"},
		{"bad sha256", func(v *ObjectStoreView) { v.Buckets[0].Objects[0].Versions[0].SHA256 = "ABC" }, "sha256"},
		{"negative size", func(v *ObjectStoreView) { v.Buckets[0].Objects[0].Versions[0].Size = -1 }, "size -1"},
		{"modified after clock", func(v *ObjectStoreView) { v.Buckets[0].Clock = 1 }, "after the bucket's clock"},
		{"delete marker with blob", func(v *ObjectStoreView) {
			v.Buckets[0].Objects[0].Versions[1].Blob = RawString(BlobKey("b", "k", "v2"))
		}, "delete marker"},
		{"version ID with NUL", func(v *ObjectStoreView) { v.Buckets[0].Objects[0].Versions[1].VersionID = "v\x00" }, "NUL"},
		{"empty version ID", func(v *ObjectStoreView) { v.Buckets[0].Objects[0].Versions[1].VersionID = "" }, "version ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			s := NewObjectStore()
			view := valid()
			source := NewMemorySource(map[string][]byte{BlobKey("b", "k", "v1"): []byte("one")})
			require.NoError(t, s.RestoreWithBlobs(ctx, "other", region, view, source), "the unmutated view is valid")
			require.NoError(t, s.Restore(ctx, "other", region, view))
			before := mustJSON(t, view)

			tt.mutate(&view)
			source = NewMemorySource(nil)
			err := s.RestoreWithBlobs(ctx, acct, region, view, source)
			require.ErrorIs(t, err, core.ErrInvalid)
			var sve *core.StateViewError
			require.ErrorAs(t, err, &sve)
			assert.Equal(t, core.KindInvalid, sve.Kind)
			assert.Contains(t, err.Error(), tt.want)
			assert.Empty(t, source.Fetched(), "nothing fetched for an invalid view")
			require.ErrorIs(t, s.Merge(ctx, acct, region, view), core.ErrInvalid)
			require.ErrorIs(t, s.Restore(ctx, acct, region, view), core.ErrInvalid)
			assert.Equal(t, before, mustJSON(t, mustSnapshot(t, s, "other", region)))
		})
	}
}

// Restore and Merge without a prior RestoreWithBlobs can only use blobs
// the store holds.
func TestRestoreWithoutBlobs(t *testing.T) {
	ctx := t.Context()
	s := filledStore(t, FillOptions{Objects: 30, Seed: 3, Hostile: true})
	full := mustSnapshot(t, s, acct, region)

	// Its own view restores, and a subset drops the rest.
	require.NoError(t, s.Restore(ctx, acct, region, full))
	assert.Equal(t, mustJSON(t, full), mustJSON(t, mustSnapshot(t, s, acct, region)))
	subset := ObjectStoreView{Buckets: full.Buckets[:1]}
	require.NoError(t, s.Restore(ctx, acct, region, subset))
	assert.Equal(t, mustJSON(t, subset), mustJSON(t, mustSnapshot(t, s, acct, region)))

	// Blobs it no longer holds, or under another account, are not found.
	for _, accountID := range []string{acct, "other"} {
		err := s.Restore(ctx, accountID, region, full)
		require.ErrorIs(t, err, core.ErrNotFound)
		var sve *core.StateViewError
		require.ErrorAs(t, err, &sve)
		assert.Equal(t, core.KindBlob, sve.Kind)
		require.ErrorIs(t, s.Merge(ctx, accountID, region, full), core.ErrNotFound)
	}
	assert.Equal(t, mustJSON(t, subset), mustJSON(t, mustSnapshot(t, s, acct, region)))

	// A held version whose recorded hash or size differs names no bytes
	// the store holds.
	for _, tamper := range []func(v *VersionView){
		func(v *VersionView) { v.SHA256 = strings.Repeat("0", 64) },
		func(v *VersionView) { v.Size++ },
	} {
		tampered := mustSnapshot(t, s, acct, region)
		v := &tampered.Buckets[0].Objects[len(tampered.Buckets[0].Objects)-1].Versions[0]
		tamper(v)
		err := s.Restore(ctx, acct, region, tampered)
		require.ErrorIs(t, err, core.ErrNotFound)
		assert.Contains(t, err.Error(), fmt.Sprintf("%q", v.Blob))
	}
	assert.Equal(t, mustJSON(t, subset), mustJSON(t, mustSnapshot(t, s, acct, region)))
}

func TestMergeNeverDeletes(t *testing.T) {
	ctx := t.Context()
	s := NewObjectStore()
	require.NoError(t, s.CreateBucket(ctx, acct, region, "b", false))
	require.NoError(t, s.CreateBucket(ctx, acct, region, "v", true))
	for _, key := range []string{"x", "y"} {
		_, err := s.PutObject(ctx, acct, region, "b", key, []byte(key))
		require.NoError(t, err)
		_, err = s.PutObject(ctx, acct, region, "v", key, []byte(key))
		require.NoError(t, err)
	}
	early := mustSnapshot(t, s, acct, region)
	_, err := s.PutObject(ctx, acct, region, "b", "z", []byte("z"))
	require.NoError(t, err)
	_, err = s.PutObject(ctx, acct, region, "v", "x", []byte("x2"))
	require.NoError(t, err)
	late := mustSnapshot(t, s, acct, region)

	tests := []struct {
		name string
		view ObjectStoreView
	}{
		{"zero view", ObjectStoreView{}},
		{"empty view", ObjectStoreView{Buckets: []BucketView{}}},
		{"earlier view", early},
		{"bucket without objects", ObjectStoreView{Buckets: []BucketView{{Name: "b"}}}},
		{"same view", late},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, s.Merge(ctx, acct, region, tt.view))
			assert.Equal(t, mustJSON(t, late), mustJSON(t, mustSnapshot(t, s, acct, region)))
		})
	}

	t.Run("adds", func(t *testing.T) {
		view := ObjectStoreView{Buckets: []BucketView{
			{Name: "new", Versioned: true, Clock: 9, Objects: []ObjectView{{Key: "gone", Versions: []VersionView{{VersionID: "v9", Modified: 9, DeleteMarker: true}}}}},
			{Name: "v", Versioned: false, Clock: 1, Objects: []ObjectView{{Key: "x", Versions: []VersionView{{VersionID: "old-marker", Modified: 1, DeleteMarker: true}}}}},
		}}
		require.NoError(t, s.Merge(ctx, acct, region, view))
		got := mustSnapshot(t, s, acct, region)
		require.Len(t, got.Buckets, 3)
		assert.Equal(t, view.Buckets[0], got.Buckets[1], "sorted between \"b\" and \"v\"")
		vb := got.Buckets[2]
		assert.False(t, vb.Versioned, "a bucket in both takes the view's versioning")
		assert.Equal(t, late.Buckets[1].Clock, vb.Clock, "and the larger clock")
		x := vb.Objects[0].Versions
		require.Len(t, x, 3)
		assert.Equal(t, "old-marker", x[0].VersionID, "versions are ordered by modification")
		data, err := s.GetObject(ctx, acct, region, "v", "x")
		require.NoError(t, err)
		assert.Equal(t, "x2", string(data))
	})
}
