package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	"github.com/statebucket/statebucket/core"
)

// Retry defaults of a [Store] (see [Options]).
const (
	// DefaultRetries is how many times an operation that failed with a
	// transient error is tried again, and how many times in a row a read
	// is resumed without getting a byte.
	DefaultRetries = 4
	// DefaultBackoff is the wait before the first retry; it doubles at
	// each retry, up to DefaultMaxBackoff.
	DefaultBackoff = 100 * time.Millisecond
	// DefaultMaxBackoff is the longest wait between two attempts.
	DefaultMaxBackoff = 5 * time.Second
)

// permanent are the sentinels of failures that trying again cannot mend,
// even when the error also says the connection broke.
var permanent = []error{
	core.ErrNotFound, core.ErrBucketNotFound, core.ErrExists, core.ErrPermission,
	core.ErrInvalid, core.ErrInvalidPath, core.ErrChecksumMismatch, core.ErrSizeMismatch,
	core.ErrConflict,
}

// IsTransient reports whether err is a failure that may not happen again
// if the operation is tried again: an error matching core.ErrTransient
// (which drivers add to throttling, server errors and broken connections),
// io.ErrUnexpectedEOF (a response cut short), a connection reset or
// aborted, a broken pipe, or a network timeout. An error that also matches
// a sentinel of a lasting failure (core.ErrNotFound, core.ErrExists,
// core.ErrChecksumMismatch, core.ErrSizeMismatch, core.ErrPermission…)
// is not transient, and neither is the end of a context.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	for _, p := range permanent {
		if errors.Is(err, p) {
			return false
		}
	}
	if errors.Is(err, core.ErrTransient) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// retrier is the retry policy of a Store.
type retrier struct {
	retries    int // retries after the first attempt
	backoff    time.Duration
	maxBackoff time.Duration
}

func newRetrier(o Options) retrier {
	r := retrier{retries: o.Retries, backoff: o.Backoff, maxBackoff: o.MaxBackoff}
	switch {
	case r.retries == 0:
		r.retries = DefaultRetries
	case r.retries < 0:
		r.retries = 0
	}
	switch {
	case r.backoff == 0:
		r.backoff = DefaultBackoff
	case r.backoff < 0:
		r.backoff = 0
	}
	if r.maxBackoff <= 0 {
		r.maxBackoff = DefaultMaxBackoff
	}
	return r
}

// do calls try until it succeeds, fails with an error that is not
// transient or is marked final, or has failed 1+retries times in a row,
// waiting between attempts, and returns the last error (unmarked). It is
// the one retry loop of the object layer.
func (r retrier) do(ctx context.Context, try func() error) error {
	for attempt := 1; ; attempt++ {
		err := try()
		if f, ok := err.(final); ok {
			return f.error
		}
		if err == nil || !IsTransient(err) {
			return err
		}
		if attempt > r.retries {
			if attempt == 1 {
				return err
			}
			return fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		}
		if werr := r.wait(ctx, attempt, err); werr != nil {
			return werr
		}
	}
}

// final marks an error that must not be tried again, however transient.
type final struct{ error }

// wait waits before retry number n (from 1) after a failure with cause,
// or fails with ctx's error, and cause, once ctx is done.
func (r retrier) wait(ctx context.Context, n int, cause error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w; the last attempt failed with: %w", err, cause)
	}
	if r.backoff <= 0 {
		return nil
	}
	// Full jitter between half and all of the exponential backoff, so that
	// many clients throttled at once do not retry in step.
	d := r.backoff << min(n-1, 30)
	if d <= 0 || d > r.maxBackoff {
		d = r.maxBackoff
	}
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("%w; the last attempt failed with: %w", ctx.Err(), cause)
	case <-t.C:
		return nil
	}
}
