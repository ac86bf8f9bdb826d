package repotest

import (
	"context"
	"io"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store"
)

// statBarrier holds every Stat of a tag until n of them have answered, so
// that n writers moving a tag all read it before any of them writes it.
// It passes conditional writes on to the driver it wraps.
type statBarrier struct {
	store.Driver
	wg sync.WaitGroup
}

func (d *statBarrier) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	info, err := d.Driver.Stat(ctx, name)
	if _, ok := repo.ParseTagName(name); ok {
		d.wg.Done()
		d.wg.Wait()
	}
	return info, err
}

func (d *statBarrier) PutIfMatch(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions, version string) error {
	return d.Driver.(store.ConditionalPutter).PutIfMatch(ctx, name, body, size, opts, version)
}

// testTagMoveRace moves one tag from the same snapshot to two others at
// once: exactly one move wins, and the other is told where the tag
// points now.
func testTagMoveRace(t *testing.T, r *snapshot.Repo) {
	ctx := t.Context()
	if _, ok := r.Store().Driver().(store.ConditionalPutter); !ok {
		t.Skipf("%T cannot compare and swap: tags move unconditionally", r.Store().Driver())
	}
	var ids []digest.Digest
	for _, v := range []string{"old", "one", "two"} {
		m, err := snapshot.ExportState(ctx, r, smallKV(t, v), acct, region, nil)
		require.NoError(t, err)
		ids = append(ids, m.ID)
	}
	_, err := r.Tag(ctx, "race", ids[0].String(), nil)
	require.NoError(t, err)

	barrier := &statBarrier{Driver: r.Store().Driver()}
	barrier.wg.Add(2)
	racing := snapshot.New(store.New(barrier, r.Location(), nil))
	results := make([]*snapshot.TagResult, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() { results[i], errs[i] = racing.Tag(ctx, "race", ids[1+i].String(), nil) })
	}
	wg.Wait()

	require.True(t, (errs[0] == nil) != (errs[1] == nil), "exactly one move wins: %v; %v", errs[0], errs[1])
	winner := 0
	if errs[0] != nil {
		winner = 1
	}
	loser := 1 - winner
	require.ErrorIs(t, errs[loser], core.ErrConflict)
	var ce *repo.TagConflictError
	require.ErrorAs(t, errs[loser], &ce)
	require.NotNil(t, ce.Current)
	assert.Equal(t, ids[1+winner], ce.Current.Snapshot, "the loser is told the winner's target")
	require.NotNil(t, results[winner].Previous)
	assert.Equal(t, ids[0], results[winner].Previous.Snapshot)
	assert.False(t, results[winner].Unconditional)
	m, err := r.Show(ctx, "race", snapshot.Filter{})
	require.NoError(t, err)
	assert.Equal(t, ids[1+winner], m.ID)
}

// smallKV returns a plain service holding /k = v.
func smallKV(t *testing.T, v string) *coretest.KV {
	t.Helper()
	svc := coretest.NewKV()
	require.NoError(t, svc.Put(t.Context(), acct, region, "/k", v))
	return svc
}

// testRemoveAndCollect removes every snapshot, then collects: no blob and
// no view is left.
func testRemoveAndCollect(t *testing.T, r *snapshot.Repo) {
	ctx := t.Context()
	_, err := snapshot.Export(ctx, r, smallStore(t), acct, region, &snapshot.ExportOptions{Tag: "blobs"})
	require.NoError(t, err)
	refs := []string{"blobs"}
	for _, v := range []string{"one", "two"} {
		m, err := snapshot.ExportState(ctx, r, smallKV(t, v), acct, region, nil)
		require.NoError(t, err)
		refs = append(refs, m.ID.String())
	}
	removed, err := r.Remove(ctx, refs, nil)
	require.NoError(t, err)
	require.Len(t, removed, 3)
	rep, err := r.GC(ctx, &snapshot.GCOptions{Grace: -1})
	require.NoError(t, err)
	assert.Positive(t, rep.Blobs.Objects)
	assert.Zero(t, rep.Snapshots)

	layer := repo.New(r.Store(), nil)
	left := 0
	require.NoError(t, layer.ListBlobs(ctx, func(digest.Digest, int64) error { left++; return nil }))
	require.NoError(t, layer.ListViews(ctx, func(repo.Object) error { left++; return nil }))
	assert.Zero(t, left, "gc left blobs or views")
	tags, err := r.Tags(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, tags)
	locks, err := layer.Locks(ctx)
	require.NoError(t, err)
	assert.Empty(t, locks)
}
