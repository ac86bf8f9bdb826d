package visitors_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
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
	require.NoError(t, visit(t.Context(), first, entries))
	parent := first.Entries()
	putsBefore := len(d.puts())

	v := visitors.New(r, nil)
	v.AddStored(parent)
	skip := &unreadable{t: t, key: held.key}
	freshEntries, freshReaders := batch(true, fresh)
	freshEntries[0].SHA256 = declared(fresh)
	require.NoError(t, visit(t.Context(), v, append(freshEntries,
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
		err := visit(t.Context(), v, entries)
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
		err := visit(t.Context(), visitors.New(r, nil), []core.BlobExportEntry{e})
		assert.ErrorIs(t, err, core.ErrInvalid, name)
	}
}

// placed is a blob's bytes given with random access, as an *os.File
// gives them: the export reads them in place. It counts the bytes read.
type placed struct {
	r      *bytes.Reader
	read   atomic.Int64
	closed atomic.Int32
}

func placedOf(data []byte) *placed { return &placed{r: bytes.NewReader(data)} }

func (p *placed) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.read.Add(int64(n))
	return n, err
}

func (p *placed) ReadAt(b []byte, off int64) (int, error) {
	n, err := p.r.ReadAt(b, off)
	p.read.Add(int64(n))
	return n, err
}

func (p *placed) Seek(off int64, whence int) (int64, error) { return p.r.Seek(off, whence) }

func (p *placed) Close() error { p.closed.Add(1); return nil }

// A blob whose digest the service declares, given with random access, is
// read once: a small one is copied (and hashed in memory) for Visit to
// return before its upload ends; a larger one is read in place by its
// upload only, the store verifying the digest, whether it is written
// create-only or looked up first.
func TestVisitReadsDeclaredBlobsInPlaceOnce(t *testing.T) {
	r, d := newRepo(t)
	blobs := []blob{blobOf("small", 3000), blobOf("medium", 300<<10), blobOf("large", visitors.DefaultCreateOnlyMax+5000)}
	var entries []core.BlobExportEntry
	var readers []*placed
	for _, b := range blobs {
		p := placedOf(b.data)
		readers = append(readers, p)
		entries = append(entries, core.BlobExportEntry{Key: b.key, Reader: p, Size: int64(len(b.data)), SHA256: declared(b)})
	}
	v := visitors.New(r, nil)
	require.NoError(t, visit(t.Context(), v, entries))

	for i, b := range blobs {
		size := int64(len(b.data))
		assert.Equal(t, int32(1), readers[i].closed.Load(), "%q closed once", b.key)
		assert.GreaterOrEqual(t, readers[i].read.Load(), size, "%q uploaded whole", b.key)
		assert.Less(t, readers[i].read.Load(), 2*size, "%q read once, by its upload", b.key)
		got, err := r.Store().GetBytes(t.Context(), blobName(b.data), 4<<20)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(b.data, got), "stored bytes of %q", b.key)
	}
	assert.Equal(t, []manifest.Entry{
		{Key: "large", Digest: digestOf(blobs[2].data), Size: int64(len(blobs[2].data))},
		{Key: "medium", Digest: digestOf(blobs[1].data), Size: int64(len(blobs[1].data))},
		{Key: "small", Digest: digestOf(blobs[0].data), Size: int64(len(blobs[0].data))},
	}, v.Entries())
	assert.Equal(t, 3, v.Stats().Uploaded)
	assert.Len(t, d.stored(), 3)
}

// A blob read in place whose bytes are not those the service declared,
// or not as many, fails the export naming its key, and nothing is stored.
// (Blobs of 256 KiB or less are copied, not read in place: see
// TestVisitChecksDeclaredDigests for them.)
func TestVisitChecksDeclaredBlobsInPlace(t *testing.T) {
	const n = 300 << 10
	medium, large := blobOf("medium", n), blobOf("large", visitors.DefaultCreateOnlyMax+5000)
	wrong := sha256.Sum256([]byte("other bytes"))
	for _, tc := range []struct {
		name    string
		b       blob
		size    int64
		sum     []byte
		wantErr error
		wantMsg string
	}{
		{"written create-only, other digest", medium, n, wrong[:], core.ErrChecksumMismatch, "declared SHA-256"},
		{"looked up first, other digest", large, int64(len(large.data)), wrong[:], core.ErrChecksumMismatch, "declared SHA-256"},
		{"reader longer", medium, n - 1, declared(blob{data: medium.data[:n-1]}), core.ErrSizeMismatch, fmt.Sprintf("announced %d bytes, reader gave more", n-1)},
		{"reader shorter", medium, n + 1, declared(medium), core.ErrSizeMismatch, fmt.Sprintf("announced %d bytes, reader gave fewer", n+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, d := newRepo(t)
			p := placedOf(tc.b.data)
			err := visit(t.Context(), visitors.New(r, nil), []core.BlobExportEntry{{Key: tc.b.key, Reader: p, Size: tc.size, SHA256: tc.sum}})
			require.ErrorIs(t, err, tc.wantErr)
			assert.ErrorContains(t, err, tc.wantMsg)
			assert.ErrorContains(t, err, `"`+tc.b.key+`"`, "the error names the key")
			assert.Empty(t, d.stored(), "nothing stored")
			assert.Equal(t, int32(1), p.closed.Load())
		})
	}
}
