package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/statebucket/statebucket/core"
)

// Error is the error every [Store] method returns: the operation, the
// object's name, the repository's (redacted) location, and the driver's
// error, which it unwraps to.
type Error struct {
	Op       string // "put", "get", "read", "stat", "list", "delete", "sync", "clean"
	Name     string // object name or list prefix
	Location string // repository URL, credentials removed
	Err      error
}

func (e *Error) Error() string {
	return fmt.Sprintf("store: %s %q in %s: %v", e.Op, e.Name, e.Location, e.Err)
}

// Unwrap returns the driver's error.
func (e *Error) Unwrap() error { return e.Err }

// Store is the portable handle on a repository's storage that the engines
// use. It validates names, takes a request slot of its [Budget] for each
// call to the driver, calls the driver, tries again after transient
// failures (see [IsTransient]), resumes reads that break off, and wraps
// the driver's errors exactly once in an [*Error]. A Store is safe for
// concurrent use.
//
// Every method that reaches the driver (Put, PutIfMatch, Get, GetRange,
// Stat, List, Delete, Sync, CleanStale) holds one request slot while
// it runs, its retries and the
// waits between them included; a reader returned by Get or GetRange holds
// its slot until it is closed or has returned io.EOF or an error. The
// reads of a [ReaderAt] alone take none (see there). So a
// goroutine that holds such a reader, or runs inside List's callback, must
// not wait for another call on the same Store to finish: with a budget of
// one request that would never happen.
type Store struct {
	drv      Driver
	location string
	budget   *Budget
	retry    retrier
}

// Options configure a [Store]. The zero value, like a nil *Options, means
// the defaults.
type Options struct {
	// Budget limits the requests in flight and the bytes buffered by every
	// transfer on the Store. nil means a Budget of the driver's
	// MaxConcurrency requests (see [Concurrency]), or DefaultConcurrency,
	// and DefaultBufferBytes bytes.
	Budget *Budget
	// Retries is how many times an operation that failed with a transient
	// error is tried again, and how many times in a row a read that broke
	// off is resumed without getting a byte. 0 means DefaultRetries;
	// negative means none.
	Retries int
	// Backoff is the wait before the first retry, doubled at each one up
	// to MaxBackoff, each wait drawn at random between half and all of it.
	// 0 means DefaultBackoff; negative means no wait.
	Backoff time.Duration
	// MaxBackoff caps the wait between two attempts. 0 means
	// DefaultMaxBackoff.
	MaxBackoff time.Duration
}

// New returns a Store over drv. location names the repository in errors
// and must not hold secrets. A nil opts means the defaults.
func New(drv Driver, location string, opts *Options) *Store {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Budget == nil {
		n := DefaultConcurrency
		if c, ok := drv.(Concurrency); ok && c.MaxConcurrency() > 0 {
			n = c.MaxConcurrency()
		}
		o.Budget = NewBudget(n, DefaultBufferBytes)
	}
	return &Store{drv: drv, location: location, budget: o.Budget, retry: newRetrier(o)}
}

// Budget returns the limits shared by every transfer on this Store.
func (s *Store) Budget() *Budget { return s.budget }

// Driver returns the underlying driver, for type assertions on optional
// interfaces.
func (s *Store) Driver() Driver { return s.drv }

// Local reports whether the driver's objects are on this machine (it
// implements [Local] and says so).
func (s *Store) Local() bool {
	l, ok := s.drv.(Local)
	return ok && l.Local()
}

// Location returns the repository's location, as given to [New].
func (s *Store) Location() string { return s.location }

func (s *Store) wrap(op, name string, err error) error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return err
	}
	// Drivers and their SDKs may repeat a URL with its secrets in an
	// error's text: redact it once here, for every backend.
	return &Error{Op: op, Name: name, Location: s.location, Err: RedactError(err)}
}

// call runs try, the driver call of operation op on name, holding a
// request slot, and tries it again after transient failures. try is told
// the attempt's number, from 1. An error marked final is not tried again.
func (s *Store) call(ctx context.Context, op, name string, try func(attempt int) error) error {
	if err := s.budget.acquireRequest(ctx); err != nil {
		return s.wrap(op, name, err)
	}
	defer s.budget.releaseRequest()
	attempt := 0
	return s.wrap(op, name, s.retry.do(ctx, func() error {
		attempt++
		return try(attempt)
	}))
}

