package sources_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/sources"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
)

// TestOneRequestBudget exports and imports many blobs, and a large one
// read in chunks, through a store whose budget allows one request at a
// time and little memory: since every request slot is taken inside the
// store, and no holder of a slot waits for another, both finish.
func TestOneRequestBudget(t *testing.T) {
	// The large blob is read in ranged reads, and in one request read in
	// order, which must not hold the one request slot while it waits.
	for _, parallel := range []int64{256 << 10, 0} {
		t.Run(fmt.Sprintf("parallel from %d", parallel), func(t *testing.T) { oneRequestBudget(t, parallel) })
	}
}

func oneRequestBudget(t *testing.T, parallel int64) {
	// A deadlock would hang the test: fail it instead, long after any
	// run of the test could have finished.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	const acct, region = "123456789012", "eu-west-1"
	src := coretest.NewObjectStore()
	_, _, err := coretest.Fill(ctx, src, acct, region, coretest.FillOptions{Objects: 300, Size: 64 << 10, Seed: 5, Hostile: true})
	require.NoError(t, err)
	large := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: 8 chunks
	require.NoError(t, src.CreateBucket(ctx, acct, region, "large", false))
	_, err = src.PutObject(ctx, acct, region, "large", "blob", large)
	require.NoError(t, err)

	fs, err := filestore.New(t.TempDir(), nil)
	require.NoError(t, err)
	drv := &rangeCounter{Driver: fs}
	r := snapshot.New(store.New(drv, "test", &store.Options{Budget: store.NewBudget(1, 512<<10)}))
	defer r.Close()
	m, err := snapshot.Export(ctx, r, src, acct, region, &snapshot.ExportOptions{})
	require.NoError(t, err)

	dst := coretest.NewObjectStore()
	var stats sources.Stats
	_, err = snapshot.Import(ctx, r, dst, acct, region, m.ID.String(), &snapshot.ImportOptions{
		Source: sources.Options{LargeThreshold: 256 << 10, ChunkSize: 128 << 10, ParallelThreshold: parallel},
		Stats:  &stats,
	})
	require.NoError(t, err)
	assert.Equal(t, len(m.Blobs), stats.Fetched)
	got, err := dst.GetObject(ctx, acct, region, "large", "blob")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(large, got), "the large blob differs")
	if parallel > 0 {
		assert.Equal(t, int64(len(large)/(128<<10)), drv.ranges.Load(), "the large blob was not read in chunks")
	} else {
		assert.Positive(t, drv.ranges.Load(), "the large blob was not read in ranges")
	}
	want, err := src.Snapshot(ctx, acct, region)
	require.NoError(t, err)
	have, err := dst.Snapshot(ctx, acct, region)
	require.NoError(t, err)
	assert.Equal(t, want, have)
}

// rangeCounter counts the ranged reads of a filestore driver.
type rangeCounter struct {
	*filestore.Driver
	ranges atomic.Int64
}

func (d *rangeCounter) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	d.ranges.Add(1)
	return d.Driver.GetRange(ctx, name, offset, length)
}

// TestLocalStoreStreams checks the defaults on a local store: a blob too
// large for memory streams in chunks, as it is read, rather than being
// copied into a spool file first; on a store that is not local it is
// spooled, so that many download at once.
func TestLocalStoreStreams(t *testing.T) {
	for _, local := range []bool{true, false} {
		t.Run(fmt.Sprintf("local %v", local), func(t *testing.T) {
			fs, err := filestore.New(t.TempDir(), nil)
			require.NoError(t, err)
			rc := &rangeCounter{Driver: fs}
			var drv store.Driver = rc
			if !local {
				drv = struct{ store.Driver }{rc} // hides Local
			}
			st := store.New(drv, "test", nil)
			defer st.Close()
			data := bytes.Repeat([]byte("statebucket"), 1000)
			d := digest.FromBytes(data)
			r := repo.New(st, nil)
			require.NoError(t, r.PutBlob(t.Context(), d, bytes.NewReader(data), int64(len(data))))
			m, err := manifest.New("s3", "123456789012", "eu-west-1", manifest.Object{Digest: digest.FromSum(make([]byte, 32))},
				[]manifest.Entry{{Key: "big", Digest: d, Size: int64(len(data))}})
			require.NoError(t, err)

			tmp := t.TempDir()
			s := sources.New(r, m, &sources.Options{MemoryThreshold: 1 << 10, TempDir: tmp})
			defer s.Close()
			blob, err := s.Fetch(t.Context(), "big")
			require.NoError(t, err)
			got, err := io.ReadAll(blob)
			require.NoError(t, err)
			require.NoError(t, blob.Close())
			assert.True(t, bytes.Equal(data, got), "the blob differs")
			if local {
				assert.Positive(t, rc.ranges.Load(), "the blob was not streamed in chunks")
			} else {
				assert.Zero(t, rc.ranges.Load(), "the blob was read in chunks, not spooled")
			}
		})
	}
}
