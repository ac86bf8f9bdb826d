package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
)

// LockKind is the kind of a [Lock]: shared or exclusive.
type LockKind string

// The kinds of locks. Exports hold a shared lock, so any number run at
// once; a garbage collection holds an exclusive one, alone. See
// docs/design.md, "Locks and garbage collection", for the protocol.
const (
	SharedLock    LockKind = "shared"
	ExclusiveLock LockKind = "exclusive"
)

// LockInfo is the record of a lock, stored as locks/<id>.json, and what
// [Repo.Locks] reports of it.
type LockInfo struct {
	ID   string   `json:"id"`   // "<kind>-<random>"; the object's name is locks/<id>.json
	Kind LockKind `json:"kind"` // shared or exclusive
	Host string   `json:"host"` // the host name of the holder
	PID  int      `json:"pid"`  // the process id of the holder on Host
	// PIDNamespace names the holder's PID namespace where the system has
	// them (Linux: "pid:[…]"), so that containers sharing a host name are
	// not taken for one another; empty elsewhere.
	PIDNamespace string    `json:"pid_namespace,omitempty"`
	Created      time.Time `json:"created"`   // when the lock was taken, holder's clock, UTC
	Refreshed    time.Time `json:"refreshed"` // when it was last written, holder's clock, UTC
	// Stale is set by [Repo.Locks] for a lock not refreshed for longer
	// than the stale age (Options.LockStaleAge), whose holder is gone or
	// cut off from the repository, and for a lock held by a process of
	// this host (same host name) that no longer runs. It is not stored.
	Stale bool `json:"-"`
}

// lockFields are the JSON fields of a stored lock, each required but the
// PID namespace.
var lockFields = []string{"id", "kind", "host", "pid", "created", "refreshed"}

