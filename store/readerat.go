package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/statebucket/statebucket/core"
)

// maxIdleStreams is the most streams a [ReaderAt] keeps open between
// reads: enough for the parts a multipart upload reads at once, and the
// scan that checksums them.
const maxIdleStreams = 8

// ReaderAt is an [io.ReaderAt] over an object expected to hold a known
// number of bytes, such as a blob whose size a manifest records: the
// body of a Put that copies the object to another Store without
// spooling it. It reads with ranged reads of the driver (GetRange),
// resumed as a Store's readers are, and keeps each stream open between
// calls: a ReadAt at the offset where an earlier one ended goes on with
// its stream, so a caller reading the object in order makes one request,
// and callers reading parts of it concurrently each get their own
// stream.
//
// Each stream asks for one byte past the expected size. A read that
// reaches the expected end reads that byte too, and fails with an error
// matching core.ErrSizeMismatch if the object holds it, returning none of
// the bytes it read, so that an upload of the body never sends its whole
// length; an object that ends early makes ReadAt return io.EOF before the
// expected end, as any short body does. [ReaderAt.SizeSeen] tells the
// caller which, and [ReaderAt.CheckEnd] checks the end when no read
// reached it.
//
// Its reads take no request slot of the Store's [Budget]: they are made
// on behalf of a request that holds one already, the Put that reads the
// body, possibly on another Store sharing the same budget, which would
// otherwise wait for itself. The Put's concurrency bounds theirs.
//
// A ReaderAt is safe for concurrent use. Close it once the Put returns.
type ReaderAt struct {
	s    *Store
	ctx  context.Context
	name string
	size int64

	mu     sync.Mutex
	idle   []*stream // open streams not being read, least recently used first
	closed bool
	seen   int64 // see SizeSeen
}

// stream is an open ranged read, positioned at off.
type stream struct {
	rc  io.ReadCloser
	off int64
}

// ReaderAt returns a [ReaderAt] over the object name, expected to hold
// size bytes, bound to ctx. It makes no request until it is read.
func (s *Store) ReaderAt(ctx context.Context, name string, size int64) (*ReaderAt, error) {
	if err := ValidName(name); err != nil {
		return nil, s.wrap("get", name, err)
	}
	if size < 0 {
		return nil, s.wrap("get", name, fmt.Errorf("negative size %d: %w", size, core.ErrInvalid))
	}
	return &ReaderAt{s: s, ctx: ctx, name: name, size: size, seen: -1}, nil
}

var errReaderAtClosed = errors.New("ReadAt after Close")

// ReadAt reads len(p) bytes from off, or up to the expected size, where
// it returns io.EOF.
func (r *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, r.s.wrap("read", r.name, fmt.Errorf("negative offset %d: %w", off, core.ErrInvalid))
	}
	if off >= r.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	want := p[:min(int64(len(p)), r.size-off)]
	st, err := r.take(off)
	if err != nil {
		return 0, err
	}
	n, err := io.ReadFull(st.rc, want)
	st.off += int64(n)
	switch {
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		st.rc.Close()
		r.see(st.off)
		return n, io.EOF // the object ends early
	case err != nil:
		st.rc.Close()
		return n, err
	case st.off == r.size:
		err = r.checkEnd(st.rc)
		st.rc.Close()
		if err != nil {
			// The last bytes are withheld: an upload reading this body
			// must not complete its length, which a server would take
			// for a whole object even as the client gives up.
			return 0, err
		}
	default:
		r.put(st)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// take returns the idle stream positioned at off, or opens one there,
// to one byte past the expected end.
func (r *ReaderAt) take(off int64) (*stream, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, &Error{Op: "read", Name: r.name, Location: r.s.location, Err: errReaderAtClosed}
	}
	for i, st := range r.idle {
		if st.off == off {
			r.idle = append(r.idle[:i], r.idle[i+1:]...)
			r.mu.Unlock()
			return st, nil
		}
	}
	r.mu.Unlock()
	rc, err := r.s.getRange(r.ctx, r.name, off, r.size+1-off, false)
	if err != nil {
		return nil, err
	}
	return &stream{rc: rc, off: off}, nil
}

// put keeps st open for the next read at its offset, closing the least
// recently used stream if too many are kept.
func (r *ReaderAt) put(st *stream) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		st.rc.Close()
		return
	}
	r.idle = append(r.idle, st)
	var evicted *stream
	if len(r.idle) > maxIdleStreams {
		evicted = r.idle[0]
		r.idle = r.idle[1:]
	}
	r.mu.Unlock()
	if evicted != nil {
		evicted.rc.Close()
	}
}

// see records that the object holds size bytes, or more than the
// expected size if size is past it.
func (r *ReaderAt) see(size int64) {
	r.mu.Lock()
	r.seen = size
	r.mu.Unlock()
}

// checkEnd reads rc, positioned at the expected end, to its end: it
// fails with an error matching core.ErrSizeMismatch if the object holds
// more bytes.
func (r *ReaderAt) checkEnd(rc io.Reader) error {
	var one [1]byte
	n, err := io.ReadFull(rc, one[:])
	switch {
	case n > 0:
		r.see(r.size + 1)
		return r.s.wrap("read", r.name, fmt.Errorf("object holds more than the %d bytes expected: %w", r.size, core.ErrSizeMismatch))
	case err == io.EOF:
		r.see(r.size)
		return nil
	}
	return err
}

// CheckEnd checks that the object holds no more than the expected size,
// if no read has reached its end yet (a Put of an empty body, or one
// that read only parts of it), with one ranged read of a byte; as
// ReadAt, it fails with an error matching core.ErrSizeMismatch if it
// does.
func (r *ReaderAt) CheckEnd(ctx context.Context) error {
	r.mu.Lock()
	seen := r.seen
	r.mu.Unlock()
	if seen >= 0 {
		if seen > r.size {
			return r.s.wrap("read", r.name, fmt.Errorf("object holds more than the %d bytes expected: %w", r.size, core.ErrSizeMismatch))
		}
		return nil
	}
	rc, err := r.s.getRange(ctx, r.name, r.size, 1, false)
	if err != nil {
		return err
	}
	defer rc.Close()
	return r.checkEnd(rc)
}

// Local reports whether the object is on this machine (its driver
// implements [Local] and says so), so that reading it twice costs no
// second download.
func (r *ReaderAt) Local() bool { return r.s.Local() }

// SizeSeen returns what the reads found of the object's size: the
// expected size once a read checked the end, the offset where the object
// ended if before that, more than the expected size if it holds more,
// and -1 if no read reached the end.
func (r *ReaderAt) SizeSeen() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen
}

// Close closes the streams kept open. Reads after Close fail.
func (r *ReaderAt) Close() error {
	r.mu.Lock()
	idle := r.idle
	r.idle, r.closed = nil, true
	r.mu.Unlock()
	var errs []error
	for _, st := range idle {
		errs = append(errs, st.rc.Close())
	}
	return errors.Join(errs...)
}
