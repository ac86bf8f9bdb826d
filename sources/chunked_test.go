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
	mu     sync.Mutex
	calls  map[int64]int // by offset
	ranges atomic.Int64
}

func (d *rangeDriver) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	d.ranges.Add(1)
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

func chunkedOptions() sources.Options {
	return sources.Options{LargeThreshold: large, ChunkSize: chunk}
}

func TestChunkedReadsRoundTrip(t *testing.T) {
	sizes := []int{large, large + 1, 10*chunk - 3, 3 * large}
	f, rd := largeFixture(t, sizes...)
	s := f.source(t, chunkedOptions())
	for _, key := range f.keys() {
		f.fetch(t, t.Context(), s, key)
	}
	want := int64(0)
	for _, n := range sizes {
		want += int64((n + chunk - 1) / chunk)
	}
	assert.Equal(t, want, rd.ranges.Load(), "one ranged read per chunk")
	assert.Zero(t, rd.getsOf(f.name(f.keys()[0])), "a large blob was downloaded whole")
	f.requireNoTempFiles(t)
	require.NoError(t, s.Close())
	requireBudgetFree(t, f.st.Budget())
}

func readAll(t *testing.T, s *sources.Source, key string) error {
	t.Helper()
	rc, err := s.Fetch(t.Context(), key)
	require.NoError(t, err, "the mismatch shows when the bytes pass, not at Fetch")
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
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
		t.Run(tc.name, func(t *testing.T) {
			f, rd := largeFixture(t, 2*large)
			key := f.keys()[0]
			f.replace(t, key, tc.edit(bytes.Clone(f.data[key])))
			s := f.source(t, chunkedOptions())
			err := readAll(t, s, key)
			require.ErrorIs(t, err, tc.sentinel)
			var me *repo.MismatchError
			require.ErrorAs(t, err, &me)
			assert.Equal(t, key, me.Key)
			if tc.actual != "" {
				assert.Equal(t, tc.actual, me.Actual)
			}
			assert.LessOrEqual(t, rd.read.Load(), int64(2*large+1), "read past the recorded size + 1")
			require.NoError(t, s.Close())
			requireBudgetFree(t, f.st.Budget())
		})
	}
}

// TestChunkedReadsSurviveTransientErrors fails the first read of every
// chunk: the store reads it again.
func TestChunkedReadsSurviveTransientErrors(t *testing.T) {
	f, rd := largeFixture(t, 3*large)
	rd.fail = func(off int64, n int) error {
		if n == 1 {
			return fmt.Errorf("connection reset by peer: %w", core.ErrTransient)
		}
		return nil
	}
	s := f.source(t, chunkedOptions())
	f.fetch(t, t.Context(), s, f.keys()[0])
	chunks := 3 * large / chunk
	assert.Equal(t, int64(2*chunks), rd.ranges.Load())
}

func TestChunkedReadsDoNotRetryMissingBlobs(t *testing.T) {
	f, rd := largeFixture(t, large)
	key := f.keys()[0]
	require.NoError(t, f.st.Delete(t.Context(), f.name(key)))
	s := f.source(t, chunkedOptions())
	err := readAll(t, s, key)
	require.ErrorIs(t, err, core.ErrNotFound)
	assert.Contains(t, err.Error(), fmt.Sprintf("%q", key))
	assert.LessOrEqual(t, rd.ranges.Load(), int64(large/chunk), "a missing blob is read once per chunk at most")
}

func TestChunkedReadsFallBackToSpoolWithoutMemory(t *testing.T) {
	f, rd := largeFixture(t, large)
	f.st = store.New(rd, "test", &store.Options{Budget: store.NewBudget(4, chunk)}) // less than one chunk + 1
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
