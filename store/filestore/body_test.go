package filestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
)

// fakeFile is a syncWriter in memory that counts its syncs, fails the
// one numbered failSync (from 1), if set, holds the first until hold is
// closed, if set, and fails the test if a sync runs once closed is set.
type fakeFile struct {
	t         *testing.T
	mu        sync.Mutex
	buf       bytes.Buffer
	syncs     int
	failSync  int
	hold      <-chan struct{}
	firstDone atomic.Bool // the first sync has returned
	closed    atomic.Bool
}

var errSyncFailed = errors.New("sync failed")

func (f *fakeFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buf.Write(p)
}

func (f *fakeFile) Sync() error {
	if f.closed.Load() {
		f.t.Error("a sync ran after writeBody returned")
	}
	f.mu.Lock()
	f.syncs++
	n := f.syncs
	f.mu.Unlock()
	if n == 1 && f.hold != nil {
		<-f.hold
		defer f.firstDone.Store(true)
	}
	if n == f.failSync {
		return errSyncFailed
	}
	return nil
}

// write runs writeBody into f, which it then marks closed.
func (f *fakeFile) write(ctx context.Context, body io.ReaderAt, size int64, want []byte) error {
	defer f.closed.Store(true)
	return writeBody(ctx, f, body, size, want, false)
}

// random is a fixed sequence of bytes: 64 KiB of pseudo-random ones,
// repeated, each copy but the first with its first byte changed.
var random = sync.OnceValue(func() []byte {
	b := make([]byte, 8<<20)
	const block = 64 << 10
	rand.NewChaCha8([32]byte{7}).Read(b[:block])
	for off := block; off < len(b); off += block {
		copy(b[off:], b[:block])
		b[off] ^= byte(off / block)
	}
	return b
})

// randomBytes returns the first n bytes of random.
func randomBytes(n int) []byte { return random()[:n:n] }

// smallChunks makes the syncs beside the copy start every 2 MiB, for
// the test to copy less.
func smallChunks(t *testing.T) {
	old := syncChunk
	syncChunk = 2 * writebackChunk
	t.Cleanup(func() { syncChunk = old })
}

// copyPaths runs test once for each way writeBody may hash a large body:
// between the writes, as when other large Puts keep the cores busy, and
// beside them, on a core of its own.
func copyPaths(t *testing.T, test func(t *testing.T)) {
	smallChunks(t)
	t.Run("hash between writes", func(t *testing.T) {
		largeCopies.Add(1 << 20)
		defer largeCopies.Add(-1 << 20)
		require.False(t, hashAside(hashAsideMin))
		test(t)
	})
	t.Run("hash beside the copy", func(t *testing.T) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(2, runtime.GOMAXPROCS(0))))
		require.True(t, hashAside(hashAsideMin))
		test(t)
	})
}

// TestWriteBody copies bodies of every size that changes how writeBody
// works (one chunk, several, large enough to hash aside, to sync beside
// the copy) and checks what was written and the digest.
func TestWriteBody(t *testing.T) {
	copyPaths(t, func(t *testing.T) {
		for _, size := range []int{0, 1, copyChunk + 1, hashAsideMin + 3, int(3*syncChunk) + 5} {
			body := randomBytes(size)
			sum := sha256.Sum256(body)
			f := &fakeFile{t: t}
			require.NoError(t, f.write(t.Context(), bytes.NewReader(body), int64(size), sum[:]), "size %d", size)
			assert.True(t, bytes.Equal(body, f.buf.Bytes()), "size %d: the bytes written differ", size)
			wantSyncs := 1
			if int64(size) > syncChunk {
				wantSyncs = 2 // at least one beside the copy
			}
			assert.GreaterOrEqual(t, f.syncs, wantSyncs, "size %d", size)

			f = &fakeFile{t: t}
			wrong := sha256.Sum256(append(body, 0))
			err := f.write(t.Context(), bytes.NewReader(body), int64(size), wrong[:])
			require.ErrorIs(t, err, core.ErrChecksumMismatch, "size %d", size)
			assert.Contains(t, err.Error(), "want "+hex.EncodeToString(wrong[:]))
		}
	})
}

// hashedBody is a store.HashedBody claiming the digest sum.
type hashedBody struct {
	*bytes.Reader
	sum []byte
}

func (b hashedBody) SHA256() []byte { return b.sum }

