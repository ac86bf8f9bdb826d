package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync/atomic"

	"github.com/statebucket/statebucket/core"
)

// Error is the error every [Store] method returns: the operation, the
// object's name, the repository's (redacted) location, and the driver's
// error, which it unwraps to.
type Error struct {
	Op       string // "put", "get", "read", "stat", "list", "delete", "sync"
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
// call to the driver, calls the driver, and wraps the driver's errors
// exactly once in an [*Error]. A Store is safe for concurrent use.
//
// Every method that reaches the driver (Put, Get, GetRange, Stat, List,
// Delete, Sync) holds one request slot while it runs; a reader returned by
// Get or GetRange holds its slot until it is closed or has returned its
// last byte or an error. So a goroutine that holds such a reader, or runs
// inside List's callback, must not wait for another call on the same
// Store to finish: with a budget of one request that would never happen.
type Store struct {
	drv      Driver
	location string
	budget   *Budget
}

// Options configure a [Store]. The zero value, like a nil *Options, means
// the defaults.
type Options struct {
	// Budget limits the requests in flight and the bytes buffered by every
	// transfer on the Store. nil means a Budget of the driver's
	// MaxConcurrency requests (see [Concurrency]), or DefaultConcurrency,
	// and DefaultBufferBytes bytes.
	Budget *Budget
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
	return &Store{drv: drv, location: location, budget: o.Budget}
}

// Budget returns the limits shared by every transfer on this Store.
func (s *Store) Budget() *Budget { return s.budget }

// Driver returns the underlying driver, for type assertions on optional
// interfaces.
func (s *Store) Driver() Driver { return s.drv }

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
	return &Error{Op: op, Name: name, Location: s.location, Err: err}
}

// Put stores size bytes of body under name (see [Driver.Put]).
func (s *Store) Put(ctx context.Context, name string, body io.ReaderAt, size int64, opts PutOptions) error {
	if err := ValidName(name); err != nil {
		return s.wrap("put", name, err)
	}
	if size < 0 {
		return s.wrap("put", name, fmt.Errorf("negative size %d: %w", size, core.ErrInvalid))
	}
	if err := s.budget.acquireRequest(ctx); err != nil {
		return s.wrap("put", name, err)
	}
	defer s.budget.releaseRequest()
	return s.wrap("put", name, s.drv.Put(ctx, name, body, size, opts))
}

// PutBytes stores data under name.
func (s *Store) PutBytes(ctx context.Context, name string, data []byte, opts PutOptions) error {
	return s.Put(ctx, name, bytes.NewReader(data), int64(len(data)), opts)
}

// Get opens the object name for reading.
func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := ValidName(name); err != nil {
		return nil, s.wrap("get", name, err)
	}
	if err := s.budget.acquireRequest(ctx); err != nil {
		return nil, s.wrap("get", name, err)
	}
	rc, err := s.drv.Get(ctx, name)
	if err != nil {
		s.budget.releaseRequest()
		return nil, s.wrap("get", name, err)
	}
	return &reader{rc: rc, s: s, name: name}, nil
}

// RangeReads reports whether the driver can read parts of objects (see
// [RangeReader]).
func (s *Store) RangeReads() bool {
	_, ok := s.drv.(RangeReader)
	return ok
}

// GetRange opens length bytes of the object name from offset (see
// [RangeReader]). It fails with an error matching errors.ErrUnsupported
// when the driver cannot read ranges.
func (s *Store) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := ValidName(name); err != nil {
		return nil, s.wrap("get", name, err)
	}
	rr, ok := s.drv.(RangeReader)
	if !ok {
		return nil, s.wrap("get", name, fmt.Errorf("driver cannot read ranges: %w", errors.ErrUnsupported))
	}
	if offset < 0 || length < 0 {
		return nil, s.wrap("get", name, fmt.Errorf("range %d+%d: %w", offset, length, core.ErrInvalid))
	}
	if err := s.budget.acquireRequest(ctx); err != nil {
		return nil, s.wrap("get", name, err)
	}
	rc, err := rr.GetRange(ctx, name, offset, length)
	if err != nil {
		s.budget.releaseRequest()
		return nil, s.wrap("get", name, err)
	}
	return &reader{rc: rc, s: s, name: name}, nil
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
	if err := s.budget.acquireRequest(ctx); err != nil {
		return ObjectInfo{}, s.wrap("stat", name, err)
	}
	defer s.budget.releaseRequest()
	info, err := s.drv.Stat(ctx, name)
	return info, s.wrap("stat", name, err)
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
// on the Store (see [Store]).
func (s *Store) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	if err := ValidPrefix(prefix); err != nil {
		return s.wrap("list", prefix, err)
	}
	if err := s.budget.acquireRequest(ctx); err != nil {
		return s.wrap("list", prefix, err)
	}
	defer s.budget.releaseRequest()
	var fnErr error
	err := s.drv.List(ctx, prefix, func(info ObjectInfo) error {
		if ValidName(info.Name) != nil {
			return nil
		}
		if err := fn(info); err != nil {
			fnErr = err
			return err
		}
		return nil
	})
	if fnErr != nil && errors.Is(err, fnErr) {
		return fnErr
	}
	return s.wrap("list", prefix, err)
}

// Delete removes the object name.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := ValidName(name); err != nil {
		return s.wrap("delete", name, err)
	}
	if err := s.budget.acquireRequest(ctx); err != nil {
		return s.wrap("delete", name, err)
	}
	defer s.budget.releaseRequest()
	return s.wrap("delete", name, s.drv.Delete(ctx, name))
}

// Sync makes every Put that has returned durable, on drivers that defer
// it (see [Syncer]); on others it does nothing.
func (s *Store) Sync(ctx context.Context) error {
	sy, ok := s.drv.(Syncer)
	if !ok {
		return nil
	}
	if err := s.budget.acquireRequest(ctx); err != nil {
		return s.wrap("sync", "", err)
	}
	defer s.budget.releaseRequest()
	return s.wrap("sync", "", sy.Sync(ctx))
}

// Close closes the driver.
func (s *Store) Close() error { return s.drv.Close() }

// reader is the reader of a Get or GetRange: it wraps read errors in an
// *Error once, and returns its request slot when it is closed or has
// returned io.EOF or an error, whichever comes first.
type reader struct {
	rc       io.ReadCloser
	s        *Store
	name     string
	released atomic.Bool
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil {
		r.release()
		if err != io.EOF {
			err = r.s.wrap("read", r.name, err)
		}
	}
	return n, err
}

func (r *reader) Close() error {
	err := r.rc.Close()
	r.release()
	return err
}

func (r *reader) release() {
	if r.released.CompareAndSwap(false, true) {
		r.s.budget.releaseRequest()
	}
}
