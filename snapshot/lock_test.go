package snapshot_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/visitors"
)

// failingStore fails its export after its blobs are visited.
type failingStore struct{ *coretest.ObjectStore }

var errSnapshot = errors.New("snapshot failed")

func (s failingStore) SnapshotWithBlobs(ctx context.Context, account, region string, v core.BlobVisitor) (coretest.ObjectStoreView, error) {
	if _, err := s.ObjectStore.SnapshotWithBlobs(ctx, account, region, v); err != nil {
		return coretest.ObjectStoreView{}, err
	}
	return coretest.ObjectStoreView{}, errSnapshot
}

// An export holds a shared lock while its blobs go up, and releases it
// when it ends, whether it succeeds or fails.
func TestExportHoldsASharedLock(t *testing.T) {
	r := openTemp(t)
	layer := repo.New(r.Store(), nil)
	svc := coretest.NewObjectStore()
	_, _, err := coretest.Fill(t.Context(), svc, "a", "r", coretest.FillOptions{Objects: 5, Seed: 1})
	require.NoError(t, err)

	for _, tc := range []struct {
		name string
		svc  core.BlobBackedService[coretest.ObjectStoreView]
		want error
	}{
		{"success", svc, nil},
		{"failure", failingStore{svc}, errSnapshot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex // the blobs of a batch go up in parallel
			var during [][]repo.LockInfo
			opts := &snapshot.ExportOptions{Visitor: visitors.Options{OnBlob: func(visitors.Event) {
				locks, err := layer.Locks(t.Context())
				assert.NoError(t, err)
				mu.Lock()
				during = append(during, locks)
				mu.Unlock()
			}}}
			_, err := snapshot.Export(t.Context(), r, tc.svc, "a", "r", opts)
			require.ErrorIs(t, err, tc.want)
			require.NotEmpty(t, during)
			for _, locks := range during {
				require.Len(t, locks, 1, "one lock while the blobs go up")
				assert.Equal(t, repo.SharedLock, locks[0].Kind)
				assert.False(t, locks[0].Stale)
			}
			locks, err := layer.Locks(t.Context())
			require.NoError(t, err)
			assert.Empty(t, locks, "the lock is released")
		})
	}
}

// A cancelled export releases its lock too.
func TestCancelledExportReleasesItsLock(t *testing.T) {
	r := openTemp(t)
	svc := coretest.NewObjectStore()
	_, _, err := coretest.Fill(t.Context(), svc, "a", "r", coretest.FillOptions{Objects: 5, Seed: 1})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	_, err = snapshot.Export(ctx, r, svc, "a", "r", &snapshot.ExportOptions{Visitor: visitors.Options{OnBlob: func(visitors.Event) { cancel() }}})
	require.ErrorIs(t, err, context.Canceled)
	locks, err := repo.New(r.Store(), nil).Locks(t.Context())
	require.NoError(t, err)
	assert.Empty(t, locks)
}

// An exclusive lock, as a garbage collection holds, makes exports fail
// before they write anything, naming the lock.
func TestExclusiveLockStopsExports(t *testing.T) {
	ctx := t.Context()
	r := openTemp(t)
	layer := repo.New(r.Store(), nil)
	gc, err := layer.Lock(ctx, repo.ExclusiveLock)
	require.NoError(t, err)

	svc := coretest.NewObjectStore()
	_, _, err = coretest.Fill(ctx, svc, "a", "r", coretest.FillOptions{Objects: 3, Seed: 1})
	require.NoError(t, err)
	_, err = snapshot.Export(ctx, r, svc, "a", "r", nil)
	require.ErrorIs(t, err, core.ErrConflict)
	assert.Contains(t, err.Error(), "exclusive lock "+gc.Info().ID)
	kv := coretest.NewKV()
	_, err = snapshot.ExportState(ctx, r, kv, "a", "r", nil)
	require.ErrorIs(t, err, core.ErrConflict)
	assert.Contains(t, err.Error(), gc.Info().ID)

	locks, err := layer.Locks(ctx)
	require.NoError(t, err)
	require.Len(t, locks, 1, "the refused exports left no lock")
	var blobs int
	require.NoError(t, layer.ListBlobs(ctx, func(digest.Digest, int64) error { blobs++; return nil }))
	assert.Zero(t, blobs, "a refused export uploaded blobs")

	require.NoError(t, gc.Unlock(ctx))
	_, err = snapshot.Export(ctx, r, svc, "a", "r", nil)
	require.NoError(t, err)
}
