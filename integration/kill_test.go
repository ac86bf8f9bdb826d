package integration_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/visitors"
)

// The helper process of TestKillCopy reads what to copy from these
// environment variables.
const (
	envKillHelper = "STATEBUCKET_KILL_HELPER" // "copy": run as the helper
	envKillFrom   = "STATEBUCKET_KILL_FROM"
	envKillTo     = "STATEBUCKET_KILL_TO"
	envKillRef    = "STATEBUCKET_KILL_REF"
	// envKillSeed overrides the seed of the kill moments.
	envKillSeed = "STATEBUCKET_KILL_SEED"
)

// TestKillCopyHelper is the copy that TestKillCopy runs in a child
// process and kills: it copies one ref, printing a line per blob handled.
// Run directly, it does nothing.
func TestKillCopyHelper(t *testing.T) {
	if os.Getenv(envKillHelper) != "copy" {
		t.Skip("the helper process of TestKillCopy")
	}
	ctx := t.Context()
	from, err := snapshot.Open(ctx, os.Getenv(envKillFrom))
	require.NoError(t, err)
	to, err := snapshot.Open(ctx, os.Getenv(envKillTo))
	require.NoError(t, err)
	fmt.Println("start")
	_, err = snapshot.Copy(ctx, from, to, []string{os.Getenv(envKillRef)}, &snapshot.CopyOptions{
		// One write per line, so lines of concurrent blobs never mix.
		Visitor: visitors.Options{OnBlob: func(visitors.Event) { os.Stdout.WriteString("blob\n") }},
	})
	require.NoError(t, err)
	fmt.Println("copied")
}

// TestKillCopy kills copies with SIGKILL at random moments: after a
// number of blobs drawn from a seeded RNG, from none (while the copy
// takes its lock and lists the target) to all (while it writes the view
// and commits). After each kill every snapshot the target lists passes
// verify with read-data, every tag there names one of them, and running
// the copy again succeeds. Each round copies another snapshot into the
// same target, over what earlier rounds left.
func TestKillCopy(t *testing.T) {
	const rounds = 12
	seed := killSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed))
	ctx := t.Context()

	fromDir := filepath.Join(t.TempDir(), "from")
	toDir := filepath.Join(t.TempDir(), "to")
	from, err := snapshot.Open(ctx, fromDir)
	require.NoError(t, err)
	defer from.Close()
	var ms []*manifest.Manifest
	for i := range rounds {
		// Mostly distinct blobs per snapshot, so that every round moves
		// many; some shared with earlier rounds, already on the target.
		svc := coretest.NewObjectStore()
		_, _, err := coretest.Fill(ctx, svc, acct, region, coretest.FillOptions{Objects: 150, Size: 32 << 10, Seed: int64(i % (rounds - 2))})
		require.NoError(t, err)
		_, err = svc.PutObject(ctx, acct, region, "coretest-plain", "round", []byte(strconv.Itoa(i)))
		require.NoError(t, err)
		m, err := snapshot.Export(ctx, from, svc, acct, region, &snapshot.ExportOptions{Tag: fmt.Sprintf("round-%d", i)})
		require.NoError(t, err)
		ms = append(ms, m)
	}

	killed, finished := 0, 0
	for i, m := range ms {
		ref := fmt.Sprintf("round-%d", i)
		after := rng.IntN(len(m.Blobs) + 1) // blob lines to wait for
		if runAndKill(t, fromDir, toDir, ref, after) {
			killed++
		} else {
			finished++
		}
		to, err := snapshot.Open(ctx, toDir)
		require.NoError(t, err)
		requireWhole(t, to, fmt.Sprintf("round %d, killed after %d of %d blobs", i, after, len(m.Blobs)))
		rep, err := snapshot.Copy(ctx, from, to, []string{ref}, nil)
		require.NoError(t, err, "the copy run again after round %d", i)
		require.Equal(t, m.ID, rep.Snapshots[0].Manifest.ID)
		t.Logf("round %d: killed after %d of %d blob lines; the re-run found the snapshot committed: %t, moved %d blobs",
			i, after, len(m.Blobs), rep.Snapshots[0].Existed, rep.Transferred)
		_, err = to.Verify(ctx, m.ID.String(), &snapshot.VerifyOptions{ReadData: true})
		require.NoError(t, err)
		require.NoError(t, to.Close())
	}
	t.Logf("%d copies killed with SIGKILL and survived; %d finished before their kill moment", killed, finished)
	assert.GreaterOrEqual(t, killed, 10, "too few kills landed")
}

// runAndKill runs the helper copying ref from one directory to the
// other, kills it with SIGKILL once it has printed after blob lines, and
// reports whether the kill landed (false: the copy finished first).
func runAndKill(t *testing.T, fromDir, toDir, ref string, after int) bool {
	t.Helper()
	env := []string{envKillHelper + "=copy", envKillFrom + "=" + fromDir, envKillTo + "=" + toDir, envKillRef + "=" + ref}
	blobs, started := 0, false
	return runHelper(t, "TestKillCopyHelper", env, func(line string) bool {
		switch line {
		case "start":
			started = true
		case "blob":
			blobs++
		}
		return started && blobs >= after
	}).killed
}

// requireWhole requires every snapshot r lists to pass verify with
// read-data, and every tag to name one of them.
func requireWhole(t *testing.T, r *snapshot.Repo, when string) {
	t.Helper()
	ms, err := r.List(t.Context(), snapshot.Filter{})
	require.NoError(t, err, when)
	listed := map[string]bool{}
	for _, m := range ms {
		_, err := r.Verify(t.Context(), m.ID.String(), &snapshot.VerifyOptions{ReadData: true})
		require.NoError(t, err, "%s: snapshot %s", when, m.ID)
		listed[m.ID.String()] = true
	}
	tags, err := r.Tags(t.Context(), nil)
	require.NoError(t, err, when)
	for _, tag := range tags {
		require.True(t, listed[tag.Snapshot.String()], "%s: tag %s names %s, which is not a whole snapshot", when, tag.Name, tag.Snapshot)
	}
}
