package repo

import (
	"context"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// putsDriver reports every finished Put of a lock on puts.
type putsDriver struct {
	store.Driver
	puts chan string
}

func (d *putsDriver) Put(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions) error {
	err := d.Driver.Put(ctx, name, body, size, opts)
	if _, ok := ParseLockName(name); ok && err == nil {
		d.puts <- name
	}
	return err
}

// lockRepo is a repository whose clock and lock refreshes the test
// drives: each value sent on tick is one refresh of each held lock, and
// every lock write is reported on puts.
type lockRepo struct {
	*Repo
	clock *clock
	tick  chan time.Time
	puts  chan string
}

// newLockRepo returns a lockRepo in dir, refreshing every minute and
// taking locks for stale after ten.
func newLockRepo(t *testing.T, dir string) *lockRepo {
	t.Helper()
	fs, err := filestore.New(dir, nil)
	require.NoError(t, err)
	drv := &putsDriver{Driver: fs, puts: make(chan string, 16)}
	lr := &lockRepo{
		Repo:  New(store.New(drv, "test", nil), &Options{LockRefresh: time.Minute, LockStaleAge: 10 * time.Minute}),
		clock: &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
		tick:  make(chan time.Time),
		puts:  drv.puts,
	}
	lr.now = lr.clock.now
	lr.newTicker = func(time.Duration) (<-chan time.Time, func()) { return lr.tick, func() {} }
	t.Cleanup(func() { lr.Close() })
	return lr
}

// lock takes a lock of kind and consumes the report of its write.
func (lr *lockRepo) lock(t *testing.T, kind LockKind) *Lock {
	t.Helper()
	l, err := lr.Lock(t.Context(), kind)
	require.NoError(t, err)
	<-lr.puts
	return l
}

func lockIDs(t *testing.T, r *Repo) []string {
	t.Helper()
	locks, err := r.Locks(t.Context())
	require.NoError(t, err)
	var ids []string
	for _, l := range locks {
		ids = append(ids, l.ID)
	}
	return ids
}

func TestSharedLocksCoexist(t *testing.T) {
	lr := newLockRepo(t, t.TempDir())
	a := lr.lock(t, SharedLock)
	b := lr.lock(t, SharedLock)
	assert.ElementsMatch(t, []string{a.Info().ID, b.Info().ID}, lockIDs(t, lr.Repo))

	locks, err := lr.Locks(t.Context())
	require.NoError(t, err)
	for _, l := range locks {
		assert.Equal(t, SharedLock, l.Kind)
		assert.Equal(t, lr.clock.now(), l.Created)
		assert.Positive(t, l.PID)
		assert.NotEmpty(t, l.Host)
		assert.False(t, l.Stale)
	}
	require.NoError(t, a.Unlock(t.Context()))
	require.NoError(t, a.Unlock(t.Context()), "a second Unlock returns the first's result")
	assert.Equal(t, []string{b.Info().ID}, lockIDs(t, lr.Repo))
	require.Error(t, a.Check(t.Context()), "a released lock is not held")
	require.NoError(t, b.Unlock(t.Context()))
	assert.Empty(t, lockIDs(t, lr.Repo))
}

func TestConflictingLocks(t *testing.T) {
	lr := newLockRepo(t, t.TempDir())
	shared := lr.lock(t, SharedLock)

	_, err := lr.Lock(t.Context(), ExclusiveLock)
	<-lr.puts // it wrote its record, then saw the shared lock
	require.ErrorIs(t, err, core.ErrConflict)
	assert.Contains(t, err.Error(), shared.Info().ID, "the error names the lock in the way")
	assert.Contains(t, err.Error(), "shared lock")
	assert.Equal(t, []string{shared.Info().ID}, lockIDs(t, lr.Repo), "the refused lock removed its record")

	require.NoError(t, shared.Unlock(t.Context()))
	exclusive := lr.lock(t, ExclusiveLock)
	for _, kind := range []LockKind{SharedLock, ExclusiveLock} {
		_, err := lr.Lock(t.Context(), kind)
		<-lr.puts
		require.ErrorIs(t, err, core.ErrConflict, kind)
		assert.Contains(t, err.Error(), "exclusive lock "+exclusive.Info().ID)
	}
	assert.Equal(t, []string{exclusive.Info().ID}, lockIDs(t, lr.Repo))

	_, err = lr.Lock(t.Context(), "other")
	require.ErrorIs(t, err, core.ErrInvalid)
}

func TestStaleLocks(t *testing.T) {
	dir := t.TempDir()
	dead := newLockRepo(t, dir) // a process that takes a lock and dies
	exclusive := dead.lock(t, ExclusiveLock)
	defer exclusive.Unlock(context.Background())

	lr := newLockRepo(t, dir)
	lr.clock.add(10 * time.Minute)
	locks, err := lr.Locks(t.Context())
	require.NoError(t, err)
	require.Len(t, locks, 1)
	assert.False(t, locks[0].Stale, "refreshed exactly the stale age ago")

	lr.clock.add(time.Second)
	locks, err = lr.Locks(t.Context())
	require.NoError(t, err)
	require.Len(t, locks, 1)
	assert.True(t, locks[0].Stale, "not refreshed for longer than the stale age")
	assert.Equal(t, exclusive.Info().ID, locks[0].ID)

	// A stale lock is in nobody's way.
	shared := lr.lock(t, SharedLock)
	assert.ElementsMatch(t, []string{exclusive.Info().ID, shared.Info().ID}, lockIDs(t, lr.Repo))
}

func TestLockRefresh(t *testing.T) {
	ctx := t.Context()
	lr := newLockRepo(t, t.TempDir())
	l := lr.lock(t, SharedLock)
	created := l.Info().Created

	lr.clock.add(8 * time.Minute)
	require.NoError(t, l.Check(ctx), "within the stale age less one refresh")
	lr.tick <- time.Time{}
	<-lr.puts
	require.NoError(t, l.Check(ctx), "refreshed")
	assert.Equal(t, lr.clock.now(), l.Info().Refreshed)
	assert.Equal(t, created, l.Info().Created)

	lr.clock.add(10 * time.Minute)
	locks, err := lr.Locks(ctx)
	require.NoError(t, err)
	require.Len(t, locks, 1)
	assert.Equal(t, l.Info(), locks[0], "the stored record is the refreshed one")
	assert.False(t, locks[0].Stale)

	require.NoError(t, l.Unlock(ctx))
	assert.Empty(t, lockIDs(t, lr.Repo))
}

// A lock that went without a refresh for the stale age less one refresh
// is lost for good: a later refresh would not make it safe again, since
// others may have taken it for stale in between.
func TestLockLostWhenTooOld(t *testing.T) {
	ctx := t.Context()
	lr := newLockRepo(t, t.TempDir())
	l := lr.lock(t, SharedLock)
	refreshed := l.Info().Refreshed

	lr.clock.add(9 * time.Minute)
	err := l.Check(ctx)
	require.ErrorIs(t, err, core.ErrConflict, "no refresh for the stale age less one refresh")
	assert.Contains(t, err.Error(), "not refreshed for 9m0s")

	lr.tick <- time.Time{}
	lr.tick <- time.Time{} // the first refresh has ended when the second starts
	require.ErrorIs(t, l.Check(ctx), core.ErrConflict, "still lost")
	locks, err := lr.Locks(ctx)
	require.NoError(t, err)
	require.Len(t, locks, 1)
	assert.Equal(t, refreshed, locks[0].Refreshed, "a lost lock is not refreshed")
	require.NoError(t, l.Unlock(ctx))
	assert.Empty(t, lockIDs(t, lr.Repo))
}

// A lock whose record another process removed, taking it for stale, is
// lost: Check says so, and refreshes never bring the record back.
func TestLockLostWhenRemoved(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	lr := newLockRepo(t, dir)
	l := lr.lock(t, SharedLock)
	require.NoError(t, l.Check(ctx))

	other := newLockRepo(t, dir)
	require.NoError(t, other.RemoveLock(ctx, l.Info().ID))
	err := l.Check(ctx)
	require.ErrorIs(t, err, core.ErrConflict)
	assert.Contains(t, err.Error(), "removed or replaced by another process")

	lr.tick <- time.Time{}
	lr.tick <- time.Time{}
	assert.Empty(t, lockIDs(t, lr.Repo), "a refresh brought a removed record back")
	require.NoError(t, l.Unlock(ctx), "a record removed by another process is no error to Unlock")

	// Removed between two refreshes: the refresh finds it gone.
	l = lr.lock(t, SharedLock)
	require.NoError(t, other.RemoveLock(ctx, l.Info().ID))
	lr.tick <- time.Time{}
	lr.tick <- time.Time{}
	assert.Empty(t, lockIDs(t, lr.Repo))
	require.ErrorIs(t, l.Check(ctx), core.ErrConflict)
	require.NoError(t, l.Unlock(ctx))

	require.ErrorIs(t, other.RemoveLock(ctx, "not-a-lock"), core.ErrInvalid)
	require.ErrorIs(t, other.RemoveLock(ctx, l.Info().ID), core.ErrNotFound)
}

// A lock held by a process of this host (and PID namespace) that no
// longer runs is stale at once; one held by a running process, on another
// host, or in another namespace (a container with the same host name), is
// not.
func TestDeadHolderIsStale(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no portable liveness check")
	}
	ctx := t.Context()
	lr := newLockRepo(t, t.TempDir())
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	require.NoError(t, cmd.Run())
	dead := cmd.Process.Pid
	host, err := os.Hostname()
	require.NoError(t, err)
	ns := pidNamespace()
	for _, tc := range []struct {
		id    string
		host  string
		ns    string
		pid   int
		stale bool
	}{
		{"shared-DEAD", host, ns, dead, true},
		{"shared-SELF", host, ns, os.Getpid(), false},
		{"shared-PARENT", host, ns, os.Getppid(), false},
		{"shared-ELSEWHERE", host + "-other", ns, dead, false},
		{"shared-OTHERNS", host, ns + "-other", dead, false},
	} {
		data, err := encodeRecord(LockInfo{ID: tc.id, Kind: SharedLock, Host: tc.host, PIDNamespace: tc.ns, PID: tc.pid, Created: lr.clock.now(), Refreshed: lr.clock.now()})
		require.NoError(t, err)
		require.NoError(t, lr.Store().PutBytes(ctx, LockName(tc.id), data, store.PutOptions{}))
	}
	locks, err := lr.Locks(ctx)
	require.NoError(t, err)
	stale := map[string]bool{}
	for _, l := range locks {
		stale[l.ID] = l.Stale
	}
	assert.Equal(t, map[string]bool{"shared-DEAD": true, "shared-SELF": false, "shared-PARENT": false, "shared-ELSEWHERE": false, "shared-OTHERNS": false}, stale)
}

