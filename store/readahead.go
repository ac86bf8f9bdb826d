package store

import (
	"errors"
	"io"
	"sync"
)

// Read-ahead of long ranged reads (see [ReaderAt]): chunks of
// readAheadChunk bytes, at most readAheadDepth waiting.
const (
	readAheadChunk = 1 << 20
	readAheadDepth = 4
	// readAheadMin is the shortest read worth a goroutine.
	readAheadMin = 4 * readAheadChunk
)

var errReadAheadClosed = errors.New("read after Close")

var aheadBufs = sync.Pool{New: func() any { b := make([]byte, readAheadChunk); return &b }}

// readAhead reads rc ahead of its reader, in a goroutine, so that a
// download overlaps what the reader does with the bytes it already has
// (hash them, write them): a copy of a large blob takes the longer of the
// two rather than their sum. It returns the bytes and then the error rc
// gave, in order.
type readAhead struct {
	rc     io.ReadCloser
	chunks chan aheadChunk
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once

	cur aheadChunk // the chunk being read; its error once its bytes are
	off int        // read in cur
}

type aheadChunk struct {
	buf *[]byte
	n   int
	err error
}

func newReadAhead(rc io.ReadCloser) *readAhead {
	r := &readAhead{rc: rc, chunks: make(chan aheadChunk, readAheadDepth), stop: make(chan struct{}), done: make(chan struct{})}
	go r.fill()
	return r
}

// fill reads rc into chunks until rc ends or fails, or Close stops it.
func (r *readAhead) fill() {
	defer close(r.done)
	for {
		buf := aheadBufs.Get().(*[]byte)
		n, err := io.ReadFull(r.rc, *buf)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		select {
		case r.chunks <- aheadChunk{buf: buf, n: n, err: err}:
		case <-r.stop:
			aheadBufs.Put(buf)
			return
		}
		if err != nil {
			return
		}
	}
}

func (r *readAhead) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for r.cur.buf == nil || r.off == r.cur.n {
		if r.cur.buf != nil {
			if r.cur.err != nil {
				return 0, r.cur.err
			}
			aheadBufs.Put(r.cur.buf)
		}
		select {
		case r.cur = <-r.chunks:
			r.off = 0
		case <-r.stop:
			r.cur = aheadChunk{}
			return 0, errReadAheadClosed
		}
	}
	n := copy(p, (*r.cur.buf)[r.off:r.cur.n])
	r.off += n
	return n, nil
}

// Close stops the read-ahead and closes rc. It is safe to call more than
// once.
func (r *readAhead) Close() error {
	var err error
	r.once.Do(func() {
		close(r.stop)
		err = r.rc.Close() // ends a read in flight
		<-r.done
		for {
			select {
			case c := <-r.chunks:
				aheadBufs.Put(c.buf)
				continue
			default:
			}
			break
		}
		if r.cur.buf != nil {
			aheadBufs.Put(r.cur.buf)
			r.cur = aheadChunk{}
		}
	})
	return err
}