// lockKindOf returns the kind of the lock id, "<kind>-<token>" where the
// token is 1 to 64 ASCII letters and digits, and whether id is one.
func lockKindOf(id string) (LockKind, bool) {
	kind, token, ok := strings.Cut(id, "-")
	if !ok || len(token) == 0 || len(token) > 64 || strings.Trim(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != "" {
		return "", false
	}
	switch k := LockKind(kind); k {
	case SharedLock, ExclusiveLock:
		return k, true
	}
	return "", false
}

// decodeLock decodes the stored record of the lock id, strictly (see
// decodeRecord). A failure matches core.ErrCorrupt and names the lock.
func decodeLock(id string, data []byte) (LockInfo, error) {
	var l LockInfo
	err := decodeRecord(data, &l, lockFields, "pid_namespace")
	kind, _ := lockKindOf(id)
	switch {
	case err != nil:
	case l.ID != id:
		err = fmt.Errorf("it records lock %q", l.ID)
	case l.Kind != kind:
		err = fmt.Errorf("kind %q, but its name says %q", l.Kind, kind)
	}
	if err != nil {
		return LockInfo{}, fmt.Errorf("repo: lock %s: %w: %w", LockName(id), core.ErrCorrupt, err)
	}
	return l, nil
}

// Lock is a lock held on a repository by this process: a record under
// locks/ that [Repo.Lock] writes, a goroutine rewrites every
// Options.LockRefresh so that it never looks stale, and [Lock.Unlock]
// removes. Its methods are safe for concurrent use.
type Lock struct {
	r    *Repo
	stop context.CancelFunc // stops the refreshes
	done chan struct{}      // closed when the refreshes have stopped

	mu        sync.Mutex
	info      LockInfo
	written   time.Time // when the record was last written, this process's wall clock
	lastErr   error     // of the last refresh, if it failed
	lost      error     // why the lock is lost for good, once it is
	unlocked  bool
	unlockErr error
}

// Lock takes a lock of kind on the repository, or fails with an error
// matching core.ErrConflict that names a lock held by another process
// that conflicts with it: an exclusive lock conflicts with every other
// lock, a shared lock with exclusive ones. Stale locks conflict with
// nothing. It writes its record create-only first and looks for
// conflicting locks after (restic's order): of two processes that lock at
// once, at least one sees the other. On a conflict it removes its record.
func (r *Repo) Lock(ctx context.Context, kind LockKind) (*Lock, error) {
	if kind != SharedLock && kind != ExclusiveLock {
		return nil, fmt.Errorf("repo: lock: kind %q: want %q or %q: %w", kind, SharedLock, ExclusiveLock, core.ErrInvalid)
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	now := r.now().UTC()
	info := LockInfo{ID: string(kind) + "-" + rand.Text(), Kind: kind, Host: host, PID: os.Getpid(), PIDNamespace: pidNamespace(), Created: now, Refreshed: now}
	data, err := encodeRecord(info)
	if err != nil {
		return nil, fmt.Errorf("repo: lock: %w", err)
	}
	name := LockName(info.ID)
	if err := r.st.PutBytes(ctx, name, data, store.PutOptions{CreateOnly: true, ContentType: jsonType}); err != nil {
		return nil, fmt.Errorf("repo: take %s lock: %w", kind, err)
	}
	if err := r.checkConflicts(ctx, info); err != nil {
		if derr := r.st.Delete(context.WithoutCancel(ctx), name); derr != nil {
			return nil, fmt.Errorf("%w (and removing lock %s failed: %w)", err, info.ID, derr)
		}
		return nil, err
	}
	refreshCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	l := &Lock{r: r, stop: stop, done: make(chan struct{}), info: info, written: r.now()}
	go l.refreshEvery(refreshCtx, r.opts.LockRefresh)
	return l, nil
}

// checkConflicts returns an error naming every live lock that conflicts
// with own, or one reading a lock that might.
func (r *Repo) checkConflicts(ctx context.Context, own LockInfo) error {
	var ids []string
	err := r.st.List(ctx, locksPrefix, func(info store.ObjectInfo) error {
		if id, ok := ParseLockName(info.Name); ok && id != own.ID {
			if kind, _ := lockKindOf(id); own.Kind == ExclusiveLock || kind == ExclusiveLock {
				ids = append(ids, id)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("repo: take %s lock: %w", own.Kind, err)
	}
	slices.Sort(ids)
	var live []string
	for _, id := range ids {
		other, err := r.readLock(ctx, id)
		switch {
		case IsNotFound(err):
			continue // released since it was listed
		case err != nil:
			return fmt.Errorf("repo: take %s lock: %w", own.Kind, err)
		case !other.Stale:
			live = append(live, describeLock(other))
		}
	}
	if len(live) > 0 {
		return fmt.Errorf("repo: take %s lock: the repository is locked by %d other lock(s): %s; try again once they are released: %w",
			own.Kind, len(live), strings.Join(live, "; "), core.ErrConflict)
	}
	return nil
}

// describeLock names a lock for messages.
func describeLock(l LockInfo) string {
	return fmt.Sprintf("%s lock %s (%s) held by pid %d on %q since %s, refreshed %s",
		l.Kind, l.ID, LockName(l.ID), l.PID, l.Host, l.Created.Format(time.RFC3339), l.Refreshed.Format(time.RFC3339))
}

// readLock reads the lock id and tells whether it is stale.
func (r *Repo) readLock(ctx context.Context, id string) (LockInfo, error) {
	data, err := r.readRecord(ctx, LockName(id))
	if err != nil {
		return LockInfo{}, err
	}
	l, err := decodeLock(id, data)
	if err != nil {
		return LockInfo{}, err
	}
	l.Stale = r.now().Sub(l.Refreshed) > r.opts.LockStaleAge || deadHolder(l)
	return l, nil
}

// deadHolder reports whether the holder of l is a process of this host,
// and of this PID namespace where the system has them, that no longer
// runs. Machines sharing a repository and a host name (and, on systems
// without PID namespaces, containers) would take one another's live locks
// for dead: give them distinct host names.
func deadHolder(l LockInfo) bool {
	host, err := os.Hostname()
	return err == nil && l.Host == host && l.PIDNamespace == pidNamespace() &&
		l.PID > 0 && l.PID != os.Getpid() && !processAlive(l.PID)
}

// RemoveLock removes the record of the lock id, which another process
// holds or held: a garbage collection removes stale locks so. A holder
// that is alive after all finds its lock lost (see [Lock.Check]) and does
// not rely on it. A missing record is an error matching core.ErrNotFound.
func (r *Repo) RemoveLock(ctx context.Context, id string) error {
	if _, ok := lockKindOf(id); !ok {
		return fmt.Errorf("repo: remove lock: %q is not a lock id: %w", id, core.ErrInvalid)
	}
	return r.st.Delete(ctx, LockName(id))
}

// Locks returns every lock on the repository, sorted by id, each marked
// stale or not. A record that does not decode is an error matching
// core.ErrCorrupt naming it.
func (r *Repo) Locks(ctx context.Context) ([]LockInfo, error) {
	var ids []string
	err := r.st.List(ctx, locksPrefix, func(info store.ObjectInfo) error {
		if id, ok := ParseLockName(info.Name); ok {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(ids)
	locks := make([]LockInfo, 0, len(ids))
	for _, id := range ids {
		l, err := r.readLock(ctx, id)
		if IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		locks = append(locks, l)
	}
	return locks, nil
}

// Info returns the lock's record as last written.
func (l *Lock) Info() LockInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.info
}

// refreshEvery rewrites the lock's record every interval until ctx ends.
func (l *Lock) refreshEvery(ctx context.Context, interval time.Duration) {
	defer close(l.done)
	tick, stop := l.r.newTicker(interval)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			l.refresh(ctx)
		}
	}
}

// refresh rewrites the lock's record with the time now. A failure is not
// returned: [Lock.Check] reports a lock whose refreshes keep failing, or
// that is lost.
func (l *Lock) refresh(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.unlocked || l.lost != nil {
		return
	}
	if l.lost = l.tooOld(); l.lost != nil {
		return
	}
	info := l.info
	info.Refreshed = l.r.now().UTC()
	data, err := encodeRecord(info)
	if err != nil {
		return
	}
	err = l.r.rewriteLock(ctx, LockName(info.ID), data)
	switch {
	case err == nil:
		l.info, l.written = info, l.r.now()
	case IsNotFound(err), errors.Is(err, core.ErrConflict):
		l.lost = l.removed(err)
	default:
		l.lastErr = err
	}
}

// rewriteLock replaces the record name, a lock's, with data if it is still
// there: by compare-and-swap where the store can, so that a record another
// process removed (taking it for stale) is never brought back. A record
// that is gone is an error matching core.ErrNotFound; one replaced since
// it was read, core.ErrConflict.
func (r *Repo) rewriteLock(ctx context.Context, name string, data []byte) error {
	info, err := r.st.Stat(ctx, name)
	if err != nil {
		return err
	}
	opts := store.PutOptions{ContentType: jsonType}
	if info.Version != "" {
		err = r.st.PutIfMatch(ctx, name, bytes.NewReader(data), int64(len(data)), opts, info.Version)
		if errors.Is(err, core.ErrConflict) {
			// An earlier attempt whose answer was lost may have landed.
			if stored, rerr := r.readRecord(ctx, name); rerr == nil && bytes.Equal(stored, data) {
				return nil
			}
		}
		if !errors.Is(err, errors.ErrUnsupported) {
			return err
		}
	}
	return r.st.PutBytes(ctx, name, data, opts)
}

// tooOld returns why the lock is lost if it has gone without a
// successful refresh for LockStaleAge less LockRefresh, by the wall clock
// (a suspended machine's monotonic clock stands still while others' wall
// clocks, which judge staleness, go on): others may take it for stale
// from LockStaleAge on.
func (l *Lock) tooOld() error {
	o := l.r.opts
	if age := l.r.now().Round(0).Sub(l.written.Round(0)); age >= o.LockStaleAge-o.LockRefresh {
		return fmt.Errorf("repo: lock %s: lost: not refreshed for %s (every %s; last failure: %v), and others take it for stale after %s: %w",
			l.info.ID, age.Round(time.Second), o.LockRefresh, l.lastErr, o.LockStaleAge, core.ErrConflict)
	}
	return nil
}

// removed returns why the lock is lost when its record is gone or was
// replaced, which err reports.
func (l *Lock) removed(err error) error {
	return fmt.Errorf("repo: lock %s: lost: its record was removed or replaced by another process, which took it for stale (%v): %w",
		l.info.ID, err, core.ErrConflict)
}

// Check reports whether the lock is still safely held, as a holder must
// know before it relies on it (an export, before and after it commits):
// an error matching core.ErrConflict once the lock is lost. A lock is lost
// for good once it has gone without a successful refresh for LockStaleAge
// less LockRefresh, after which others may take it for stale, or once its
// record is found removed or replaced: Check reads the record's
// attributes. Check after Unlock is an error too.
func (l *Lock) Check(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.unlocked:
		return fmt.Errorf("repo: lock %s: released: %w", l.info.ID, core.ErrConflict)
	case l.lost != nil:
		return l.lost
	}
	if l.lost = l.tooOld(); l.lost != nil {
		return l.lost
	}
	_, err := l.r.st.Stat(ctx, LockName(l.info.ID))
	switch {
	case IsNotFound(err):
		l.lost = l.removed(err)
		return l.lost
	case err != nil:
		return fmt.Errorf("repo: lock %s: check its record: %w", l.info.ID, err)
	}
	return nil
}

// Unlock stops the refreshes and removes the lock's record; a record that
// another process removed already is no error. Calling it again returns
// the first call's result.
func (l *Lock) Unlock(ctx context.Context) error {
	l.stop()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.unlocked {
		l.unlocked = true
		l.unlockErr = l.r.st.Delete(ctx, LockName(l.info.ID))
		if IsNotFound(l.unlockErr) {
			l.unlockErr = nil
		}
		if l.unlockErr != nil {
			l.unlockErr = fmt.Errorf("repo: release lock %s: %w", l.info.ID, l.unlockErr)
		}
	}
	return l.unlockErr
}
