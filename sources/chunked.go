package sources

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/store"
)

// Defaults for large blobs, which are read in parallel chunks.
const (
	// DefaultLargeThreshold is the size from which a blob is streamed in
	// chunks rather than spooled whole.
	DefaultLargeThreshold = 32 << 20
	// DefaultChunkSize is the size of one ranged read of a large blob.
	DefaultChunkSize = 8 << 20
	// maxChunks is the most chunks of one blob downloaded at once.
	maxChunks = 4
)

// chunked reports whether e is read in chunks.
func (s *Source) chunked(e manifest.Entry) bool {
	return s.opts.LargeThreshold > 0 && e.Size >= s.opts.LargeThreshold
}

// chunkReader streams a large blob: up to maxChunks ranged reads run
// ahead of the reader into buffers taken from the store's budget, and the
// bytes are hashed as they pass. At the end it checks the digest; the
// last chunk asks for one byte more than the recorded size, so a longer
// object is caught too. A mismatch is returned by Read instead of io.EOF.
type chunkReader struct {
	e       manifest.Entry
	budget  *store.Budget
	chunk   int64
	results []chan chunkResult
	free    chan []byte
	bufs    [][]byte // every buffer taken from the budget; dispatcher only
	pool    *sync.Pool

	next   int
	cur    []byte
	curBuf []byte
	h      hash.Hash
	err    error

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

type chunkResult struct {
	buf, data []byte
	err       error
}

// openChunked starts streaming e, or returns nil when the budget has no
// memory free for even one chunk (the caller then spools the blob).
func (s *Source) openChunked(ctx context.Context, e manifest.Entry) *chunkReader {
	budget := s.r.Budget()
	chunk := s.opts.ChunkSize
	if !budget.TryAcquireBytes(chunk + 1) {
		return nil
	}
	n := int((e.Size + chunk - 1) / chunk)
	r := &chunkReader{
		e: e, budget: budget, chunk: chunk,
		results: make([]chan chunkResult, n),
		free:    make(chan []byte, maxChunks),
		pool:    &s.chunkBufs,
		h:       sha256.New(),
	}
	for i := range r.results {
		r.results[i] = make(chan chunkResult, 1)
	}
	r.free <- r.newBuffer()
	ctx, r.cancel = context.WithCancel(ctx)
	r.wg.Add(1)
	go r.dispatch(ctx, s)
	return r
}

// dispatch starts the download of each chunk in order as buffers allow;
// each download takes a request slot of the store's budget while it runs.
func (r *chunkReader) dispatch(ctx context.Context, s *Source) {
	defer r.wg.Done()
	for i := range r.results {
		buf, err := r.buffer(ctx)
		if err != nil {
			r.results[i] <- chunkResult{buf: buf, err: fmt.Errorf("sources: blob %q: %w", r.e.Key, err)}
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			data, err := r.download(ctx, s, i, buf)
			r.results[i] <- chunkResult{buf: buf, data: data, err: err}
		}()
	}
}

// buffer returns a free chunk buffer, taking a new one from the budget
// while it has room rather than wait.
func (r *chunkReader) buffer(ctx context.Context) ([]byte, error) {
	select {
	case b := <-r.free:
		return b, nil
	default:
	}
	if len(r.bufs) < maxChunks && r.budget.TryAcquireBytes(r.chunk+1) {
		return r.newBuffer(), nil
	}
	select {
	case b := <-r.free:
		return b, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// newBuffer returns a chunk buffer, reused from an earlier reader of the
// same Source when one is free, for memory already taken from the budget.
func (r *chunkReader) newBuffer() []byte {
	var b []byte
	if p, ok := r.pool.Get().(*[]byte); ok && int64(len(*p)) == r.chunk+1 {
		b = *p
	} else {
		b = make([]byte, r.chunk+1)
	}
	r.bufs = append(r.bufs, b)
	return b
}

// download reads chunk i into buf; the store resumes a read that breaks
// off.
func (r *chunkReader) download(ctx context.Context, s *Source, i int, buf []byte) ([]byte, error) {
	off := int64(i) * r.chunk
	want := min(r.chunk, r.e.Size-off)
	ask := want
	last := i == len(r.results)-1
	if last {
		ask++ // one more: an object longer than recorded shows here
	}
	rc, err := s.r.OpenBlobRange(ctx, r.e.Digest, off, ask)
	if err != nil {
		return nil, fmt.Errorf("sources: blob %q: %w", r.e.Key, err)
	}
	defer rc.Close()
	n, err := readUpTo(rc, buf[:ask])
	switch {
	case err != nil:
		return nil, fmt.Errorf("sources: blob %q: %w", r.e.Key, err)
	case n < want:
		return nil, shorter(r.e, off+n)
	case last && n > want:
		return nil, longer(r.e)
	}
	return buf[:n], nil
}

// readUpTo fills p from r until p is full or r ends cleanly.
func readUpTo(r io.Reader, p []byte) (int64, error) {
	n := 0
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err == io.EOF {
			break
		}
		if err != nil {
			return int64(n), err
		}
	}
	return int64(n), nil
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.curBuf != nil {
			r.free <- r.curBuf
			r.curBuf = nil
		}
		if r.next == len(r.results) {
			r.err = io.EOF
			if err := checkDigest(r.e, digest.FromSum(r.h.Sum(nil))); err != nil {
				r.err = err
			}
			return 0, r.err
		}
		res := <-r.results[r.next]
		r.next++
		if res.err != nil {
			r.err = res.err
			return 0, r.err
		}
		r.curBuf, r.cur = res.buf, res.data
		r.h.Write(res.data)
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Close stops the downloads and returns the buffers' memory.
func (r *chunkReader) Close() error {
	r.closeOnce.Do(func() {
		r.cancel()
		r.wg.Wait()
		for i := range r.bufs {
			r.pool.Put(&r.bufs[i])
		}
		r.budget.ReleaseBytes(int64(len(r.bufs)) * (r.chunk + 1))
		r.cur, r.curBuf = nil, nil
		if r.err == nil {
			r.err = errors.New("sources: read after close")
		}
	})
	return nil
}
