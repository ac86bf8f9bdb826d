package repo_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
)

// getsDriver records the names a driver is asked to read.
type getsDriver struct {
	store.Driver
	mu   sync.Mutex
	gets []string
}

func (d *getsDriver) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	d.mu.Lock()
	d.gets = append(d.gets, name)
	d.mu.Unlock()
	return d.Driver.Get(ctx, name)
}

func (d *getsDriver) read() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.gets)
}

// newRepo returns a repository in a fresh directory, and the driver
// under it.
func newRepo(t *testing.T, opts *store.Options) (*repo.Repo, *getsDriver) {
	t.Helper()
	fs, err := filestore.New(t.TempDir(), nil)
	require.NoError(t, err)
	drv := &getsDriver{Driver: fs}
	r := repo.New(store.New(drv, "test", opts), nil)
	t.Cleanup(func() { r.Close() })
	return r, drv
}

// newManifest returns the manifest of a snapshot of view holding blobs.
func newManifest(t *testing.T, view []byte, blobs ...manifest.Entry) *manifest.Manifest {
	t.Helper()
	m, err := manifest.New("s3", "123456789012", "eu-west-1", manifest.Object{Digest: digest.FromBytes(view), Size: int64(len(view))}, blobs)
	require.NoError(t, err)
	return m
}

// commit stores view, blobs (by content) and the manifest of a snapshot.
func commit(t *testing.T, r *repo.Repo, view string, blobs ...string) *manifest.Manifest {
	t.Helper()
	ctx := t.Context()
	var entries []manifest.Entry
	for i, b := range blobs {
		d := digest.FromBytes([]byte(b))
		require.NoError(t, r.PutBlob(ctx, d, strings.NewReader(b), int64(len(b))))
		entries = append(entries, manifest.Entry{Key: string(rune('a' + i)), Digest: d, Size: int64(len(b))})
	}
	m := newManifest(t, []byte(view), entries...)
	require.NoError(t, r.Sync(ctx))
	require.NoError(t, r.PutView(ctx, m, []byte(view)))
	stored, err := r.CommitManifest(ctx, m)
	require.NoError(t, err)
	require.Equal(t, m, stored)
	return m
}

func TestBlobs(t *testing.T) {
	ctx := t.Context()
	r, _ := newRepo(t, nil)
	data := []byte("hello, blob")
	d := digest.FromBytes(data)
	require.NoError(t, r.PutBlob(ctx, d, bytes.NewReader(data), int64(len(data))))
	// Something else under blobs/ is not a blob.
	require.NoError(t, r.Store().PutBytes(ctx, "blobs/sha256/README", []byte("x"), store.PutOptions{}))

	got := map[digest.Digest]int64{}
	require.NoError(t, r.ListBlobs(ctx, func(d digest.Digest, size int64) error { got[d] = size; return nil }))
	assert.Equal(t, map[digest.Digest]int64{d: int64(len(data))}, got)

	size, err := r.StatBlob(ctx, d)
	require.NoError(t, err)
	assert.Equal(t, int64(len(data)), size)

	rc, err := r.OpenBlob(ctx, d)
	require.NoError(t, err)
	all, err := io.ReadAll(rc)
	require.NoError(t, rc.Close())
	require.NoError(t, err)
	assert.Equal(t, data, all)

	rc, err = r.OpenBlobRange(ctx, d, 7, 4)
	require.NoError(t, err)
	part, err := io.ReadAll(rc)
	require.NoError(t, rc.Close())
	require.NoError(t, err)
	assert.Equal(t, "blob", string(part))

	// The store checks the digest: bytes that do not match are not stored.
	other := digest.FromBytes([]byte("other"))
	require.ErrorIs(t, r.PutBlob(ctx, other, bytes.NewReader(data), int64(len(data))), core.ErrChecksumMismatch)
	_, err = r.StatBlob(ctx, other)
	require.ErrorIs(t, err, core.ErrNotFound)

	for _, bad := range []digest.Digest{"", digest.Digest(d.Hex()), "sha256:ABC"} {
		assert.ErrorIs(t, r.PutBlob(ctx, bad, bytes.NewReader(nil), 0), core.ErrInvalid, "%q", bad)
		_, err := r.OpenBlob(ctx, bad)
		assert.ErrorIs(t, err, core.ErrInvalid, "%q", bad)
		_, err = r.OpenBlobRange(ctx, bad, 0, 1)
		assert.ErrorIs(t, err, core.ErrInvalid, "%q", bad)
		_, err = r.StatBlob(ctx, bad)
		assert.ErrorIs(t, err, core.ErrInvalid, "%q", bad)
	}
}

