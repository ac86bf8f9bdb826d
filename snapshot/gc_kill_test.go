package snapshot_test

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/snapshot"
)

const (
	// killRepoEnv names the repository the helper process collects.
	killRepoEnv = "STATEBUCKET_TEST_GC_KILL_REPO"
	// progressLine is what the helper prints after each deletion.
	progressLine = "gc-deleted"
)

// TestGCKillHelper is the process TestGCSurvivesSIGKILL starts and kills:
// it runs a garbage collection of the repository named in its
// environment, printing a line after each deletion. Run directly, it has
// nothing to do.
func TestGCKillHelper(t *testing.T) {
	dir := os.Getenv(killRepoEnv)
	if dir == "" {
		t.Skip("the helper process of TestGCSurvivesSIGKILL")
	}
	r, err := snapshot.Open(t.Context(), dir)
	require.NoError(t, err)
	_, err = r.GC(t.Context(), &snapshot.GCOptions{Grace: -1, OnDelete: func(int64) { fmt.Fprintln(os.Stdout, progressLine) }})
	require.NoError(t, err)
}

// TestGCSurvivesSIGKILL kills a garbage collection (a process of its own)
// with SIGKILL at random points, once it has reported a random number of
// deletions: every snapshot still listed passes verify --read-data, and a
// collection run again (the dead process's lock is stale at once on this
// host) succeeds and leaves nothing unreferenced.
func TestGCSurvivesSIGKILL(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGKILL")
	}
	ctx := t.Context()
	template := filepath.Join(t.TempDir(), "template")
	r, err := snapshot.Open(ctx, template)
	require.NoError(t, err)
	var garbage []string
	for i := range 6 {
		svc := coretest.NewObjectStore()
		_, _, err := coretest.Fill(ctx, svc, "a", fmt.Sprint("r", i), coretest.FillOptions{Objects: 60, Size: 2 << 10, Seed: int64(i)})
		require.NoError(t, err)
		m, err := snapshot.Export(ctx, r, svc, "a", fmt.Sprint("r", i), nil)
		require.NoError(t, err)
		if i%2 == 1 {
			garbage = append(garbage, m.ID.String())
		}
	}
	_, err = r.Remove(ctx, garbage, nil)
	require.NoError(t, err)
	plan, err := r.GC(ctx, &snapshot.GCOptions{DryRun: true, Grace: -1})
	require.NoError(t, err)
	require.NoError(t, r.Close())
	total := plan.Blobs.Objects + plan.Views.Objects
	require.Greater(t, total, 100)

	rng := rand.New(rand.NewPCG(2026, 9))
	kills, rounds := 0, 0
	for ; kills < 12 && rounds < 40; rounds++ {
		dir := filepath.Join(t.TempDir(), "repo")
		require.NoError(t, os.CopyFS(dir, os.DirFS(template)))
		at := 1 + rng.IntN(total-1)
		killed := killGCAfter(t, dir, at)

		r, err := snapshot.Open(ctx, dir)
		require.NoError(t, err)
		layer := repo.New(r.Store(), nil)
		locks, err := layer.Locks(ctx)
		require.NoError(t, err)
		if killed && len(locks) == 1 { // killed before it ended
			kills++
			assert.True(t, locks[0].Stale, "the lock of a dead process of this host is stale")
		}
		ms := requireWholeSnapshots(t, r)
		assert.Len(t, ms, 3, "round %d: the snapshots gc must keep are listed", rounds)
		rep, err := r.GC(ctx, &snapshot.GCOptions{Grace: -1})
		require.NoError(t, err, "round %d: gc run again after the kill", rounds)
		assert.Len(t, rep.StaleLocks, len(locks), "the killed gc's lock is removed")
		assert.Equal(t, plan.Referenced.Objects, len(blobDigests(t, layer)), "round %d: only referenced blobs remain", rounds)
		requireWholeSnapshots(t, r)
		require.NoError(t, r.Close())
	}
	t.Logf("gc killed with SIGKILL before it ended %d times in %d rounds, at random points among %d deletions: every listed snapshot stayed whole, and every re-run succeeded", kills, rounds, total)
	require.GreaterOrEqual(t, kills, 12)
}

// killGCAfter runs TestGCKillHelper on the repository dir, kills it with
// SIGKILL once it has reported at deletions, and reports whether it died
// of the signal (rather than finishing first).
func killGCAfter(t *testing.T, dir string, at int) bool {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestGCKillHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), killRepoEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := bufio.NewScanner(out)
	for seen := 0; lines.Scan(); {
		if lines.Text() == progressLine {
			if seen++; seen == at {
				require.NoError(t, cmd.Process.Kill())
				break
			}
		}
	}
	for lines.Scan() { // drain what is left, to the pipe's end
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		require.NoError(t, err)
		return false
	}
	status, ok := exit.Sys().(syscall.WaitStatus)
	require.True(t, ok)
	require.True(t, status.Signaled(), "the helper failed: %v", err)
	return status.Signal() == syscall.SIGKILL
}
