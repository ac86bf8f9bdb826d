package sources_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/sources"
	"github.com/statebucket/statebucket/store"
)

// rangeDriver adds ranged reads to a fixture's driver, counting them and
// the bytes they return. fail, if set, may fail a range before it is read.
type rangeDriver struct {
	*getDriver
	fail   func(off int64, n int) error
	seen   func(name string, off int64) // called for every ranged read
	mu     sync.Mutex
	calls  map[int64]int // by offset
	ranges atomic.Int64
}

func (d *rangeDriver) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	d.ranges.Add(1)
	if d.seen != nil {
		d.seen(name, off)
	}
	d.mu.Lock()
	d.calls[off]++
	n := d.calls[off]
	d.mu.Unlock()
	if d.fail != nil {
		if err := d.fail(off, n); err != nil {
			return nil, err
		}
	}
	rc, err := d.Driver.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	if _, err := io.CopyN(io.Discard, rc, off); err != nil && err != io.EOF {
		rc.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{&countedReader{ReadCloser: io.NopCloser(io.LimitReader(rc, length)), n: &d.read}, rc}, nil
}

const (
	chunk = 64 << 10
	large = 4 * chunk // LargeThreshold in these tests
)

// largeFixture stores blobs of the given sizes behind a range-reading
// driver; the budget holds room for a few chunks.
func largeFixture(t *testing.T, sizes ...int) (*fixture, *rangeDriver) {
	t.Helper()
	f := newRepo(t)
	rd := &rangeDriver{getDriver: f.drv, calls: map[int64]int{}}
	f.st = store.New(rd, "test", &store.Options{Budget: store.NewBudget(8, 8*(chunk+1)), Backoff: -1})
	for i, n := range sizes {
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(j*7 + j>>11 + i)
		}
		f.add(t, fmt.Sprintf("big/%d\x00v1", i), data)
	}
	f.finish(t)
	return f, rd
}

// modes are the two ways a chunked blob is downloaded: ranged reads of
// a chunk each, several at once (the blobs of these tests are all at
// least ParallelThreshold), and one request read in order (below the
// default ParallelThreshold).
var modes = []struct {
	name   string
	opts   sources.Options
	ranged bool
}{
	{"ranged", sources.Options{LargeThreshold: large, ChunkSize: chunk, ParallelThreshold: large}, true},
	{"in order", sources.Options{LargeThreshold: large, ChunkSize: chunk}, false},
}

// chunkedOptions reads every large blob in ranged reads.
func chunkedOptions() sources.Options { return modes[0].opts }

// requireRequests checks the ranged reads made for blobs of the given
// chunk counts: one per chunk, or, read in order, one per blob plus at
// most one for each chunk after a pause (the request is closed while the
// reader is behind).
func requireRequests(t *testing.T, ranged bool, got int64, chunks ...int) {
	t.Helper()
	total := 0
	for _, n := range chunks {
		total += n
	}
	if ranged {
		assert.Equal(t, int64(total), got, "one ranged read per chunk")
		return
	}
	assert.GreaterOrEqual(t, got, int64(len(chunks)), "one request per blob at least")
	assert.LessOrEqual(t, got, int64(total), "more requests than chunks")
}

// readers read a chunked blob whole, in the three ways a chunk reader
// serves: small reads, served from chunks read ahead into buffers; one
// read into a buffer of the blob's size, which the chunks are read
// straight into; and io.Copy, which the reader serves with WriteTo
// straight from its buffers.
var readers = []struct {
	name string
	read func(r io.Reader, size int64) ([]byte, error)
}{
	{"small reads", func(r io.Reader, _ int64) ([]byte, error) { return io.ReadAll(r) }},
	{"one buffer", core.ReadBlob},
	{"copy", func(r io.Reader, _ int64) ([]byte, error) {
		if _, ok := r.(io.WriterTo); !ok {
			return nil, fmt.Errorf("%T is no io.WriterTo", r)
		}
		var b bytes.Buffer
		_, err := io.Copy(&b, r)
		return b.Bytes(), err
	}},
}

func TestChunkedReadsRoundTrip(t *testing.T) {
	sizes := []int{large, large + 1, 10*chunk - 3, 3 * large}
	for _, mode := range modes {
		for _, rd := range readers {
			t.Run(mode.name+", "+rd.name, func(t *testing.T) {
				f, drv := largeFixture(t, sizes...)
				s := f.source(t, mode.opts)
				for _, key := range f.keys() {
					got, err := f.readWith(t, t.Context(), s, key, rd.read)
					require.NoError(t, err)
					require.True(t, bytes.Equal(f.data[key], got), "bytes of %q", key)
				}
				var chunks []int
				for _, n := range sizes {
					chunks = append(chunks, (n+chunk-1)/chunk)
				}
				requireRequests(t, mode.ranged, drv.ranges.Load(), chunks...)
				assert.Zero(t, drv.getsOf(f.name(f.keys()[0])), "a large blob was downloaded whole")
				f.requireNoTempFiles(t)
				require.NoError(t, s.Close())
				requireBudgetFree(t, f.st.Budget())
			})
		}
	}
}