func TestViews(t *testing.T) {
	ctx := t.Context()
	r, drv := newRepo(t, nil)
	view := []byte(`{"buckets":[]}`)
	m := newManifest(t, view)
	require.ErrorIs(t, r.PutView(ctx, m, []byte(`{"buckets":{}}`)), core.ErrInvalid, "a view that is not the manifest's")
	require.NoError(t, r.PutView(ctx, m, view))
	got, err := r.ReadView(ctx, m)
	require.NoError(t, err)
	assert.Equal(t, view, got)

	for _, tc := range []struct {
		name, stored string
		want         error
		read         bool // the object is read: its size is right
	}{
		{"same size, other bytes", `{"buckets":{}}`, core.ErrChecksumMismatch, true},
		{"shorter", `{}`, core.ErrSizeMismatch, false},
		{"longer", string(view) + strings.Repeat(" ", 1<<20), core.ErrSizeMismatch, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, r.Store().PutBytes(ctx, repo.ViewName(m.ID), []byte(tc.stored), store.PutOptions{}))
			before := len(drv.read())
			_, err := r.ReadView(ctx, m)
			require.ErrorIs(t, err, tc.want)
			var me *repo.MismatchError
			require.ErrorAs(t, err, &me)
			assert.True(t, me.View)
			assert.Equal(t, repo.ViewName(m.ID), me.Key)
			assert.Contains(t, err.Error(), m.ID.Hex())
			assert.Equal(t, tc.read, len(drv.read()) > before, "whether the view was read")
		})
	}
}

func TestReadManifest(t *testing.T) {
	ctx := t.Context()
	r, drv := newRepo(t, nil)
	m := commit(t, r, `{"v":1}`, "one", "two")
	got, err := r.ReadManifest(ctx, m.ID, nil)
	require.NoError(t, err)
	assert.True(t, m.Equal(got))

	_, err = r.ReadManifest(ctx, digest.FromBytes([]byte("none")), nil)
	require.ErrorIs(t, err, core.ErrNotFound)
	_, err = r.ReadManifest(ctx, "sha256:x", nil)
	require.ErrorIs(t, err, core.ErrInvalid)

	// Over the cap: refused as bad data before a byte is read.
	before := len(drv.read())
	_, err = r.ReadManifest(ctx, m.ID, &manifest.DecodeOptions{MaxBytes: 100})
	require.ErrorIs(t, err, core.ErrCorrupt)
	assert.NotErrorIs(t, err, core.ErrInvalid)
	assert.Contains(t, err.Error(), repo.ManifestName(m.ID))
	assert.Contains(t, err.Error(), "100-byte limit")
	assert.Equal(t, before, len(drv.read()), "an oversized manifest was read")

	// A huge sparse manifest is refused the same way, whatever the cap.
	big := digest.FromBytes([]byte("big"))
	path := filepath.Join(drv.Driver.(*filestore.Driver).Root(), filepath.FromSlash(repo.ManifestName(big)))
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(manifest.DefaultMaxBytes+1))
	require.NoError(t, f.Close())
	_, err = r.ReadManifest(ctx, big, nil)
	require.ErrorIs(t, err, core.ErrCorrupt)
	assert.Equal(t, before, len(drv.read()), "an oversized manifest was read")

	// A valid manifest stored under another id.
	other := commit(t, r, `{"v":2}`)
	data, err := manifest.Encode(other)
	require.NoError(t, err)
	require.NoError(t, r.Store().PutBytes(ctx, repo.ManifestName(m.ID), data, store.PutOptions{}))
	_, err = r.ReadManifest(ctx, m.ID, nil)
	require.ErrorIs(t, err, core.ErrCorrupt)
	assert.Contains(t, err.Error(), "stored under another id")
}

