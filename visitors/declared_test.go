package visitors_test

import (
	"crypto/sha256"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/visitors"
)

// unreadable fails the test that reads it: a blob the export is not to
// read.
type unreadable struct {
	t      *testing.T
	key    string
	closed bool
}

func (u *unreadable) Read([]byte) (int, error) {
	u.t.Errorf("blob %q was read, though a parent holds its declared digest", u.key)
	return 0, errors.New("read")
}

func (u *unreadable) Close() error { u.closed = true; return nil }

func declared(b blob) []byte {
	sum := sha256.Sum256(b.data)
	return sum[:]
}

// A blob whose SHA-256 the service declares, and which a parent snapshot
// holds, costs no read and no request: re-exporting unchanged state reads
// nothing.
func TestVisitSkipsDeclaredBlobsAParentHolds(t *testing.T) {
	r, d := newRepo(t)
	held, fresh := blobOf("held", 5000), blobOf("fresh", 300)
	first := visitors.New(r, nil)
	entries, _ := batch(true, held)
	require.NoError(t, first.Visit(t.Context(), entries))
	parent := first.Entries()
	putsBefore := len(d.puts())

	v := visitors.New(r, nil)
	v.AddStored(parent)
	skip := &unreadable{t: t, key: held.key}
	freshEntries, freshReaders := batch(true, fresh)
	freshEntries[0].SHA256 = declared(fresh)
	require.NoError(t, v.Visit(t.Context(), append(freshEntries,
		core.BlobExportEntry{Key: held.key, Reader: skip, Size: int64(len(held.data)), SHA256: declared(held)})))
	assert.True(t, skip.closed, "a blob not read is closed all the same")
	requireClosed(t, freshReaders)

	want := []manifest.Entry{
		{Key: fresh.key, Digest: digestOf(fresh.data), Size: int64(len(fresh.data))},
		{Key: held.key, Digest: digestOf(held.data), Size: int64(len(held.data))},
	}
	assert.Equal(t, want, v.Entries())
	assert.Equal(t, 1, v.Stats().Skipped)
	assert.Equal(t, 1, v.Stats().Uploaded)
	assert.Len(t, d.puts(), putsBefore+1, "only the fresh blob is written")
}

// Declared digests are checked on every blob that is read, in a dry run
// too; a declaration that cannot be right is bad usage.
func TestVisitChecksDeclaredDigests(t *testing.T) {
	b := blobOf("k", 1000)
	wrong := sha256.Sum256([]byte("other bytes"))
	for _, dryRun := range []bool{false, true} {
		r, d := newRepo(t)
		v := visitors.New(r, &visitors.Options{DryRun: dryRun})
		entries, _ := batch(true, b)
		entries[0].SHA256 = wrong[:]
		err := v.Visit(t.Context(), entries)
		require.ErrorIs(t, err, core.ErrChecksumMismatch, "dry run %v", dryRun)
		assert.ErrorContains(t, err, `"k"`, "the error names the key")
		assert.Empty(t, d.puts(), "nothing stored for a blob that is not what the service declared")
	}

	r, _ := newRepo(t)
	for name, e := range map[string]core.BlobExportEntry{
		"short digest": {Key: "k", Size: 3, SHA256: []byte{1, 2, 3}},
		"unknown size": {Key: "k", Size: core.UnknownSize, SHA256: declared(b)},
	} {
		e.Reader = io.NopCloser(&unreadable{t: t, key: name})
		err := visitors.New(r, nil).Visit(t.Context(), []core.BlobExportEntry{e})
		assert.ErrorIs(t, err, core.ErrInvalid, name)
	}
}