// readWith fetches key from s and reads it with read, given its recorded
// size, returning what read does.
func (f *fixture) readWith(t *testing.T, ctx context.Context, s *sources.Source, key string, read func(io.Reader, int64) ([]byte, error)) ([]byte, error) {
	t.Helper()
	e, ok := f.m.Lookup(key)
	require.True(t, ok, "no entry for %q", key)
	rc, err := s.Fetch(ctx, key)
	require.NoError(t, err, "the mismatch shows when the bytes pass, not at Fetch")
	defer func() { require.NoError(t, rc.Close()) }()
	return read(rc, e.Size)
}

func TestChunkedReadsCatchMismatches(t *testing.T) {
	for _, tc := range []struct {
		name     string
		edit     func([]byte) []byte
		sentinel error
		actual   string
	}{
		{"flipped byte", func(b []byte) []byte { b[len(b)/2] ^= 1; return b }, core.ErrChecksumMismatch, ""},
		{"shorter by a chunk and a byte", func(b []byte) []byte { return b[:len(b)-chunk-1] }, core.ErrSizeMismatch, fmt.Sprintf("%d bytes", 2*large-chunk-1)},
		{"one byte longer", func(b []byte) []byte { return append(b, 0) }, core.ErrSizeMismatch, fmt.Sprintf("more than %d bytes", 2*large)},
	} {
		for _, mode := range modes {
			for _, rd := range readers {
				t.Run(tc.name+", "+mode.name+", "+rd.name, func(t *testing.T) {
					f, drv := largeFixture(t, 2*large)
					key := f.keys()[0]
					f.replace(t, key, tc.edit(bytes.Clone(f.data[key])))
					s := f.source(t, mode.opts)
					_, err := f.readWith(t, t.Context(), s, key, rd.read)
					require.ErrorIs(t, err, tc.sentinel)
					var me *repo.MismatchError
					require.ErrorAs(t, err, &me)
					assert.Equal(t, key, me.Key)
					if tc.actual != "" {
						assert.Equal(t, tc.actual, me.Actual)
					}
					assert.LessOrEqual(t, drv.read.Load(), int64(2*large+1), "read past the recorded size + 1")
					require.NoError(t, s.Close())
					requireBudgetFree(t, f.st.Budget())
				})
			}
		}
	}
}

// TestChunkedReadIntoOneBufferHandsOverVerifiedBytes reads a blob whose
// last byte differs into one buffer of its size: the Read fails and
// reports no byte read.
func TestChunkedReadIntoOneBufferHandsOverVerifiedBytes(t *testing.T) {
	f, _ := largeFixture(t, 3*large)
	key := f.keys()[0]
	data := bytes.Clone(f.data[key])
	data[len(data)-1] ^= 1
	f.replace(t, key, data)
	s := f.source(t, chunkedOptions())
	rc, err := s.Fetch(t.Context(), key)
	require.NoError(t, err)
	defer rc.Close()
	n, err := rc.Read(make([]byte, len(data)))
	require.ErrorIs(t, err, core.ErrChecksumMismatch)
	assert.Zero(t, n)
	_, err = rc.Read(make([]byte, 1))
	require.ErrorIs(t, err, core.ErrChecksumMismatch, "the error stays")
}

// TestChunkedReadsSurviveTransientErrors fails the first read of every
// chunk: the store reads it again.
func TestChunkedReadsSurviveTransientErrors(t *testing.T) {
	for _, mode := range modes {
		for _, rd := range readers {
			t.Run(mode.name+", "+rd.name, func(t *testing.T) {
				f, drv := largeFixture(t, 3*large)
				drv.fail = func(off int64, n int) error {
					if n == 1 {
						return fmt.Errorf("connection reset by peer: %w", core.ErrTransient)
					}
					return nil
				}
				s := f.source(t, mode.opts)
				key := f.keys()[0]
				got, err := f.readWith(t, t.Context(), s, key, rd.read)
				require.NoError(t, err)
				require.True(t, bytes.Equal(f.data[key], got))
				chunks := 3 * large / chunk
				if mode.ranged {
					assert.Equal(t, int64(2*chunks), drv.ranges.Load(), "each chunk read twice")
				} else {
					assert.GreaterOrEqual(t, drv.ranges.Load(), int64(2), "the first request failed and was made again")
				}
			})
		}
	}
}