// An exclusive lock is refused naming every live lock in its way.
func TestConflictNamesEveryLiveLock(t *testing.T) {
	lr := newLockRepo(t, t.TempDir())
	a := lr.lock(t, SharedLock)
	b := lr.lock(t, SharedLock)
	_, err := lr.Lock(t.Context(), ExclusiveLock)
	<-lr.puts
	require.ErrorIs(t, err, core.ErrConflict)
	assert.Contains(t, err.Error(), "locked by 2 other lock(s)")
	assert.Contains(t, err.Error(), a.Info().ID)
	assert.Contains(t, err.Error(), b.Info().ID)
}

func TestCorruptLock(t *testing.T) {
	lr := newLockRepo(t, t.TempDir())
	require.NoError(t, lr.Store().PutBytes(t.Context(), LockName("exclusive-BAD"), []byte(`{"id": "exclusive-BAD"}`), store.PutOptions{}))
	_, err := lr.Locks(t.Context())
	require.ErrorIs(t, err, core.ErrCorrupt)
	assert.Contains(t, err.Error(), "locks/exclusive-BAD.json")

	// A lock that cannot be read might be held: it is in the way.
	_, err = lr.Lock(t.Context(), SharedLock)
	<-lr.puts
	require.ErrorIs(t, err, core.ErrCorrupt)
	assert.Contains(t, err.Error(), "locks/exclusive-BAD.json")

	// A record must match its name.
	data, err := encodeRecord(LockInfo{ID: "shared-OTHER", Kind: SharedLock, Host: "h", PID: 1, Created: lr.clock.now(), Refreshed: lr.clock.now()})
	require.NoError(t, err)
	_, err = decodeLock("shared-BAD", data)
	require.ErrorIs(t, err, core.ErrCorrupt)
	_, err = decodeLock("exclusive-OTHER", data)
	require.ErrorIs(t, err, core.ErrCorrupt)
	got, err := decodeLock("shared-OTHER", data)
	require.NoError(t, err)
	assert.Equal(t, "h", got.Host)
}
