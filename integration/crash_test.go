package integration_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
	"github.com/statebucket/statebucket/visitors"
)

// The helper process of TestCrashExport reads what to export from these
// environment variables.
const (
	envCrashHelper = "STATEBUCKET_CRASH_HELPER" // "export": run as the helper
	envCrashRepo   = "STATEBUCKET_CRASH_REPO"   // the repository's URL
	envCrashState  = "STATEBUCKET_CRASH_STATE"  // the seed of the state (see crashState)
	envCrashSpool  = "STATEBUCKET_CRASH_SPOOL"  // the directory of spool files
	// envCrashHold names the point where the helper stops and waits for
	// its kill: holdHalf, holdView, holdManifest or holdTag; empty: none.
	envCrashHold = "STATEBUCKET_CRASH_HOLD"
)

// The points where a helper stops for its kill.
const (
	holdHalf     = "put-half" // half-way through the upload of a large blob
	holdView     = "view"     // every blob stored and synced, before the view
	holdManifest = "manifest" // the view stored, before the manifest: the commit
	holdTag      = "tag"      // committed, before the tag moves
)

// Sizes of the exported states: many small blobs, and a few whose spool
// goes to a file and whose upload takes long enough to be cut half-way.
const (
	crashObjects   = 80
	crashSmallSize = 8 << 10
	crashLarge     = 2
	crashLargeSize = 2 << 20
	crashSpoolSize = 1 << 20 // the helper's Visitor.MemoryThreshold
)

// crashState returns the state exported in round seed: mostly blobs of
// its own (some keys hostile), small ones shared with other rounds by
// chance, and crashLarge large blobs of its own.
func crashState(t *testing.T, seed int) *coretest.ObjectStore {
	t.Helper()
	ctx := t.Context()
	svc := coretest.NewObjectStore()
	_, _, err := coretest.Fill(ctx, svc, acct, region, coretest.FillOptions{Objects: crashObjects, Size: crashSmallSize, Seed: int64(seed), Hostile: true})
	require.NoError(t, err)
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'c', 'r', 'a', 's', 'h'})
	for k := range crashLarge {
		data := make([]byte, crashLargeSize)
		_, _ = rng.Read(data)
		_, err := svc.PutObject(ctx, acct, region, "coretest-plain", fmt.Sprintf("large/%d", k), data)
		require.NoError(t, err)
	}
	return svc
}

// TestCrashExportHelper is the export that TestCrashExport runs in a
// child process and kills. It prints "start" before the export, "blob"
// after each blob stored or skipped, "put view", "put manifest" and "put
// tag" just before those writes, and, where $STATEBUCKET_CRASH_HOLD
// says, "hold <point>" before it stops there until it is killed. Run
// directly, it does nothing.
func TestCrashExportHelper(t *testing.T) {
	if os.Getenv(envCrashHelper) != "export" {
		t.Skip("the helper process of TestCrashExport")
	}
	seed, err := strconv.Atoi(os.Getenv(envCrashState))
	require.NoError(t, err)
	hold := os.Getenv(envCrashHold)
	var once sync.Once
	// Each line in one write, so that lines of concurrent uploads never mix.
	say := func(line string) { os.Stdout.WriteString(line + "\n") }
	on := func(e tapEvent) {
		if e.Done {
			return
		}
		point := ""
		switch _, view := repo.ParseViewName(e.Name); {
		case e.Op == "put-half":
			point = holdHalf
		case e.Op == "put" && view:
			point = holdView
		case e.Op == "put" && isManifestName(e.Name):
			point = holdManifest
		case e.Op == "put" && isTagName(e.Name):
			point = holdTag
		default:
			return
		}
		if point != holdHalf {
			say("put " + point)
		}
		if point == hold {
			once.Do(func() {
				say("hold " + point)
				_, _ = io.Copy(io.Discard, os.Stdin) // until the kill
				t.Error("still alive after the hold")
			})
		}
	}
	r := openWrapped(t, os.Getenv(envCrashRepo), func(d store.Driver) store.Driver {
		return &tapDriver{Driver: d, on: on, halfSize: crashLargeSize}
	}, nil)
	svc := crashState(t, seed)
	say("start")
	_, err = snapshot.Export(t.Context(), r, svc, acct, region, &snapshot.ExportOptions{
		Tag: fmt.Sprintf("round-%d", seed),
		Visitor: visitors.Options{
			TempDir:         os.Getenv(envCrashSpool),
			MemoryThreshold: crashSpoolSize,
			OnBlob:          func(visitors.Event) { say("blob") },
		},
	})
	require.NoError(t, err)
	say("exported")
}

