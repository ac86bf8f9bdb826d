package integration_test

import (
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/visitors"
)

// callLog records the calls a tapDriver reports, in the order they were
// reported: an event recorded as Done before another was recorded as
// started finished before that one began. It is safe for concurrent use.
type callLog struct {
	mu     sync.Mutex
	events []tapEvent
}

func (l *callLog) add(e tapEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

// openRecorded opens the repository at rawURL with every driver call
// recorded in the log it returns.
func openRecorded(t *testing.T, rawURL string) (*snapshot.Repo, *callLog) {
	t.Helper()
	log := &callLog{}
	r := openWrapped(t, rawURL, func(d store.Driver) store.Driver { return &tapDriver{Driver: d, on: log.add} }, nil)
	return r, log
}

// TestCommitOrder records every call an export, and a copy of its
// snapshot into another repository, make to the driver, and checks the
// order that makes a snapshot appear whole or not at all: every blob
// stored, then (on drivers that sync) one Sync begun after the last
// blob, then the view, and only then the manifest, written once,
// create-only; the tag after it; nothing written after the tag but the
// release of the lock.
func TestCommitOrder(t *testing.T) {
	eachBackend(t, testCommitOrder)
}

func testCommitOrder(t *testing.T, b backend) {
	ctx := t.Context()
	svc := coretest.NewObjectStore()
	_, _, err := coretest.Fill(ctx, svc, acct, region, coretest.FillOptions{Objects: 200, Size: 32 << 10, Seed: 5, Hostile: true})
	require.NoError(t, err)
	_, err = svc.PutObject(ctx, acct, region, "coretest-plain", "large", make([]byte, 3<<20))
	require.NoError(t, err)

	fromURL, _ := b.newRepo(t)
	from, log := openRecorded(t, fromURL)
	m, err := snapshot.Export(ctx, from, svc, acct, region, &snapshot.ExportOptions{
		Tag:     "order",
		Visitor: visitors.Options{MemoryThreshold: 1 << 20}, // the large blob spooled to a file
	})
	require.NoError(t, err)
	requireCommitOrder(t, log.events, m, "order", "export")

	toURL, _ := b.newRepo(t)
	to, log := openRecorded(t, toURL)
	rep, err := snapshot.Copy(ctx, from, to, []string{"order"}, nil)
	require.NoError(t, err)
	require.Equal(t, len(m.Blobs), rep.Blobs)
	requireCommitOrder(t, log.events, m, "order", "copy")
}

// requireCommitOrder requires that the calls in events, made by flow on
// a repository that was empty, stored the snapshot m and the tag in the
// order that commits a snapshot.
func requireCommitOrder(t *testing.T, events []tapEvent, m *manifest.Manifest, tag, flow string) {
	t.Helper()
	manifestName, viewName, tagName := repo.ManifestName(m.ID), repo.ViewName(m.ID), repo.TagName(tag)
	blobs := map[string]bool{}
	for _, e := range m.Blobs {
		blobs[repo.BlobName(e.Digest)] = true
	}
	// The index of the first start and of the last end of each kind of
	// call, and what was stored.
	first := map[string]int{}
	last := map[string]int{}
	stored := map[string]bool{}
	manifestPuts := 0
	for i, e := range events {
		kind := e.Op
		switch {
		case e.Op != "put" && e.Op != "sync":
			continue
		case e.Name == manifestName:
			kind = "manifest"
			if !e.Done {
				manifestPuts++
				assert.True(t, e.CreateOnly, "%s: the manifest write is not create-only", flow)
			}
		case e.Name == viewName:
			kind = "view"
		case e.Name == tagName:
			kind = "tag"
		case blobs[e.Name]:
			kind = "blob"
		case isHeadName(e.Name):
			kind = "head" // a hint, written once the manifest is
		case e.Op == "put":
			if _, ok := repo.ParseLockName(e.Name); !ok {
				t.Fatalf("%s: wrote %q, which is no part of snapshot %s", flow, e.Name, m.ID)
			}
			continue
		}
		if _, ok := first[kind]; !ok && !e.Done {
			first[kind] = i
		}
		if e.Done {
			require.NoError(t, e.Err, "%s: %s %q", flow, e.Op, e.Name)
			last[kind] = i
			stored[e.Name] = true
		}
	}
	for name := range blobs {
		require.True(t, stored[name], "%s: blob %s never stored", flow, name)
	}
	require.Equal(t, 1, manifestPuts, "%s: manifest writes", flow)

	order := []string{"blob", "view", "manifest", "tag"}
	if _, synced := last["sync"]; synced {
		order = slices.Insert(order, 1, "sync")
	}
	if _, head := first["head"]; head {
		require.Less(t, last["manifest"], first["head"], "%s: the head was written before the manifest", flow)
	}
	for i := 1; i < len(order); i++ {
		before, after := order[i-1], order[i]
		require.Contains(t, last, before, "%s: no %s written", flow, before)
		require.Contains(t, first, after, "%s: no %s written", flow, after)
		require.Less(t, last[before], first[after], "%s: a %s write began before the last %s write ended", flow, after, before)
	}
	require.Equal(t, last["tag"], lastWrite(events), "%s: something was written after the tag", flow)
	t.Logf("%s: %d blob writes, then %s, then the manifest, then the tag (%d driver calls)",
		flow, countDone(events, "put", blobs), describeSync(last), len(events))
}

// lastWrite returns the index of the last Put that ended, but for locks.
func lastWrite(events []tapEvent) int {
	for i := len(events) - 1; i >= 0; i-- {
		e := events[i]
		if _, lock := repo.ParseLockName(e.Name); e.Op == "put" && e.Done && !lock {
			return i
		}
	}
	return -1
}

func countDone(events []tapEvent, op string, names map[string]bool) int {
	n := 0
	for _, e := range events {
		if e.Op == op && e.Done && names[e.Name] {
			n++
		}
	}
	return n
}

func describeSync(last map[string]int) string {
	if _, ok := last["sync"]; ok {
		return "a sync, then the view"
	}
	return "the view (the driver has no deferred sync)"
}