// TestWriteBodyHashedBody: a body hashed by its holder to the digest the
// Put checks is not hashed again (a body whose claim is false shows it:
// its bytes are written unchecked); a claim of another digest is not
// trusted, and the bytes are hashed and checked.
func TestWriteBodyHashedBody(t *testing.T) {
	body := randomBytes(copyChunk + 7)
	sum := sha256.Sum256(body)
	f := &fakeFile{t: t}
	require.NoError(t, f.write(t.Context(), hashedBody{bytes.NewReader(body), sum[:]}, int64(len(body)), sum[:]))
	assert.True(t, bytes.Equal(body, f.buf.Bytes()))

	other := sha256.Sum256([]byte("other"))
	f = &fakeFile{t: t}
	require.NoError(t, f.write(t.Context(), hashedBody{bytes.NewReader(body), other[:]}, int64(len(body)), other[:]),
		"the holder's digest is taken as it is")

	f = &fakeFile{t: t}
	err := f.write(t.Context(), hashedBody{bytes.NewReader(body), sum[:]}, int64(len(body)), other[:])
	require.ErrorIs(t, err, core.ErrChecksumMismatch, "a claim of another digest than the Put's is not trusted")
}

// TestWriteBodyShort reads a body that ends before its announced size:
// the size mismatch is reported and no sync follows.
func TestWriteBodyShort(t *testing.T) {
	copyPaths(t, func(t *testing.T) {
		body := randomBytes(int(2 * syncChunk))
		sum := sha256.Sum256(body)
		f := &fakeFile{t: t}
		err := f.write(t.Context(), bytes.NewReader(body), int64(len(body))+1, sum[:])
		require.ErrorIs(t, err, core.ErrSizeMismatch)
		assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	})
}

// cancellingReader cancels its context once it has given after bytes.
type cancellingReader struct {
	body   []byte
	after  int64
	cancel context.CancelFunc
	read   atomic.Int64
}

func (r *cancellingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := bytes.NewReader(r.body).ReadAt(p, off)
	if r.read.Add(int64(n)) >= r.after {
		r.cancel()
	}
	return n, err
}

// TestWriteBodyCancelled cancels the context of a large copy midway, as
// the sync it started beside the copy waits: the copy stops with the
// context's error, once that sync has returned.
func TestWriteBodyCancelled(t *testing.T) {
	copyPaths(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		body := randomBytes(int(3 * syncChunk))
		sum := sha256.Sum256(body)
		f := &fakeFile{t: t, hold: ctx.Done()}
		r := &cancellingReader{body: body, after: 2 * syncChunk, cancel: cancel}
		err := f.write(ctx, r, int64(len(body)), sum[:])
		require.ErrorIs(t, err, context.Canceled)
		assert.True(t, f.firstDone.Load(), "writeBody returned before the sync beside the copy")
		assert.Less(t, f.buf.Len(), len(body))
	})
}

// TestWriteBodySyncBesideFails fails the first sync, one run beside the
// copy: the Put fails with it, though the final sync succeeds (Linux
// reports a lost write to one sync only).
func TestWriteBodySyncBesideFails(t *testing.T) {
	copyPaths(t, func(t *testing.T) {
		body := randomBytes(int(3 * syncChunk))
		sum := sha256.Sum256(body)
		f := &fakeFile{t: t, failSync: 1}
		err := f.write(t.Context(), bytes.NewReader(body), int64(len(body)), sum[:])
		require.ErrorIs(t, err, errSyncFailed)
		assert.GreaterOrEqual(t, f.syncs, 1)
	})
}

// TestLargePut stores a large blob on disk, through a temporary file and
// through an unnamed one, with the right digest and a wrong one: the
// first reads back whole, the second stores nothing.
func TestLargePut(t *testing.T) {
	for _, createOnly := range []bool{false, true} {
		copyPaths(t, func(t *testing.T) {
			body := randomBytes(int(2*syncChunk) + 12345)
			sum := sha256.Sum256(body)
			wrong := sha256.Sum256(body[1:])
			d, err := New(t.TempDir(), nil)
			require.NoError(t, err)
			defer d.Close()
			ctx := t.Context()
			opts := store.PutOptions{CreateOnly: createOnly, SHA256: wrong[:]}
			err = d.Put(ctx, "blobs/wrong", bytes.NewReader(body), int64(len(body)), opts)
			require.ErrorIs(t, err, core.ErrChecksumMismatch)
			_, err = d.Stat(ctx, "blobs/wrong")
			require.ErrorIs(t, err, core.ErrNotFound)

			opts.SHA256 = sum[:]
			require.NoError(t, d.Put(ctx, "blobs/right", bytes.NewReader(body), int64(len(body)), opts))
			rc, err := d.Get(ctx, "blobs/right")
			require.NoError(t, err)
			defer rc.Close()
			got, err := io.ReadAll(rc)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(body, got), "the blob read back differs")
		})
	}
}
