// Package spool holds blob bytes between a stream and a store: in memory
// below a size threshold, in a temporary file above it, hashing them with
// SHA-256 on the way in. Memory is taken from a shared [store.Budget].
package spool

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"

	"github.com/statebucket/statebucket/store"
)

// DefaultMemoryThreshold is the largest blob kept in memory.
const DefaultMemoryThreshold = 4 << 20

// firstChunk is the memory taken before a blob of unknown size is read.
const firstChunk = 64 << 10

// Options configure [Fill].
type Options struct {
	// MemoryThreshold is the largest blob held in memory; larger ones go
	// to a temporary file. 0 means DefaultMemoryThreshold.
	MemoryThreshold int64
	// TempDir is where temporary files go; "" means os.TempDir().
	TempDir string
	// SizeHint is the expected size, or < 0 when unknown.
	SizeHint int64
	// Files, if set, gives the temporary file a file of a closed spool to
	// write over, and keeps this one's file when it is closed.
	Files *Files
	// Memory, if set, holds a blob of known size (SizeHint) from 256 KiB
	// up in its pieces, outside the Go heap, rather than on the heap.
	Memory *Memory
	// NoWait makes Fill spill to a temporary file rather than wait for
	// memory. Use it when spools may be held while others are filled, as
	// a prefetcher does, so that filling never waits on a held spool.
	NoWait bool
}

// Spool is a blob's bytes, held in memory or in a temporary file, with
// their SHA-256 sum. Close releases them. A Spool is safe for concurrent
// reads through ReaderAt.
type Spool struct {
	src      io.ReaderAt // the caller's bytes, read in place (see Fill)
	mem      []byte
	pieces   [][]byte // of memory, holding inPieces bytes
	inPieces int64
	memory   *Memory
	file     *os.File
	unlinked bool   // the file's name is removed already
	files    *Files // keeps the file when the spool is closed, if set
	size     int64
	sum      []byte
	budget   *store.Budget
	held     int64 // budget bytes held
}

// Size returns the number of bytes held.
func (s *Spool) Size() int64 { return s.size }

// Sum returns the SHA-256 of the bytes held.
func (s *Spool) Sum() []byte { return s.sum }

// ReaderAt returns the bytes for random access. Bytes held in memory come
// as a [store.HashedBody], their SHA-256 being Sum: they are the bytes
// hashed, and stay as they are until Close.
func (s *Spool) ReaderAt() io.ReaderAt {
	if s.src != nil {
		return s.src
	}
	if s.file != nil {
		if s.files != nil { // written over: bytes past size are another blob's
			return io.NewSectionReader(s.file, 0, s.size)
		}
		return s.file
	}
	if s.pieces != nil {
		return piecesReaderAt{s}
	}
	return bytesReaderAt{s.mem, s.sum}
}

// Reader returns a new reader over the bytes held.
func (s *Spool) Reader() io.Reader { return io.NewSectionReader(s.ReaderAt(), 0, s.size) }

// InMemory reports whether the bytes are held in memory.
func (s *Spool) InMemory() bool { return s.file == nil && s.src == nil }

// InPlace reports whether the bytes are read in place from the reader
// given to Fill, neither copied to memory nor to a file.
func (s *Spool) InPlace() bool { return s.src != nil }

// Close removes the temporary file, if any, and returns the memory to the
// budget. It is safe to call more than once.
func (s *Spool) Close() error {
	var err error
	if s.file != nil && s.unlinked && s.files.keep(s.file) {
		s.file = nil
	}
	if s.file != nil {
		err = s.file.Close()
		if !s.unlinked {
			err = errors.Join(err, os.Remove(s.file.Name()))
		}
		s.file = nil
	}
	s.mem = nil
	s.src = nil
	s.putPieces()
	if s.held > 0 {
		s.budget.ReleaseBytes(s.held)
		s.held = 0
	}
	return err
}

// bytesReaderAt reads a spool's bytes held on the heap.
type bytesReaderAt struct{ b, sum []byte }

func (r bytesReaderAt) SHA256() []byte { return r.sum }