func TestChunkedReadsDoNotRetryMissingBlobs(t *testing.T) {
	for _, rd := range readers {
		t.Run(rd.name, func(t *testing.T) {
			f, drv := largeFixture(t, large)
			key := f.keys()[0]
			require.NoError(t, f.st.Delete(t.Context(), f.name(key)))
			s := f.source(t, chunkedOptions())
			_, err := f.readWith(t, t.Context(), s, key, rd.read)
			require.ErrorIs(t, err, core.ErrNotFound)
			assert.Contains(t, err.Error(), fmt.Sprintf("%q", key))
			assert.LessOrEqual(t, drv.ranges.Load(), int64(large/chunk), "a missing blob is read once per chunk at most")
			require.NoError(t, s.Close())
			requireBudgetFree(t, f.st.Budget())
		})
	}
}

func TestChunkedReadsFallBackToSpoolWithoutMemory(t *testing.T) {
	f, rd := largeFixture(t, large)
	f.st = store.New(rd, "test", &store.Options{Budget: store.NewBudget(4, chunk-1)}) // less than one chunk
	s := f.source(t, chunkedOptions())
	f.fetch(t, t.Context(), s, f.keys()[0])
	assert.Zero(t, rd.ranges.Load())
	assert.Equal(t, 1, rd.getsOf(f.name(f.keys()[0])))
}

func TestChunkedReaderCloseMidway(t *testing.T) {
	f, _ := largeFixture(t, 8*large)
	s := f.source(t, chunkedOptions())
	rc, err := s.Fetch(t.Context(), f.keys()[0])
	require.NoError(t, err)
	buf := make([]byte, chunk/2)
	_, err = io.ReadFull(rc, buf)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	_, err = rc.Read(buf)
	require.Error(t, err, "read after close")
	requireBudgetFree(t, f.st.Budget())
}

func TestChunkedReaderCancelled(t *testing.T) {
	f, rd := largeFixture(t, 8*large)
	ctx, cancel := context.WithCancel(t.Context())
	s := f.source(t, chunkedOptions())
	rc, err := s.Fetch(ctx, f.keys()[0])
	require.NoError(t, err)
	defer rc.Close()
	buf := make([]byte, chunk)
	_, err = io.ReadFull(rc, buf)
	require.NoError(t, err)
	cancel()
	_, err = io.Copy(io.Discard, rc)
	require.ErrorIs(t, err, context.Canceled)
	assert.Less(t, rd.ranges.Load(), int64(8*large/chunk), "downloads went on after cancellation")
}

// TestChunkedReadIntoOneBufferCancelled cancels the Fetch's context while
// the chunks are read into the caller's buffer: the Read fails with the
// cancellation and leaves the chunks after it alone.
func TestChunkedReadIntoOneBufferCancelled(t *testing.T) {
	f, drv := largeFixture(t, 8*large)
	ctx, cancel := context.WithCancel(t.Context())
	drv.fail = func(off int64, _ int) error {
		if off == 2*chunk {
			cancel()
			return context.Canceled
		}
		return nil
	}
	s := f.source(t, chunkedOptions())
	_, err := f.readWith(t, ctx, s, f.keys()[0], core.ReadBlob)
	require.ErrorIs(t, err, context.Canceled)
	assert.Less(t, drv.ranges.Load(), int64(8*large/chunk), "downloads went on after cancellation")
	require.NoError(t, s.Close())
	requireBudgetFree(t, f.st.Budget())
}

func TestChunkedReaderClosedUnread(t *testing.T) {
	f, drv := largeFixture(t, 2*large)
	s := f.source(t, chunkedOptions())
	rc, err := s.Fetch(t.Context(), f.keys()[0])
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	_, err = rc.Read(make([]byte, 2*large))
	require.Error(t, err, "read after close")
	assert.Zero(t, drv.ranges.Load(), "a reader read nothing from starts no download")
	requireBudgetFree(t, f.st.Budget())
}

// aheadFixture stores three large blobs and reports, on the returned
// channel, the first ranged read of each blob's object by name.
func aheadFixture(t *testing.T) (*fixture, *rangeDriver, <-chan string) {
	t.Helper()
	f, drv := largeFixture(t, 2*large, 2*large, 2*large)
	started := make(chan string, 3)
	var mu sync.Mutex
	seen := map[string]bool{}
	drv.seen = func(name string, _ int64) {
		mu.Lock()
		defer mu.Unlock()
		if !seen[name] {
			seen[name] = true
			started <- name
		}
	}
	return f, drv, started
}

