package repo

import (
	"context"
	"crypto/rand"
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
	ID        string    `json:"id"`        // "<kind>-<random>"; the object's name is locks/<id>.json
	Kind      LockKind  `json:"kind"`      // shared or exclusive
	Host      string    `json:"host"`      // the host name of the holder
	PID       int       `json:"pid"`       // the process id of the holder on Host
	Created   time.Time `json:"created"`   // when the lock was taken, holder's clock, UTC
	Refreshed time.Time `json:"refreshed"` // when it was last written, holder's clock, UTC
	// Stale is set by [Repo.Locks] for a lock not refreshed for longer
	// than the stale age (Options.LockStaleAge): its holder is gone, or
	// cut off from the repository. It is not stored.
	Stale bool `json:"-"`
}

// lockFields are the JSON fields of a stored lock, each required.
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
	err := decodeRecord(data, &l, lockFields...)
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
	written   time.Time // when the record was last written, this process's clock
	lastErr   error     // of the last refresh, if it failed
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
	info := LockInfo{ID: string(kind) + "-" + rand.Text(), Kind: kind, Host: host, PID: os.Getpid(), Created: now, Refreshed: now}
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

// checkConflicts returns an error naming the first live lock that
// conflicts with own, or one reading a lock that might.
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
	for _, id := range ids {
		other, err := r.readLock(ctx, id)
		switch {
		case IsNotFound(err):
			continue // released since it was listed
		case err != nil:
			return fmt.Errorf("repo: take %s lock: %w", own.Kind, err)
		case !other.Stale:
			return fmt.Errorf("repo: take %s lock: the repository is locked: %s; try again once it is released: %w", own.Kind, describeLock(other), core.ErrConflict)
		}
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
	l.Stale = r.now().Sub(l.Refreshed) > r.opts.LockStaleAge
	return l, nil
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
// returned: [Lock.Check] reports a lock whose refreshes keep failing.
func (l *Lock) refresh(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.unlocked {
		return
	}
	info := l.info
	info.Refreshed = l.r.now().UTC()
	data, err := encodeRecord(info)
	if err != nil {
		return
	}
	l.lastErr = l.r.st.PutBytes(ctx, LockName(info.ID), data, store.PutOptions{ContentType: jsonType})
	if l.lastErr == nil {
		l.info, l.written = info, l.r.now()
	}
}

// Check reports whether the lock is still safely held: an error matching
// core.ErrConflict once it has gone without a successful refresh for
// LockStaleAge less LockRefresh, after which others may soon take it for
// stale. A holder about to rely on its lock (an export, before it
// commits) calls Check first. Check after Unlock is an error too.
func (l *Lock) Check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.unlocked {
		return fmt.Errorf("repo: lock %s: released: %w", l.info.ID, core.ErrConflict)
	}
	o := l.r.opts
	if age := l.r.now().Sub(l.written); age >= o.LockStaleAge-o.LockRefresh {
		return fmt.Errorf("repo: lock %s: not refreshed for %s (every %s; last failure: %v), and others take it for stale after %s: %w",
			l.info.ID, age.Round(time.Second), o.LockRefresh, l.lastErr, o.LockStaleAge, core.ErrConflict)
	}
	return nil
}

// Unlock stops the refreshes and removes the lock's record. Calling it
// again returns the first call's result.
func (l *Lock) Unlock(ctx context.Context) error {
	l.stop()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.unlocked {
		l.unlocked = true
		l.unlockErr = l.r.st.Delete(ctx, LockName(l.info.ID))
		if l.unlockErr != nil {
			l.unlockErr = fmt.Errorf("repo: release lock %s: %w", l.info.ID, l.unlockErr)
		}
	}
	return l.unlockErr
}