// Put stores size bytes of body under name (see [Driver.Put]), trying
// again after transient failures: body must allow that (any io.ReaderAt
// does). A body holding fewer than size bytes is an error matching
// core.ErrSizeMismatch, not tried again.
//
// A create-only Put tried again after a transient failure may meet the
// object that an earlier attempt stored, its answer lost: it then fails
// with an error that matches core.ErrExists as any refused create-only
// Put does, and says so. Callers that must tell the two apart read the
// object back and compare it with what they wrote.
func (s *Store) Put(ctx context.Context, name string, body io.ReaderAt, size int64, opts PutOptions) error {
	if err := ValidName(name); err != nil {
		return s.wrap("put", name, err)
	}
	if size < 0 {
		return s.wrap("put", name, fmt.Errorf("negative size %d: %w", size, core.ErrInvalid))
	}
	return s.call(ctx, "put", name, func(attempt int) error {
		err := s.drv.Put(ctx, name, body, size, opts)
		switch {
		case err == nil:
		case !errors.Is(err, core.ErrSizeMismatch) && short(body, size):
			err = fmt.Errorf("body holds fewer than the %d bytes announced: %w: %w", size, core.ErrSizeMismatch, err)
		case attempt > 1 && opts.CreateOnly && errors.Is(err, core.ErrExists):
			err = fmt.Errorf("%w (on attempt %d of a create-only write: an earlier attempt, whose answer was lost, may have stored it)", err, attempt)
		}
		return err
	})
}

// PutIfMatch stores size bytes of body under name on condition that the
// object is still at version (see [ConditionalPutter]), trying again after
// transient failures. A driver that cannot compare and swap yields an
// error matching errors.ErrUnsupported; an object no longer at version,
// one matching core.ErrConflict. A conditional Put tried again after a
// transient failure may meet the object that an earlier attempt stored,
// its answer lost, and fail with core.ErrConflict, saying so: callers that
// must tell the two apart read the object back.
func (s *Store) PutIfMatch(ctx context.Context, name string, body io.ReaderAt, size int64, opts PutOptions, version string) error {
	if err := ValidName(name); err != nil {
		return s.wrap("put", name, err)
	}
	cp, ok := s.drv.(ConditionalPutter)
	switch {
	case !ok:
		return s.wrap("put", name, fmt.Errorf("the %T driver cannot replace an object conditionally: %w", s.drv, errors.ErrUnsupported))
	case version == "" || opts.CreateOnly || size < 0:
		return s.wrap("put", name, fmt.Errorf("conditional put needs a version, no CreateOnly and a size of 0 or more: %w", core.ErrInvalid))
	}
	return s.call(ctx, "put", name, func(attempt int) error {
		err := cp.PutIfMatch(ctx, name, body, size, opts, version)
		if attempt > 1 && errors.Is(err, core.ErrConflict) {
			err = fmt.Errorf("%w (on attempt %d of a conditional write: an earlier attempt, whose answer was lost, may have stored it)", err, attempt)
		}
		return err
	})
}

// CleanStale removes the debris of interrupted writes older than
// olderThan, on drivers that leave such debris (see [Cleaner]), and
// returns how many items it removed; on others it does nothing.
func (s *Store) CleanStale(ctx context.Context, olderThan time.Duration) (int, error) {
	c, ok := s.drv.(Cleaner)
	if !ok {
		return 0, nil
	}
	var n int
	err := s.call(ctx, "clean", "", func(int) error {
		var err error
		n, err = c.CleanStale(ctx, olderThan)
		return err
	})
	return n, err
}

// short reports whether body holds fewer than size bytes.
func short(body io.ReaderAt, size int64) bool {
	if size == 0 {
		return false
	}
	var last [1]byte
	n, _ := body.ReadAt(last[:], size-1)
	return n == 0
}

// PutBytes stores data under name.
func (s *Store) PutBytes(ctx context.Context, name string, data []byte, opts PutOptions) error {
	return s.Put(ctx, name, bytes.NewReader(data), int64(len(data)), opts)
}

// Get opens the object name for reading, trying again after transient
// failures to open it. The reader resumes a read that breaks off (see
// [Store]); it is bound to ctx, and must be closed.
func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := ValidName(name); err != nil {
		return nil, s.wrap("get", name, err)
	}
	return s.open(ctx, name, 0, -1, true, func() (io.ReadCloser, error) { return s.drv.Get(ctx, name) })
}

// GetRange opens length bytes of the object name from offset (see
// [Driver.GetRange]), as Get does.
func (s *Store) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	return s.getRange(ctx, name, offset, length, true)
}