// waitStarted waits for the first ranged read of the object name.
func waitStarted(started <-chan string, name string) {
	for n := range started {
		if n == name {
			return
		}
	}
}

// fetchFirst fetches and reads the first blob of an aheadFixture under
// ctx, and waits until the second is being read ahead.
func (f *fixture) fetchFirst(t *testing.T, ctx context.Context, s *sources.Source, started <-chan string) {
	t.Helper()
	keys := f.keys()
	f.fetch(t, ctx, s, keys[0])
	waitStarted(started, f.name(keys[1]))
}

// TestChunkedReadsAhead fetches the first of three large blobs: the
// second is downloaded before anyone reads the first, and is then served
// from what was read ahead.
func TestChunkedReadsAhead(t *testing.T) {
	for _, mode := range modes {
		for _, rd := range readers {
			t.Run(mode.name+", "+rd.name, func(t *testing.T) {
				f, drv, started := aheadFixture(t)
				keys := f.keys()
				s := f.source(t, mode.opts)
				rc, err := s.Fetch(t.Context(), keys[0])
				require.NoError(t, err)
				require.Equal(t, f.name(keys[1]), <-started, "the next large blob is read ahead before the first Read")
				got, err := rd.read(rc, int64(2*large))
				require.NoError(t, err)
				require.NoError(t, rc.Close())
				require.True(t, bytes.Equal(f.data[keys[0]], got))
				for _, key := range keys[1:] {
					got, err := f.readWith(t, t.Context(), s, key, rd.read)
					require.NoError(t, err)
					require.True(t, bytes.Equal(f.data[key], got), "bytes of %q", key)
				}
				assert.Equal(t, 2, s.Stats().PrefetchHits, "the second and third blobs were read ahead")
				requireRequests(t, mode.ranged, drv.ranges.Load(), 2*large/chunk, 2*large/chunk, 2*large/chunk)
				require.NoError(t, s.Close())
				requireBudgetFree(t, f.st.Budget())
			})
		}
	}
}

// TestChunkedReadAheadCatchesMismatches damages the blob read ahead: its
// reader fails at the end, as one opened at its Fetch would.
func TestChunkedReadAheadCatchesMismatches(t *testing.T) {
	f, _, started := aheadFixture(t)
	keys := f.keys()
	data := bytes.Clone(f.data[keys[1]])
	data[len(data)/2] ^= 1
	f.replace(t, keys[1], data)
	s := f.source(t, chunkedOptions())
	f.fetchFirst(t, t.Context(), s, started)
	_, err := f.readWith(t, t.Context(), s, keys[1], readers[2].read)
	require.ErrorIs(t, err, core.ErrChecksumMismatch)
	var me *repo.MismatchError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, keys[1], me.Key)
	require.NoError(t, s.Close())
	requireBudgetFree(t, f.st.Budget())
}

// TestChunkedReadAheadDropped fetches past the blob read ahead: its
// downloads stop and its buffers go back to the budget.
func TestChunkedReadAheadDropped(t *testing.T) {
	f, _, started := aheadFixture(t)
	keys := f.keys()
	s := f.source(t, chunkedOptions())
	f.fetchFirst(t, t.Context(), s, started)
	f.fetch(t, t.Context(), s, keys[2])
	assert.Zero(t, s.Stats().PrefetchHits, "the blob fetched was not the one read ahead")
	require.NoError(t, s.Close())
	requireBudgetFree(t, f.st.Budget())
}

// TestChunkedReadAheadContexts: a blob read ahead outlives the context
// of the Fetch that started it, and once fetched ends with the context of
// its own Fetch.
func TestChunkedReadAheadContexts(t *testing.T) {
	f, _, started := aheadFixture(t)
	keys := f.keys()
	s := f.source(t, chunkedOptions())
	first, cancelFirst := context.WithCancel(t.Context())
	f.fetchFirst(t, first, s, started)
	cancelFirst()
	f.fetch(t, t.Context(), s, keys[1])
	assert.Equal(t, 1, s.Stats().PrefetchHits)

	third, cancelThird := context.WithCancel(t.Context())
	rc, err := s.Fetch(third, keys[2]) // read ahead at the Fetch of keys[1]
	require.NoError(t, err)
	defer rc.Close()
	cancelThird()
	// What was downloaded before the cancellation may still be served;
	// the reader must end with the cancellation, not with a clean end.
	_, err = io.Copy(io.Discard, rc)
	if err == nil {
		assert.Equal(t, 2, s.Stats().PrefetchHits)
		t.Log("the whole blob was in before the cancellation")
	} else {
		require.ErrorIs(t, err, context.Canceled)
	}
}
