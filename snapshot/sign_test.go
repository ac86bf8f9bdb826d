package snapshot_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
)

// blobReads counts the reads of blobs that reach the driver it wraps.
type blobReads struct {
	store.Driver
	n atomic.Int64
}

func (d *blobReads) count(name string) {
	if _, ok := repo.ParseBlobName(name); ok {
		d.n.Add(1)
	}
}

func (d *blobReads) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	d.count(name)
	return d.Driver.Get(ctx, name)
}

func (d *blobReads) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	d.count(name)
	return d.Driver.GetRange(ctx, name, offset, length)
}

// editRecord rewrites the stored object name through edit, which works
// on its JSON as a map.
func editRecord(t *testing.T, r *snapshot.Repo, name string, edit func(map[string]any)) {
	t.Helper()
	ctx := t.Context()
	data, err := r.Store().GetBytes(ctx, name, 1<<20)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(data, &doc))
	edit(doc)
	data, err = json.Marshal(doc)
	require.NoError(t, err)
	require.NoError(t, r.Store().PutBytes(ctx, name, data, store.PutOptions{}))
}

// Under a configured key, imports and verifications refuse an unsigned,
// wrongly signed or tampered manifest or tag, saying so, before they read
// any blob.
func TestSignatureRefusedBeforeAnyBlobIsRead(t *testing.T) {
	ctx := t.Context()
	key := []byte("ci signing key")
	dir := filepath.Join(t.TempDir(), "repo")
	fs, err := filestore.New(dir, nil)
	require.NoError(t, err)
	reads := &blobReads{Driver: fs}
	r := snapshot.New(store.New(reads, dir, nil))
	defer r.Close()

	signedSvc := bucketStore(t, map[string]string{"k": "signed blob"})
	signed, err := snapshot.Export(ctx, r, signedSvc, "a", "r", &snapshot.ExportOptions{SigningKey: key, Tag: "signed-tag"})
	require.NoError(t, err)
	other, err := snapshot.Export(ctx, r, bucketStore(t, map[string]string{"k": "other blob"}), "a", "r", &snapshot.ExportOptions{SigningKey: key})
	require.NoError(t, err)
	unsigned, err := snapshot.Export(ctx, r, bucketStore(t, map[string]string{"k": "unsigned blob"}), "a", "r", &snapshot.ExportOptions{Tag: "unsigned-tag"})
	require.NoError(t, err)
	_, err = r.Tag(ctx, "plain-tag", signed.ID.String(), nil) // an unsigned tag of a signed snapshot
	require.NoError(t, err)

	// The key accepts what it signed.
	_, err = snapshot.Import(ctx, r, coretest.NewObjectStore(), "a", "r", "signed-tag", &snapshot.ImportOptions{Manifest: manifest.DecodeOptions{HMACKey: key}})
	require.NoError(t, err)
	require.Positive(t, reads.n.Load())

	copyOf := func(m *manifest.Manifest) *manifest.Manifest { c := *m; return &c }
	tamper := func(m *manifest.Manifest, edit func(map[string]any)) func(t *testing.T) {
		return func(t *testing.T) { editRecord(t, r, repo.ManifestName(m.ID), edit) }
	}
	restore := func(m *manifest.Manifest) func(t *testing.T) {
		return func(t *testing.T) {
			require.NoError(t, repo.New(r.Store(), nil).ReplaceManifest(ctx, copyOf(m)))
		}
	}
	for _, tc := range []struct {
		name    string
		ref     string
		key     []byte
		prepare func(t *testing.T)
		undo    func(t *testing.T)
		why     string
	}{
		{name: "unsigned manifest", ref: unsigned.ID.String(), key: key, why: "not signed"},
		{name: "manifest signed with another key", ref: signed.ID.String(), key: []byte("other key"), why: "does not match"},
		{name: "creation time edited", ref: signed.ID.String(), key: key, why: "does not match",
			prepare: tamper(signed, func(d map[string]any) { d["created"] = time.Now().Add(time.Hour).UTC().Format(time.RFC3339) }), undo: restore(signed)},
		{name: "producer edited", ref: signed.ID.String(), key: key, why: "does not match",
			prepare: tamper(signed, func(d map[string]any) { d["producer"] = "mallory" }), undo: restore(signed)},
		{name: "signature removed", ref: signed.ID.String(), key: key, why: "not signed",
			prepare: tamper(signed, func(d map[string]any) { delete(d, "signature") }), undo: restore(signed)},
		{name: "unsigned tag of a signed snapshot", ref: "plain-tag", key: key, why: "not signed"},
		{name: "tag of an unsigned snapshot", ref: "unsigned-tag", key: key, why: "not signed"},
		{name: "signed tag pointed elsewhere", ref: "signed-tag", key: key, why: "does not match",
			prepare: func(t *testing.T) {
				editRecord(t, r, repo.TagName("signed-tag"), func(d map[string]any) { d["snapshot"] = string(other.ID) })
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.prepare != nil {
				tc.prepare(t)
			}
			if tc.undo != nil {
				defer tc.undo(t)
			}
			reads.n.Store(0)
			svc := coretest.NewObjectStore()
			_, err := snapshot.Import(ctx, r, svc, "a", "r", tc.ref, &snapshot.ImportOptions{Manifest: manifest.DecodeOptions{HMACKey: tc.key}})
			require.ErrorIs(t, err, core.ErrCorrupt)
			assert.Contains(t, err.Error(), tc.why)
			assert.Contains(t, err.Error(), "signature")
			_, err = r.Verify(ctx, tc.ref, &snapshot.VerifyOptions{ReadData: true, Manifest: manifest.DecodeOptions{HMACKey: tc.key}})
			require.ErrorIs(t, err, core.ErrCorrupt)
			_, err = r.Tag(ctx, "new-tag", tc.ref, &snapshot.TagOptions{SigningKey: tc.key})
			require.ErrorIs(t, err, core.ErrCorrupt)
			assert.Zero(t, reads.n.Load(), "blobs were read")
			view, _ := svc.Snapshot(ctx, "a", "r")
			assert.Empty(t, view.Buckets, "the service was changed")
		})
	}

	// latest, under a key, is the newest snapshot signed with it: a newer
	// unsigned one does not hide it.
	m, err := r.Show(ctx, snapshot.Latest, snapshot.Filter{})
	require.NoError(t, err)
	assert.Equal(t, unsigned.ID, m.ID, "without a key, the newest")
	_, err = snapshot.Import(ctx, r, coretest.NewObjectStore(), "a", "r", snapshot.Latest, &snapshot.ImportOptions{Manifest: manifest.DecodeOptions{HMACKey: key}})
	require.NoError(t, err)
	got, err := r.Verify(ctx, snapshot.Latest, &snapshot.VerifyOptions{Manifest: manifest.DecodeOptions{HMACKey: key}})
	require.NoError(t, err)
	assert.Equal(t, other.ID, got.Manifest.ID, "the newest signed snapshot")
}