// getRange is GetRange; the reader takes a request slot only if slot is
// set.
func (s *Store) getRange(ctx context.Context, name string, offset, length int64, slot bool) (io.ReadCloser, error) {
	if err := ValidName(name); err != nil {
		return nil, s.wrap("get", name, err)
	}
	if offset < 0 || length < 0 {
		return nil, s.wrap("get", name, fmt.Errorf("range %d+%d: %w", offset, length, core.ErrInvalid))
	}
	end := int64(-1) // past math.MaxInt64: to the object's end
	if length <= math.MaxInt64-offset {
		end = offset + length
	}
	return s.open(ctx, name, offset, end, slot, func() (io.ReadCloser, error) { return s.drv.GetRange(ctx, name, offset, length) })
}

// open takes a request slot, if slot is set, and opens the bytes from
// off to end of the object name with get, trying again after transient
// failures; the reader returned holds the slot.
func (s *Store) open(ctx context.Context, name string, off, end int64, slot bool, get func() (io.ReadCloser, error)) (io.ReadCloser, error) {
	if slot {
		if err := s.budget.acquireRequest(ctx); err != nil {
			return nil, s.wrap("get", name, err)
		}
	}
	var rc io.ReadCloser
	err := s.retry.do(ctx, func() error {
		var err error
		rc, err = get()
		return err
	})
	r := &reader{s: s, ctx: ctx, name: name, rc: rc, off: off, end: end}
	r.released.Store(!slot)
	if err != nil {
		r.release()
		return nil, s.wrap("get", name, err)
	}
	return r, nil
}

// GetBytes reads the object name whole, failing with an error matching
// core.ErrInvalid if it holds more than max bytes.
func (s *Store) GetBytes(ctx context.Context, name string, max int64) ([]byte, error) {
	rc, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, min(max, math.MaxInt64-1)+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, s.wrap("get", name, fmt.Errorf("object larger than the %d-byte limit: %w", max, core.ErrInvalid))
	}
	return data, nil
}

// Stat returns the attributes of the object name.
func (s *Store) Stat(ctx context.Context, name string) (ObjectInfo, error) {
	if err := ValidName(name); err != nil {
		return ObjectInfo{}, s.wrap("stat", name, err)
	}
	var info ObjectInfo
	err := s.call(ctx, "stat", name, func(int) error {
		var err error
		info, err = s.drv.Stat(ctx, name)
		return err
	})
	return info, err
}

// Exists reports whether the object name exists.
func (s *Store) Exists(ctx context.Context, name string) (bool, error) {
	_, err := s.Stat(ctx, name)
	if errors.Is(err, core.ErrNotFound) && !errors.Is(err, core.ErrBucketNotFound) {
		return false, nil
	}
	return err == nil, err
}

// List calls fn for every object with a valid name (see [ValidName]) that
// starts with prefix. Errors returned by fn are passed back unwrapped. fn
// runs while List holds a request slot: it must not wait for other calls
// on the Store (see [Store]). A listing that fails with a transient error
// is tried again only if it had not called fn yet, so that fn sees each
// object once.
func (s *Store) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	if err := ValidPrefix(prefix); err != nil {
		return s.wrap("list", prefix, err)
	}
	var fnErr error
	called := false
	err := s.call(ctx, "list", prefix, func(int) error {
		err := s.drv.List(ctx, prefix, func(info ObjectInfo) error {
			if ValidName(info.Name) != nil {
				return nil
			}
			called = true
			if err := fn(info); err != nil {
				fnErr = err
				return err
			}
			return nil
		})
		if err != nil && called {
			return final{err}
		}
		return err
	})
	if fnErr != nil && errors.Is(err, fnErr) {
		return fnErr
	}
	return err
}

// Delete removes the object name. A Delete tried again after a transient
// failure that then finds the object missing succeeds: the earlier
// attempt, whose answer was lost, removed it.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := ValidName(name); err != nil {
		return s.wrap("delete", name, err)
	}
	return s.call(ctx, "delete", name, func(attempt int) error {
		err := s.drv.Delete(ctx, name)
		if attempt > 1 && errors.Is(err, core.ErrNotFound) && !errors.Is(err, core.ErrBucketNotFound) {
			return nil
		}
		return err
	})
}

// Sync makes every Put made with PutOptions.DeferSync that has returned
// durable, on drivers that defer it (see [Syncer]); on others it does
// nothing.
func (s *Store) Sync(ctx context.Context) error {
	sy, ok := s.drv.(Syncer)
	if !ok {
		return nil
	}
	return s.call(ctx, "sync", "", func(int) error { return sy.Sync(ctx) })
}

// Close closes the driver.
func (s *Store) Close() error { return s.drv.Close() }