// Reading a manifest takes its size from the budget: a manifest larger
// than the budget's bytes still reads, alone.
func TestReadManifestWithinBudget(t *testing.T) {
	ctx := t.Context()
	r, _ := newRepo(t, &store.Options{Budget: store.NewBudget(1, 64)})
	m := commit(t, r, strings.Repeat("x", 200), "one", "two", "three")
	got, err := r.ReadManifest(ctx, m.ID, nil)
	require.NoError(t, err)
	assert.True(t, m.Equal(got))
	// Every byte went back: the whole budget can be taken again.
	assert.True(t, r.Budget().TryAcquireBytes(64))
}

func TestCommitManifest(t *testing.T) {
	ctx := t.Context()
	r, _ := newRepo(t, nil)
	m := commit(t, r, `{"v":1}`, "one")
	// Committing again, as a concurrent exporter of the same state or a
	// retried request would, reads the stored manifest back.
	again := *m
	again.Created = m.Created.Add(1)
	stored, err := r.CommitManifest(ctx, &again)
	require.NoError(t, err)
	assert.Equal(t, m.Created, stored.Created, "the stored manifest is returned")

	// A damaged manifest in the way is reported, not overwritten.
	require.NoError(t, r.Store().PutBytes(ctx, repo.ManifestName(m.ID), []byte("{}"), store.PutOptions{}))
	_, err = r.CommitManifest(ctx, m)
	require.ErrorIs(t, err, core.ErrCorrupt)
	assert.Contains(t, err.Error(), "reading it back")
}

func TestListAndResolve(t *testing.T) {
	ctx := t.Context()
	r, _ := newRepo(t, nil)
	a := commit(t, r, `{"v":"a"}`)
	b := commit(t, r, `{"v":"b"}`)
	// A view without its manifest is no snapshot, nor is a stray object.
	abandoned := newManifest(t, []byte(`{"v":"abandoned"}`))
	require.NoError(t, r.PutView(ctx, abandoned, []byte(`{"v":"abandoned"}`)))
	require.NoError(t, r.Store().PutBytes(ctx, "snapshots/notes/manifest.json", []byte("{}"), store.PutOptions{}))

	ids, err := r.ListSnapshots(ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, []digest.Digest{a.ID, b.ID}, ids)

	_, err = r.WriteTag(ctx, "fixture", a.ID, nil)
	require.NoError(t, err)
	for ref, want := range map[string]digest.Digest{
		string(a.ID):   a.ID,
		a.ID.Hex():     a.ID,
		a.ID.Short():   a.ID,
		b.ID.Hex()[:8]: b.ID,
		strings.TrimSuffix(b.ID.String(), b.ID.Hex()[12:]): b.ID,
		"fixture": a.ID,
	} {
		got, err := r.Resolve(ctx, ref, nil)
		require.NoError(t, err, "%q", ref)
		assert.Equal(t, want, got, "%q", ref)
	}
	for ref, why := range map[string]string{
		"no-such-tag": `no tag "no-such-tag"`,
		"abc":         `no tag "abc"`,
		"latest":      "neither a tag nor an id prefix",
		"a b":         "neither a tag nor an id prefix",
		"sha256:xyz":  "neither a tag nor an id prefix",
	} {
		_, err := r.Resolve(ctx, ref, nil)
		require.ErrorIs(t, err, core.ErrNotFound, "%q", ref)
		assert.Contains(t, err.Error(), why, "%q", ref)
	}
	missing := "0000" + a.ID.Hex()[4:12]
	if strings.HasPrefix(b.ID.Hex(), missing[:4]) || strings.HasPrefix(a.ID.Hex(), missing[:4]) {
		missing = "ffff" + missing[4:]
	}
	_, err = r.Resolve(ctx, missing, nil)
	require.ErrorIs(t, err, core.ErrNotFound)
	assert.Contains(t, err.Error(), "no snapshot id starts with")
}

