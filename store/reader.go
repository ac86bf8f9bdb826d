package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync/atomic"
)

// reader is the reader a Store's Get or GetRange returns. When a read
// fails with a transient error (see [IsTransient]), it opens the rest of
// the object, or of the range, with the driver's GetRange, after a
// backoff, and goes on, so a driver only ever serves plain reads. It
// gives up once 1+retries attempts in a row have yielded no byte, with an
// error naming the offset reached.
//
// Resuming stitches bytes of two reads together: that is sound for
// objects that never change, such as a repository's content-addressed
// blobs and snapshots; an object that is replaced while it is read (a
// tag) may come back torn if the read breaks off in between.
//
// It wraps its errors in an *Error once, and returns the Store's request
// slot it holds when it is closed or has returned io.EOF or an error,
// whichever comes first. It holds the context of the Get that opened it,
// as an HTTP response body does, and uses it to resume.
type reader struct {
	s    *Store
	ctx  context.Context
	name string
	rc   io.ReadCloser // nil between a failure and its resumption
	off  int64         // offset in the object of the next byte
	end  int64         // end of the range, exclusive, or -1: the object's end

	failures int   // failed attempts since the last byte read
	cause    error // the last failure
	err      error // returned by every Read once set

	released atomic.Bool
}

var errClosed = errors.New("read after Close")

func (r *reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for {
		if r.rc == nil {
			if r.end >= 0 && r.off >= r.end { // broke off after the range's last byte
				r.err = io.EOF
				r.release()
				return 0, io.EOF
			}
			if err := r.resume(); err != nil {
				return 0, r.stop(err)
			}
		}
		n, err := r.rc.Read(p)
		r.off += int64(n)
		if n > 0 {
			r.failures = 0
		}
		switch {
		case err == nil:
			return n, nil
		case err == io.EOF:
			r.err = io.EOF
			r.release()
			return n, io.EOF
		case !IsTransient(err) || r.ctx.Err() != nil:
			return n, r.stop(err)
		}
		r.rc.Close()
		r.rc = nil
		r.cause = err
		r.failures++
		if n > 0 {
			return n, nil
		}
	}
}

// resume opens the rest of the range, after a backoff, trying again while
// the opening fails with a transient error, until 1+retries attempts in a
// row have failed.
func (r *reader) resume() error {
	for {
		if r.failures > r.s.retry.retries {
			return fmt.Errorf("gave up at byte %d after %d attempts in a row without progress: %w", r.off, r.failures, r.cause)
		}
		if err := r.s.retry.wait(r.ctx, r.failures, r.cause); err != nil {
			return err
		}
		length := int64(math.MaxInt64) - r.off // to the object's end
		if r.end >= 0 {
			length = r.end - r.off
		}
		rc, err := r.s.drv.GetRange(r.ctx, r.name, r.off, length)
		if err == nil {
			r.rc = rc
			return nil
		}
		if !IsTransient(err) {
			return err
		}
		r.cause = err
		r.failures++
	}
}

// stop makes err, wrapped, the reader's final error, and returns it.
func (r *reader) stop(err error) error {
	r.err = r.s.wrap("read", r.name, err)
	r.release()
	return r.err
}

func (r *reader) Close() error {
	var err error
	if r.rc != nil {
		err = r.rc.Close()
		r.rc = nil
	}
	if r.err == nil || r.err == io.EOF {
		// Not through wrap: errClosed holds nothing to redact, and a
		// regular expression per blob read is a quarter of an import's
		// CPU on small blobs.
		r.err = &Error{Op: "read", Name: r.name, Location: r.s.location, Err: errClosed}
	}
	r.release()
	return err
}

func (r *reader) release() {
	if r.released.CompareAndSwap(false, true) {
		r.s.budget.releaseRequest()
	}
}
