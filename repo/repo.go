package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
)

// jsonType is the media type of views, manifests, tags and locks.
const jsonType = "application/json"

// Repo is a repository over a [store.Store]: the layout of its objects,
// and the operations the engines and flows need on blobs, snapshots, tags
// and locks. It is the only type that builds or parses object names. A
// Repo is safe for concurrent use; it adds no limits of its own: every
// request takes a slot of the Store's budget, and reads of manifests and
// views take their bytes from it.
type Repo struct {
	st   *store.Store
	opts Options

	now       func() time.Time                               // the clock of lock records and tags
	newTicker func(time.Duration) (<-chan time.Time, func()) // the tick of lock refreshes
}

// Options configure a [Repo]. The zero value, like a nil *Options, means
// the defaults.
type Options struct {
	// LockRefresh is how often a held lock is written again, so that
	// others see it is alive. 0 means DefaultLockRefresh.
	LockRefresh time.Duration
	// LockStaleAge is how long a lock may go without a refresh before
	// others take it for stale: left behind by a process that died. 0
	// means DefaultLockStaleAge; a value under twice LockRefresh is
	// raised to that.
	LockStaleAge time.Duration
	// Now is the clock of lock records and tags, and of the ages of locks
	// and stored objects; nil means time.Now. Tests and simulations set
	// it.
	Now func() time.Time
}

// Defaults of [Options].
const (
	DefaultLockRefresh  = 5 * time.Minute
	DefaultLockStaleAge = 30 * time.Minute
)

// New returns a Repo over st. opts may be nil.
func New(st *store.Store, opts *Options) *Repo {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.LockRefresh <= 0 {
		o.LockRefresh = DefaultLockRefresh
	}
	if o.LockStaleAge <= 0 {
		o.LockStaleAge = DefaultLockStaleAge
	}
	o.LockStaleAge = max(o.LockStaleAge, 2*o.LockRefresh)
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Repo{st: st, opts: o, now: o.Now, newTicker: newTicker}
}

// Now returns the time by the repository's clock (see Options.Now).
func (r *Repo) Now() time.Time { return r.now() }

func newTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// Store returns the repository's store.
func (r *Repo) Store() *store.Store { return r.st }

// Budget returns the limits shared by every transfer on the repository.
func (r *Repo) Budget() *store.Budget { return r.st.Budget() }

// Location returns the repository's URL, without credentials.
func (r *Repo) Location() string { return r.st.Location() }

// Close closes the store.
func (r *Repo) Close() error { return r.st.Close() }

// IsNotFound reports whether err says that an object is missing, rather
// than the whole repository (its bucket or directory).
func IsNotFound(err error) bool {
	return errors.Is(err, core.ErrNotFound) && !errors.Is(err, core.ErrBucketNotFound)
}

// readRecord reads the small record name (a tag or a lock), refusing one
// of more than maxRecordBytes as corrupt without reading further.
func (r *Repo) readRecord(ctx context.Context, name string) ([]byte, error) {
	rc, err := r.st.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxRecordBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxRecordBytes {
		return nil, tooLarge(name, "", maxRecordBytes)
	}
	return data, nil
}

// tooLarge reports a stored object larger than a reader accepts: bad
// data, not bad usage. what names the limit, if it has a name.
func tooLarge(name, what string, limit int64) error {
	if what != "" {
		what = " (" + what + ")"
	}
	return fmt.Errorf("repo: %s: larger than the %d-byte limit%s: %w", name, limit, what, core.ErrCorrupt)
}

// readSized reads the object name whole, and calls use with its bytes. It
// first asks the object's size and calls check with it, which may refuse
// it before a byte is read; then it takes that many bytes of the budget
// until use returns, so that many concurrent reads stay within the
// budget. An object whose size changes while it is read (none of the
// immutable objects it reads does) is an error matching core.ErrCorrupt.
func (r *Repo) readSized(ctx context.Context, name string, check func(size int64) error, use func(data []byte) error) error {
	info, err := r.st.Stat(ctx, name)
	if err != nil {
		return err
	}
	return r.readKnownSize(ctx, name, info, check, use)
}

// readKnownSize is readSized for an object whose size is info.Size (from
// a Stat, or a listing): it does not ask for it again.
func (r *Repo) readKnownSize(ctx context.Context, name string, info store.ObjectInfo, check func(size int64) error, use func(data []byte) error) error {
	if err := check(info.Size); err != nil {
		return err
	}
	budget := r.st.Budget()
	held, err := budget.AcquireBytes(ctx, info.Size+1)
	if err != nil {
		return err
	}
	defer budget.ReleaseBytes(held)
	rc, err := r.st.Get(ctx, name)
	if err != nil {
		return err
	}
	buf := make([]byte, info.Size+1) // one more: a longer object shows
	n, err := io.ReadFull(rc, buf)
	rc.Close()
	switch {
	case err == nil:
		return changed(name, info.Size, fmt.Sprintf("more than %d", info.Size))
	case err != io.EOF && err != io.ErrUnexpectedEOF:
		return err
	case int64(n) != info.Size:
		return changed(name, info.Size, fmt.Sprint(n))
	}
	return use(buf[:n])
}

// changed reports an object whose size changed while it was read.
func changed(name string, before int64, after string) error {
	return fmt.Errorf("repo: %s changed while it was read: %d bytes, then %s: %w", name, before, after, core.ErrCorrupt)
}
