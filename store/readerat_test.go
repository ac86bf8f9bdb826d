package store_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
)

// rangeDriver counts the ranged reads that reach it.
type rangeDriver struct {
	store.Driver
	mu     sync.Mutex
	ranges []string
}

func (d *rangeDriver) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	d.mu.Lock()
	d.ranges = append(d.ranges, fmt.Sprintf("%d+%d", offset, length))
	d.mu.Unlock()
	return d.Driver.GetRange(ctx, name, offset, length)
}

func (d *rangeDriver) all() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.ranges...)
}

// readerAtStore returns a Store of a budget of one request over a
// directory holding data under name, and its counting driver.
func readerAtStore(t *testing.T, name string, data []byte) (*store.Store, *rangeDriver) {
	t.Helper()
	drv := &rangeDriver{Driver: newDir(t)}
	st := store.New(drv, "test", &store.Options{Budget: store.NewBudget(1, 0)})
	require.NoError(t, st.PutBytes(t.Context(), name, data, store.PutOptions{}))
	return st, drv
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

const blobName = "blobs/b"

// Reading the object in order makes one ranged read, to a byte past the
// end, which also checks that the object ends where expected; reads
// take no request slot, so they run while the only one is held.
func TestReaderAtSequential(t *testing.T) {
	data := pattern(100_000)
	st, drv := readerAtStore(t, blobName, data)
	ra, err := st.ReaderAt(t.Context(), blobName, int64(len(data)))
	require.NoError(t, err)
	defer ra.Close()

	// Hold the budget's only request slot, as a Put reading ra does.
	gate := make(chan struct{})
	entered := make(chan struct{})
	putDone := make(chan error, 1)
	go func() {
		putDone <- st.Put(t.Context(), "other", gatedBody{entered, gate}, 1, store.PutOptions{})
	}()
	<-entered
	got := make([]byte, 0, len(data))
	buf := make([]byte, 4096)
	for off := int64(0); ; {
		n, err := ra.ReadAt(buf, off)
		got = append(got, buf[:n]...)
		off += int64(n)
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
	}
	close(gate)
	require.NoError(t, <-putDone)
	require.Equal(t, data, got)
	assert.Equal(t, []string{"0+100001"}, drv.all())
	assert.Equal(t, int64(len(data)), ra.SizeSeen())
	require.NoError(t, ra.CheckEnd(t.Context()))
	assert.Len(t, drv.all(), 1, "the end was checked already")
}

// gatedBody is a Put body of one byte that signals entered when first
// read and then waits for gate to close.
type gatedBody struct{ entered, gate chan struct{} }

func (b gatedBody) ReadAt(p []byte, off int64) (int, error) {
	b.entered <- struct{}{}
	<-b.gate
	p[0] = 'x'
	return 1, io.EOF
}

// Parts read concurrently each get their own stream, or go on with the
// one a part before them ended at: at most one ranged read per part.
func TestReaderAtParts(t *testing.T) {
	const part = 10_000
	data := pattern(4*part + 123)
	st, drv := readerAtStore(t, blobName, data)
	ra, err := st.ReaderAt(t.Context(), blobName, int64(len(data)))
	require.NoError(t, err)
	defer ra.Close()
	got := make([]byte, len(data))
	var g errgroup.Group
	for off := 0; off < len(data); off += part {
		end := min(off+part, len(data))
		g.Go(func() error {
			_, err := io.ReadFull(io.NewSectionReader(ra, int64(off), int64(end-off)), got[off:end])
			return err
		})
	}
	require.NoError(t, g.Wait())
	require.Equal(t, data, got)
	assert.LessOrEqual(t, len(drv.all()), 5, "at most one ranged read per part")
}

// An object shorter or longer than expected makes the reads say so, and
// CheckEnd finds an object longer than expected that no read reached
// the end of.
func TestReaderAtOtherSize(t *testing.T) {
	data := pattern(5000)
	for _, tc := range []struct {
		name     string
		stored   []byte
		seen     int64
		wantRead error
	}{
		{"shorter", data[:4000], 4000, io.EOF},
		{"longer", append(bytes.Clone(data), 'x'), 5001, core.ErrSizeMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := readerAtStore(t, blobName, tc.stored)
			ra, err := st.ReaderAt(t.Context(), blobName, int64(len(data)))
			require.NoError(t, err)
			defer ra.Close()
			got, err := io.ReadAll(io.NewSectionReader(ra, 0, int64(len(data))))
			if tc.wantRead == io.EOF {
				require.NoError(t, err, "ReadAll stops at io.EOF")
			} else {
				require.ErrorIs(t, err, tc.wantRead)
				assert.Contains(t, err.Error(), blobName)
				// An upload reading the body must never send all of
				// its length, or the server would store the object.
				assert.Less(t, len(got), len(data), "the read that found the extra byte returned the last bytes")
			}
			assert.Equal(t, tc.seen, ra.SizeSeen())

			fresh, err := st.ReaderAt(t.Context(), blobName, int64(len(data)))
			require.NoError(t, err)
			defer fresh.Close()
			assert.Equal(t, int64(-1), fresh.SizeSeen())
			if tc.seen > int64(len(data)) {
				require.ErrorIs(t, fresh.CheckEnd(t.Context()), core.ErrSizeMismatch)
			} else {
				require.NoError(t, fresh.CheckEnd(t.Context()))
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		st, _ := readerAtStore(t, blobName, data)
		ra, err := st.ReaderAt(t.Context(), "blobs/missing", 0)
		require.NoError(t, err)
		require.ErrorIs(t, ra.CheckEnd(t.Context()), core.ErrNotFound)
		_, err = ra.ReadAt(make([]byte, 1), 0)
		require.ErrorIs(t, err, io.EOF, "nothing to read in an empty object")
		ra.Close()
		_, err = st.ReaderAt(t.Context(), blobName, -1)
		require.ErrorIs(t, err, core.ErrInvalid)
	})
}

// Reads after Close fail.
func TestReaderAtClosed(t *testing.T) {
	data := pattern(10)
	st, _ := readerAtStore(t, blobName, data)
	ra, err := st.ReaderAt(t.Context(), blobName, int64(len(data)))
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = ra.ReadAt(buf, 0)
	require.NoError(t, err)
	require.NoError(t, ra.Close())
	_, err = ra.ReadAt(buf, 4)
	require.Error(t, err)
}