func TestResolveAmbiguousPrefix(t *testing.T) {
	ctx := t.Context()
	r, _ := newRepo(t, nil)
	// Resolving lists names only, so made-up manifests do.
	var want []string
	for _, tail := range []string{"0", "1", "2"} {
		id, err := digest.FromHex("abcd" + strings.Repeat(tail, 60))
		require.NoError(t, err)
		require.NoError(t, r.Store().PutBytes(ctx, repo.ManifestName(id), []byte("{}"), store.PutOptions{}))
		want = append(want, id.Short())
	}
	for _, ref := range []string{"abcd", "sha256:abcd"} {
		_, err := r.ResolvePrefix(ctx, ref)
		require.ErrorIs(t, err, core.ErrInvalid)
		assert.Contains(t, err.Error(), "ambiguous: 3 snapshots match: "+strings.Join(want, ", "))
		_, err = r.Resolve(ctx, ref, nil)
		require.ErrorIs(t, err, core.ErrInvalid)
	}
	got, err := r.ResolvePrefix(ctx, "abcd1")
	require.NoError(t, err)
	assert.Equal(t, "abcd"+strings.Repeat("1", 60), got.Hex())
	_, err = r.ResolvePrefix(ctx, "abc")
	require.ErrorIs(t, err, core.ErrInvalid)
}

func TestTags(t *testing.T) {
	ctx := t.Context()
	r, _ := newRepo(t, nil)
	a, b := digest.FromBytes([]byte("a")), digest.FromBytes([]byte("b"))
	written, err := r.WriteTag(ctx, "v1", a, nil)
	require.NoError(t, err)
	_, err = r.WriteTag(ctx, "v1", b, nil) // moves it
	require.NoError(t, err)
	_, err = r.WriteTag(ctx, "v0", a, nil)
	require.NoError(t, err)
	got, err := r.ReadTag(ctx, "v1")
	require.NoError(t, err)
	assert.Equal(t, b, got.Snapshot)
	assert.False(t, got.Updated.Before(written.Tag.Updated))
	// Objects under tags/ that are no tag's are left out.
	require.NoError(t, r.Store().PutBytes(ctx, "tags/abcd.json", []byte("{}"), store.PutOptions{}))
	names, err := r.ListTags(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"v0", "v1"}, names)

	require.NoError(t, r.DeleteTag(ctx, "v0"))
	_, err = r.ReadTag(ctx, "v0")
	require.ErrorIs(t, err, core.ErrNotFound)
	require.ErrorIs(t, r.DeleteTag(ctx, "v0"), core.ErrNotFound)

	for _, bad := range []string{"latest", "abcd", "a/b"} {
		_, err := r.WriteTag(ctx, bad, a, nil)
		assert.ErrorIs(t, err, core.ErrInvalid, "%q", bad)
		_, err = r.ReadTag(ctx, bad)
		assert.ErrorIs(t, err, core.ErrInvalid, "%q", bad)
		assert.ErrorIs(t, r.DeleteTag(ctx, bad), core.ErrInvalid, "%q", bad)
	}
	_, err = r.WriteTag(ctx, "v2", "sha256:nope", nil)
	require.ErrorIs(t, err, core.ErrInvalid)

	// A stored tag is read strictly, and within a cap.
	require.NoError(t, r.Store().PutBytes(ctx, repo.TagName("v1"), []byte(`{"name": "v1", "snapshot": "`+string(a)+`", "updated": "2026-01-01T00:00:00Z"}{}`), store.PutOptions{}))
	_, err = r.ReadTag(ctx, "v1")
	require.ErrorIs(t, err, core.ErrCorrupt)
	assert.Contains(t, err.Error(), `tag "v1"`)
	require.NoError(t, r.Store().PutBytes(ctx, repo.TagName("v1"), bytes.Repeat([]byte(" "), 1<<20), store.PutOptions{}))
	_, err = r.ReadTag(ctx, "v1")
	require.ErrorIs(t, err, core.ErrCorrupt)
	assert.Contains(t, err.Error(), "byte limit")
}