func isManifestName(name string) bool {
	_, ok := repo.ParseManifestName(name)
	return ok
}

func isHeadName(name string) bool {
	_, ok := repo.ParseHeadName(name)
	return ok
}

func isTagName(name string) bool {
	_, ok := repo.ParseTagName(name)
	return ok
}

// crashMoment is when a round kills its helper: at a hold point, or
// once the helper has handled blobs blobs (0: once it starts).
type crashMoment struct {
	hold  string
	blobs int
}

func (m crashMoment) String() string {
	if m.hold != "" {
		return "at " + m.hold
	}
	return fmt.Sprintf("after %d blobs", m.blobs)
}

// crashMoments returns the kill moment of each round whose export
// handles blobs[i] blobs: every other round after a number of blobs
// drawn from rng, while uploads are in flight; the others, in turn,
// half-way through a large blob's upload, right before the view, right
// before the manifest (the commit point), and right after it, before the
// tag.
func crashMoments(rng *rand.Rand, blobs []int) []crashMoment {
	holds := []string{holdHalf, holdManifest, holdView, holdTag}
	out := make([]crashMoment, len(blobs))
	for i, n := range blobs {
		if i%2 == 1 {
			out[i].hold = holds[i/2%len(holds)]
			continue
		}
		out[i].blobs = rng.IntN(n)
	}
	return out
}

// killAt returns the function that tells runHelper to kill the helper
// at moment m.
func (m crashMoment) killAt() func(line string) bool {
	blobs, started := 0, false
	return func(line string) bool {
		switch line {
		case "start":
			started = true
		case "blob":
			blobs++
		}
		if m.hold != "" {
			return line == "hold "+m.hold
		}
		return started && blobs >= m.blobs
	}
}

// TestCrashExport kills exports of large states (many blobs, some large)
// with SIGKILL at random moments, 22 times per full backend (a third of
// that on the others), each round
// exporting another state into the same repository over what earlier
// rounds left. Kill moments are drawn from a seeded RNG and triggered by
// the helper's progress lines, never by time: after a number of blobs,
// with uploads in flight; and, the helper stopping there until killed,
// half-way through a large blob's upload, between the last blob and the
// view, between the view and the manifest, and between the manifest and
// the tag. After each kill:
//
//   - no partial snapshot is listed: only the snapshots of earlier
//     rounds, and this round's only if its manifest was written; every
//     snapshot listed for the first time passes verify with read-data, and
//     the blobs of every other one are all there (at the end, each passes
//     verify with read-data again); every tag names a listed snapshot;
//   - a cleanup (gc without grace, which removes the killed export's
//     lock and what it stored for a snapshot it did not commit, then the
//     store's Cleaner with no grace, which removes the temporary files
//     whose writer is gone) leaves no temporary file, no incomplete
//     upload, no spool file and no lock behind (but the debris a backend
//     is known to leave, which is counted);
//   - running the export again succeeds, with the id a dry run predicted.
func TestCrashExport(t *testing.T) {
	eachBackend(t, testCrashExport)
}

