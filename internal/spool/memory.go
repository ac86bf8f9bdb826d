package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/statebucket/statebucket/internal/bigbuf"
)

const (
	// pieceSize is the size of one piece of a Memory: a blob of known
	// size from pieceSize up is held in pieces, a smaller one on the Go
	// heap.
	pieceSize = 256 << 10
	// slabSize is how much memory a Memory maps at once: one huge page
	// (see bigbuf), cut into pieces.
	slabSize = 2 << 20
)

// Memory holds the bytes of in-memory spools in pieces of memory mapped
// outside the Go heap, reused from spool to spool. Blobs held on the heap
// become garbage the moment their spool closes, and the collector lets
// the heap grow by as much garbage as it holds live before it runs: a
// prefetcher that holds 30 MiB of blobs then keeps 60 MiB of heap. Pieces
// go back to the Memory instead, which maps no more of them than were
// ever held at once, a number the budget bounds.
//
// A Memory is safe for concurrent use. Close it when its spools are
// closed: it frees its memory once the last piece in use comes back.
type Memory struct {
	mu     sync.Mutex
	free   [][]byte // the pieces free[:cold] hold no memory (see Trim)
	cold   int
	unmap  []func() // of every slab mapped
	out    int      // pieces in use
	closed bool
	ever   int    // slabs mapped since NewMemory
	onMap  func() // see OnMap
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{} }

// OnMap sets f, called before m maps a slab, for a Memory that shares the
// memory of a budget with another pool of buffers kept for reuse: f
// frees that pool's free buffers, so that the two together keep little
// more memory than the budget lets them use at once, instead of each
// keeping as much as it once used. The other pool calls Trim for the
// same reason.
func (m *Memory) OnMap(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onMap = f
}

// Trim gives the memory of the pieces not in use back to the system (see
// bigbuf.Discard); they stay m's, and get memory again, at the cost of
// its page faults, when next used.
func (m *Memory) Trim() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.free[m.cold:] {
		bigbuf.Discard(p)
	}
	m.cold = len(m.free)
}

// Idle returns the bytes of the pieces not in use that hold memory.
func (m *Memory) Idle() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.free)-m.cold) * pieceSize
}

// get returns a piece: one that holds memory if there is one, or else a
// trimmed one, or else one of a slab it maps, calling the OnMap function
// first.
func (m *Memory) get() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.free) == 0 && m.onMap != nil {
		m.mu.Unlock() // f takes the other pool's lock, which may call Trim
		m.onMap()
		m.mu.Lock()
	}
	if len(m.free) == 0 {
		b, unmap := bigbuf.Map(slabSize)
		m.unmap = append(m.unmap, unmap)
		m.ever++
		for off := 0; off < slabSize; off += pieceSize {
			m.free = append(m.free, b[off:off+pieceSize:off+pieceSize])
		}
	}
	p := m.free[len(m.free)-1]
	m.free = m.free[:len(m.free)-1]
	m.cold = min(m.cold, len(m.free))
	m.out++
	return p
}

// put returns pieces no longer used.
func (m *Memory) put(pieces [][]byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.free = append(m.free, pieces...)
	m.out -= len(pieces)
	m.release()
}

// Slabs returns the number of slabs mapped now, and since NewMemory.
func (m *Memory) Slabs() (now, ever int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.unmap), m.ever
}

// Close frees the memory, now if no piece is in use, or else when the
// last one comes back.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.release()
	return nil
}

// release unmaps every slab once m is closed and no piece is in use.
// m.mu is held.
func (m *Memory) release() {
	if !m.closed || m.out > 0 {
		return
	}
	for _, unmap := range m.unmap {
		unmap()
	}
	m.free, m.unmap, m.cold = nil, nil, 0
}

// fillPieces reads r into pieces of opts.Memory, for a blob of
// opts.SizeHint bytes, and reports whether r ended within them. The
// budget holds the pieces for one byte more than the hint, to see the
// end; without that much memory free, or with a longer blob, Fill spills
// to a file.
func (s *Spool) fillPieces(ctx context.Context, r io.Reader, opts Options) (bool, error) {
	count := (opts.SizeHint + pieceSize) / pieceSize // SizeHint+1 bytes
	want := count * pieceSize
	if opts.NoWait {
		if !s.budget.TryAcquireBytes(want) {
			return false, nil
		}
		s.held = want
	} else {
		got, err := s.budget.AcquireBytes(ctx, want)
		s.held = got
		if err != nil || got < want {
			return false, err
		}
	}
	s.memory = opts.Memory
	for range count {
		p := s.memory.get()
		s.pieces = append(s.pieces, p)
		n, err := readFull(r, p)
		s.inPieces += int64(n)
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
	return false, nil // longer than the hint
}

// readFull reads r into p until p is full, returning io.EOF if r ends
// first.
func readFull(r io.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// piecesReaderAt reads the pieces of a spool.
type piecesReaderAt struct{ s *Spool }

func (r piecesReaderAt) SHA256() []byte { return r.s.sum }

func (r piecesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	s := r.s
	switch {
	case s.pieces == nil:
		return 0, errors.New("spool: read after close")
	case off < 0:
		return 0, fmt.Errorf("spool: negative offset %d", off)
	}
	n := 0
	for n < len(p) && off < s.inPieces {
		piece := s.pieces[off/pieceSize][:min(pieceSize, s.inPieces-off/pieceSize*pieceSize)]
		m := copy(p[n:], piece[off%pieceSize:])
		n += m
		off += int64(m)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// putPieces gives the spool's pieces back to its Memory.
func (s *Spool) putPieces() {
	if s.pieces != nil {
		s.memory.put(s.pieces)
		s.pieces = nil
	}
}

// piecesHeld returns the bytes held in pieces, piece by piece.
func (s *Spool) piecesHeld() [][]byte {
	held := make([][]byte, 0, len(s.pieces))
	for i, p := range s.pieces {
		held = append(held, p[:min(pieceSize, s.inPieces-int64(i)*pieceSize)])
	}
	return held
}