// An export with a key of a state stored unsigned signs the stored
// snapshot; one whose view went missing stores it again.
func TestExportSignsAndRepairsAStoredSnapshot(t *testing.T) {
	ctx := t.Context()
	key := []byte("key")
	r := openTemp(t)
	svc := bucketStore(t, map[string]string{"k": "v"})
	first, err := snapshot.Export(ctx, r, svc, "a", "r", nil)
	require.NoError(t, err)
	require.Empty(t, first.Signature)

	signed, err := snapshot.Export(ctx, r, svc, "a", "r", &snapshot.ExportOptions{SigningKey: key})
	require.NoError(t, err)
	assert.Equal(t, first.ID, signed.ID)
	assert.True(t, signed.Created.Equal(first.Created), "the creation time stays")
	_, err = snapshot.Import(ctx, r, coretest.NewObjectStore(), "a", "r", first.ID.String(), &snapshot.ImportOptions{Manifest: manifest.DecodeOptions{HMACKey: key}})
	require.NoError(t, err)

	layer := repo.New(r.Store(), nil)
	require.NoError(t, layer.DeleteView(ctx, first.ID))
	_, err = snapshot.Export(ctx, r, svc, "a", "r", &snapshot.ExportOptions{SigningKey: key})
	require.NoError(t, err)
	requireWholeSnapshots(t, r)
}

// Under a key, tag refuses to point a tag at an unsigned snapshot;
// without one, it writes an unsigned tag, with no signature field.
func TestTagUnderAKeyNeedsASignedSnapshot(t *testing.T) {
	ctx := t.Context()
	r := openTemp(t)
	m := exportKV(t, r, "/k", "v")
	res, err := r.Tag(ctx, "t", m.ID.String(), &snapshot.TagOptions{SigningKey: []byte("k")})
	require.ErrorIs(t, err, core.ErrCorrupt)
	assert.Nil(t, res)
	res, err = r.Tag(ctx, "t", m.ID.String(), nil)
	require.NoError(t, err)
	data, err := r.Store().GetBytes(ctx, repo.TagName("t"), 1<<10)
	require.NoError(t, err)
	assert.False(t, bytes.Contains(data, []byte("signature")), "an unsigned tag has no signature field")
	assert.Empty(t, res.Tag.Signature)
}