func testCrashExport(t *testing.T, b backend) {
	rounds := b.scaled(22)
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(killSeed(t), 0))
	repoURL, env := b.newRepo(t)
	spoolDir := t.TempDir()
	r, err := snapshot.Open(ctx, repoURL)
	require.NoError(t, err)
	defer r.Close()

	// What each round exports, and the id a dry run says it commits.
	states := make([]*coretest.ObjectStore, rounds)
	ids := make([]digest.Digest, rounds)
	blobs := make([]int, rounds)
	for i := range rounds {
		states[i] = crashState(t, i)
		m, err := snapshot.Export(ctx, nil, states[i], acct, region, &snapshot.ExportOptions{DryRun: true})
		require.NoError(t, err)
		ids[i], blobs[i] = m.ID, len(m.Blobs)
	}

	verified := map[digest.Digest]bool{}
	var killed, committedAtKill, leftovers int
	var cleaned cleanup
	for i, moment := range crashMoments(rng, blobs) {
		when := fmt.Sprintf("round %d, killed %s", i, moment)
		run := runHelper(t, "TestCrashExportHelper", append(env,
			envCrashHelper+"=export", envCrashRepo+"="+repoURL, envCrashState+"="+strconv.Itoa(i),
			envCrashSpool+"="+spoolDir, envCrashHold+"="+moment.hold), moment.killAt())
		if run.killed {
			killed++
		}

		listed := requireWholeOnce(t, r, verified, when)
		for id := range listed {
			require.Contains(t, ids[:i+1], id, "%s: an unknown snapshot is listed", when)
		}
		if moment.hold != "" {
			require.True(t, run.killed, when)
			require.Equal(t, moment.hold == holdTag, listed[ids[i]], "%s: the snapshot listed or not", when)
		}
		if moment.hold == holdManifest {
			_, err := r.Store().Stat(ctx, repo.ViewName(ids[i]))
			require.NoError(t, err, "%s: the view is not stored", when)
		}
		if listed[ids[i]] {
			committedAtKill++
		}

		c := cleanUpAfterKill(t, r, run.pid, when)
		if b.cutLeavesTemp && moment.hold == holdHalf {
			assert.Positive(t, c.tempFiles, "%s: the cut upload left no temporary file to clean", when)
		}
		cleaned.add(c)
		if b.debris != nil {
			debris := b.debris(t, repoURL)
			if b.leftover == "" {
				require.Empty(t, debris, "%s: debris outlived the cleanup", when)
			}
			leftovers = len(debris)
		}
		spools, err := os.ReadDir(spoolDir)
		require.NoError(t, err)
		require.Empty(t, spools, "%s: spool files outlived the export", when)

		m, err := snapshot.Export(ctx, r, states[i], acct, region, &snapshot.ExportOptions{Tag: fmt.Sprintf("round-%d", i)})
		require.NoError(t, err, "%s: the export run again", when)
		require.Equal(t, ids[i], m.ID, when)
	}

	ms, err := r.List(ctx, snapshot.Filter{})
	require.NoError(t, err)
	require.Len(t, ms, rounds)
	for _, m := range ms {
		_, err := r.Verify(ctx, m.ID.String(), &snapshot.VerifyOptions{ReadData: true})
		require.NoError(t, err, "snapshot %s at the end", m.ID)
	}
	t.Logf("%s: %d of %d exports killed with SIGKILL and survived (%d had committed when killed); "+
		"the cleanups removed %d stale locks, %d blobs and views of uncommitted exports, and %d temporary files",
		b.name, killed, rounds, committedAtKill, cleaned.locks, cleaned.orphans, cleaned.tempFiles)
	if leftovers > 0 {
		t.Logf("%s: %d pieces of debris outlived the cleanups, as known: %s", b.name, leftovers, b.leftover)
	}
	assert.GreaterOrEqual(t, killed, rounds-2, "too few kills landed")
}

// requireWholeOnce requires every snapshot r lists that is not in
// verified to pass verify with read-data, and adds it there; every blob
// of the others to be stored with its size; and every tag to name a
// listed snapshot. It returns the snapshots listed.
func requireWholeOnce(t *testing.T, r *snapshot.Repo, verified map[digest.Digest]bool, when string) map[digest.Digest]bool {
	t.Helper()
	ctx := t.Context()
	ms, err := r.List(ctx, snapshot.Filter{})
	require.NoError(t, err, when)
	stored := map[digest.Digest]int64{}
	require.NoError(t, repo.New(r.Store(), nil).ListBlobs(ctx, func(d digest.Digest, size int64) error {
		stored[d] = size
		return nil
	}), when)
	listed := map[digest.Digest]bool{}
	for _, m := range ms {
		listed[m.ID] = true
		if !verified[m.ID] {
			_, err := r.Verify(ctx, m.ID.String(), &snapshot.VerifyOptions{ReadData: true})
			require.NoError(t, err, "%s: snapshot %s", when, m.ID)
			verified[m.ID] = true
			continue
		}
		for _, e := range m.Blobs {
			size, ok := stored[e.Digest]
			require.True(t, ok && size == e.Size, "%s: snapshot %s: blob %q: %d bytes stored, %d expected", when, m.ID, e.Key, size, e.Size)
		}
	}
	tags, err := r.Tags(ctx, nil)
	require.NoError(t, err, when)
	for _, tag := range tags {
		require.True(t, listed[tag.Snapshot], "%s: tag %s names %s, which is not listed", when, tag.Name, tag.Snapshot)
	}
	return listed
}

