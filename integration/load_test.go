package integration_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/snapshot"
)

// TestLoad runs 64 exports of different states into one repository at
// once (a third of that on backends that are not full), each through its own handle as separate processes would, while
// two readers list the repository again and again and import every
// snapshot they see listed for the first time. Every export succeeds;
// every import of a listed snapshot succeeds and gives back, byte-exact,
// the state that snapshot was exported from (so no reader ever saw a
// partial snapshot); at the end the repository lists every snapshot,
// each verifies with read-data and each tag names its own.
func TestLoad(t *testing.T) {
	eachBackend(t, testLoad)
}

func testLoad(t *testing.T, b backend) {
	writers, readers := b.scaled(64), 2
	ctx := t.Context()
	repoURL, _ := b.newRepo(t)
	states := make([]*coretest.ObjectStore, writers)
	for i := range states {
		states[i] = coretest.NewObjectStore()
		// From 2 to 32 objects, so that commits spread over the run.
		_, _, err := coretest.Fill(ctx, states[i], acct, region, coretest.FillOptions{Objects: 2 + i*13%31, Size: 16 << 10, Seed: int64(100 + i), Hostile: i%2 == 0})
		require.NoError(t, err)
	}

	var (
		mu       sync.Mutex
		ids      = map[digest.Digest]int{} // snapshot id -> the state exported
		imported = map[digest.Digest][]*coretest.ObjectStore{}
	)
	open := func() (*snapshot.Repo, error) { return snapshot.Open(ctx, repoURL) }
	exports, ectx := errgroup.WithContext(ctx)
	for i := range writers {
		exports.Go(func() error {
			r, err := open()
			if err != nil {
				return err
			}
			defer r.Close()
			m, err := snapshot.Export(ectx, r, states[i], acct, region, &snapshot.ExportOptions{Tag: fmt.Sprintf("load-%d", i)})
			if err != nil {
				return fmt.Errorf("export %d: %w", i, err)
			}
			mu.Lock()
			defer mu.Unlock()
			ids[m.ID] = i
			return nil
		})
	}
	writing, stop := context.WithCancel(ctx)
	reads, rctx := errgroup.WithContext(ctx)
	lists := make([]int, readers)
	for j := range readers {
		reads.Go(func() error {
			r, err := open()
			if err != nil {
				return err
			}
			defer r.Close()
			seen := map[digest.Digest]bool{}
			for {
				last := writing.Err() != nil // the exports had all returned before this listing
				mu.Lock()
				committed := len(ids) > 0
				mu.Unlock()
				ms, err := r.List(rctx, snapshot.Filter{})
				if errors.Is(err, core.ErrBucketNotFound) && !committed {
					continue // a directory that no export has created yet
				}
				if err != nil {
					return fmt.Errorf("reader %d: %w", j, err)
				}
				lists[j]++
				for _, m := range ms {
					if seen[m.ID] {
						continue
					}
					seen[m.ID] = true
					dst := coretest.NewObjectStore()
					if _, err := snapshot.Import(rctx, r, dst, acct, region, m.ID.String(), nil); err != nil {
						return fmt.Errorf("reader %d: snapshot %s, listed: %w", j, m.ID, err)
					}
					mu.Lock()
					imported[m.ID] = append(imported[m.ID], dst)
					mu.Unlock()
				}
				if last {
					return nil
				}
			}
		})
	}
	require.NoError(t, exports.Wait())
	stop()
	require.NoError(t, reads.Wait())

	require.Len(t, ids, writers, "distinct snapshots")
	r, err := open()
	require.NoError(t, err)
	defer r.Close()
	ms, err := r.List(ctx, snapshot.Filter{})
	require.NoError(t, err)
	require.Len(t, ms, writers)
	for _, m := range ms {
		_, err := r.Verify(ctx, m.ID.String(), &snapshot.VerifyOptions{ReadData: true})
		require.NoError(t, err)
		tagged, err := r.Show(ctx, fmt.Sprintf("load-%d", ids[m.ID]), snapshot.Filter{})
		require.NoError(t, err)
		assert.Equal(t, m.ID, tagged.ID)
	}
	imports := 0
	for id, dsts := range imported {
		i, ok := ids[id]
		require.True(t, ok, "a reader imported %s, which no export committed", id)
		for _, dst := range dsts {
			require.NoError(t, sameState(t, states[i], dst))
			imports++
		}
	}
	assert.Len(t, imported, writers, "the readers saw every snapshot")
	t.Logf("%s: %d concurrent exports committed and verified; %d readers listed %v times and imported %d snapshots byte-exact, none partial",
		b.name, writers, readers, lists, imports)
}