func (r bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	b := r.b
	if off < 0 {
		return 0, fmt.Errorf("spool: negative offset %d", off)
	}
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Fill reads r to its end into a new Spool, hashing the bytes (bound r
// with io.LimitReader to cap what is read). Memory for blobs up to the
// threshold is taken from budget: Fill waits for the first chunk and spills
// to a temporary file rather than wait for more. The caller closes the
// Spool; on error nothing is left behind.
//
// A reader that already gives random access to its bytes, an
// io.ReaderAt and io.Seeker positioned at its start (an *os.File, a
// *bytes.Reader, an *io.SectionReader) with SizeHint its size, is not
// copied at all: Fill hashes it in place, and the Spool reads from it, so
// the caller keeps it open, and its bytes unchanged, until the Spool is
// closed. (Stores check the digest again as they write, so bytes changed
// in between fail the write rather than store a wrong blob.)
func Fill(ctx context.Context, r io.Reader, budget *store.Budget, opts Options) (*Spool, error) {
	if s, ok, err := inPlace(ctx, r, opts.SizeHint); ok || err != nil {
		return s, err
	}
	threshold := opts.MemoryThreshold
	if threshold <= 0 {
		threshold = DefaultMemoryThreshold
	}
	s := &Spool{budget: budget}
	h := sha256.New()
	r = &ctxReader{ctx: ctx, r: r}

	first := int64(firstChunk)
	if opts.SizeHint >= 0 {
		first = opts.SizeHint + 1 // +1 to see EOF without growing
	}
	// A blob of known size within the threshold goes in pieces of
	// opts.Memory if it has one and the blob fills one piece at least.
	pieces := opts.Memory != nil && opts.SizeHint >= pieceSize && opts.SizeHint <= threshold
	if opts.SizeHint > threshold || pieces {
		first = 0 // known to be large, or to go in pieces
	}
	first = min(first, threshold+1)
	if first > 0 {
		if opts.NoWait {
			if budget.TryAcquireBytes(first) {
				s.held = first
			}
		} else {
			got, err := budget.AcquireBytes(ctx, first)
			if err != nil {
				return nil, err
			}
			s.held = got
		}
	}
	if pieces {
		done, err := s.fillPieces(ctx, r, opts)
		if err != nil {
			s.Close()
			return nil, err
		}
		if done {
			return s.finish(h), nil
		}
	} else if s.held > 0 {
		// A blob of unknown size is read into a buffer of the pool
		// first; one that fits in it is then copied out at its size, so
		// that a small blob holds, and makes the collector scan, its own
		// size rather than a whole chunk.
		var first *[]byte
		if s.held == firstChunk {
			first = firstBufs.Get().(*[]byte)
			s.mem = (*first)[:0]
		} else {
			s.mem = make([]byte, 0, s.held)
		}
		done, err := s.fillMemory(r, threshold)
		if first != nil {
			if cap(s.mem) == firstChunk { // not grown: still the pool's
				s.mem = append([]byte(nil), s.mem...)
				s.budget.ReleaseBytes(s.held - int64(len(s.mem)))
				s.held = int64(len(s.mem))
			}
			firstBufs.Put(first)
		}
		if err != nil {
			s.Close()
			return nil, err
		}
		if done {
			return s.finish(h), nil
		}
	}
	s.files = opts.Files
	if err := s.spill(r, h, opts.TempDir); err != nil {
		s.Close()
		return nil, err
	}
	return s.finish(h), nil
}

// fillMemory reads into s.mem, growing it while the budget allows, and
// reports whether the stream ended within the threshold.
func (s *Spool) fillMemory(r io.Reader, threshold int64) (bool, error) {
	for {
		if len(s.mem) == cap(s.mem) {
			grow := min(int64(cap(s.mem)), threshold+1-int64(cap(s.mem)))
			if grow <= 0 || !s.budget.TryAcquireBytes(grow) {
				return false, nil
			}
			s.held += grow
			m := make([]byte, len(s.mem), int64(cap(s.mem))+grow)
			copy(m, s.mem)
			s.mem = m
		}
		n, err := r.Read(s.mem[len(s.mem):cap(s.mem)])
		s.mem = s.mem[:len(s.mem)+n]
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// RandomAccess returns r as random access to its bytes, and true, if r
// gives it from its start: an io.ReaderAt and io.Seeker positioned at
// offset 0 (an *os.File, a *bytes.Reader, an *io.SectionReader), and size,
// its announced length, is known (not negative). Fill reads such a reader
// in place. RandomAccess does not check the length: the bytes past size,
// or missing before it, are the caller's to detect.
func RandomAccess(r io.Reader, size int64) (io.ReaderAt, bool) {
	ra, isReaderAt := r.(io.ReaderAt)
	sk, isSeeker := r.(io.Seeker)
	if !isReaderAt || !isSeeker || size < 0 {
		return nil, false
	}
	if pos, err := sk.Seek(0, io.SeekCurrent); err != nil || pos != 0 {
		return nil, false
	}
	return ra, true
}

// inPlace hashes r in place when it gives random access to exactly size
// bytes from its current position, its start, and reports whether it
// did. A reader of another length, or one read past its start already,
// is left at its position for Fill to stream, which counts its bytes.
func inPlace(ctx context.Context, r io.Reader, size int64) (*Spool, bool, error) {
	ra, ok := RandomAccess(r, size)
	if !ok {
		return nil, false, nil
	}
	h := sha256.New()
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	n, err := io.CopyBuffer(onlyWriter{h}, &ctxReader{ctx: ctx, r: io.NewSectionReader(ra, 0, size)}, *buf)
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, err
		}
		return nil, false, nil // let the stream say what is wrong
	}
	if n != size {
		return nil, false, nil
	}
	if extra, _ := ra.ReadAt((*buf)[:1], size); extra > 0 {
		return nil, false, nil // longer than announced
	}
	return &Spool{src: ra, size: size, sum: h.Sum(nil)}, true, nil
}

// spill moves what is in memory to a temporary file and copies the rest of
// r after it.
func (s *Spool) spill(r io.Reader, h hash.Hash, dir string) error {
	if err := s.createFile(dir); err != nil {
		return err
	}
	f := s.file
	held := [][]byte{s.mem}
	if s.pieces != nil {
		held = s.piecesHeld()
	}
	for _, b := range held {
		if _, err := f.Write(b); err != nil {
			return fmt.Errorf("spool: write %s: %w", f.Name(), err)
		}
		h.Write(b)
		s.size += int64(len(b))
	}
	s.mem = nil
	s.putPieces()
	s.budget.ReleaseBytes(s.held)
	s.held = 0
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	n, err := io.CopyBuffer(onlyWriter{io.MultiWriter(f, h)}, r, *buf)
	s.size += n
	if err != nil {
		return err
	}
	return nil
}

// createFile creates the spool's file in dir (os.TempDir() if empty),
// without a name where the system allows it, so that a process killed
// while it holds the file leaves nothing behind: unnamed from the start
// on Linux, unlinked right after its creation elsewhere on Unix (a kill
// between the two leaves it); the file lives on until it is closed.
func (s *Spool) createFile(dir string) error {
	if f := s.files.take(); f != nil {
		s.file, s.unlinked = f, true
		return nil
	}
	if dir == "" {
		dir = os.TempDir()
	}
	if f, ok := createUnnamed(dir); ok {
		s.file, s.unlinked = f, true
		return nil
	}
	f, err := os.CreateTemp(dir, "statebucket-spool-*")
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.file = f
	s.unlinked = os.Remove(f.Name()) == nil
	return nil
}

func (s *Spool) finish(h hash.Hash) *Spool {
	if s.file == nil && s.pieces != nil {
		for _, b := range s.piecesHeld() {
			h.Write(b)
		}
		s.size = s.inPieces
	} else if s.file == nil {
		s.size = int64(len(s.mem))
		h.Write(s.mem)
	}
	s.sum = h.Sum(nil)
	return s
}

// firstBufs hold the buffers of firstChunk bytes that blobs of unknown
// size are read into first.
var firstBufs = sync.Pool{New: func() any { b := make([]byte, firstChunk); return &b }}

// copyBufs hold the buffers that move large blobs to spool files: 1 MiB
// writes cost far fewer system calls than io.Copy's 32 KiB.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// onlyWriter hides ReadFrom so io.Copy uses its buffer and the ctxReader
// is consulted between chunks.
type onlyWriter struct{ w io.Writer }

func (w onlyWriter) Write(p []byte) (int, error) { return w.w.Write(p) }

// ctxReader fails reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