// cleanup counts what a cleanup after a kill removed.
type cleanup struct {
	locks, orphans, tempFiles int
}

func (c *cleanup) add(o cleanup) {
	c.locks += o.locks
	c.orphans += o.orphans
	c.tempFiles += o.tempFiles
}

// cleanUpAfterKill removes what the process pid, killed, left in r, and
// requires that nothing else is left: a garbage collection without grace
// removes the locks it held (stale, their holder gone: it must report no
// other) and the blobs and view it stored for a snapshot it did not
// commit; then the store's Cleaner with no grace removes the temporary
// files of writers that are gone (a collection keeps them for the
// store's default age, an hour for a directory, which a test cannot
// wait). It returns what it removed.
func cleanUpAfterKill(t *testing.T, r *snapshot.Repo, pid int, when string) cleanup {
	t.Helper()
	ctx := t.Context()
	gc, err := r.GC(ctx, &snapshot.GCOptions{Grace: -1})
	require.NoError(t, err, when)
	for _, l := range gc.StaleLocks {
		require.Equal(t, pid, l.PID, "%s: stale lock %s is not the killed export's", when, l.ID)
	}
	files, err := r.Store().CleanStale(ctx, time.Nanosecond)
	require.NoError(t, err, when)
	locks, err := repo.New(r.Store(), nil).Locks(ctx)
	require.NoError(t, err, when)
	require.Empty(t, locks, "%s: locks outlived the cleanup", when)
	return cleanup{locks: len(gc.StaleLocks), orphans: gc.Blobs.Objects + gc.Views.Objects, tempFiles: gc.TempFiles + files}
}

// TestExportCleansStaleTempFiles: an export removes, as it starts, the
// temporary files that writers gone long ago left in a directory
// repository, and keeps young ones, which a live writer may own. It
// sweeps only when a stale lock shows that a writer died: otherwise its
// cost would grow with the repository.
func TestExportCleansStaleTempFiles(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "repo")
	r, err := snapshot.Open(ctx, dir)
	require.NoError(t, err)
	defer r.Close()
	svc := coretest.NewObjectStore()
	_, _, err = coretest.Fill(ctx, svc, acct, region, coretest.FillOptions{Objects: 10})
	require.NoError(t, err)
	_, err = snapshot.Export(ctx, r, svc, acct, region, nil)
	require.NoError(t, err)

	fan := filepath.Join(dir, "blobs", "sha256", "00")
	require.NoError(t, os.MkdirAll(fan, 0o777))
	stale, young := filepath.Join(fan, ".tmp-0-gone-STALE"), filepath.Join(fan, ".tmp-0-gone-YOUNG")
	for _, p := range []string{stale, young} {
		require.NoError(t, os.WriteFile(p, []byte("half a blob"), 0o666))
	}
	old := time.Now().Add(-2 * filestore.DefaultStaleAge)
	require.NoError(t, os.Chtimes(stale, old, old))

	_, err = snapshot.Export(ctx, r, svc, acct, region, nil)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{stale, young}, dirDebris(t, dir), "no stale lock: no sweep")

	// The writer that left them was killed holding its lock.
	dead := repo.LockInfo{ID: "shared-killedwriter", Kind: repo.SharedLock, Host: "gone", PID: 1 << 30,
		Created: old.UTC(), Refreshed: old.UTC()}
	record, err := json.Marshal(dead)
	require.NoError(t, err)
	require.NoError(t, r.Store().PutBytes(ctx, repo.LockName(dead.ID), record, store.PutOptions{}))

	_, err = snapshot.Export(ctx, r, svc, acct, region, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{young}, dirDebris(t, dir))
}
