package sources

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/internal/bigbuf"
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
	// DefaultParallelThreshold is the size from which a large blob is
	// downloaded in ranged reads at once; a smaller one is one request,
	// read in order (rclone's --multi-thread-cutoff is the same size).
	DefaultParallelThreshold = 256 << 20
	// maxChunks is the most chunks of one blob downloaded at once.
	maxChunks = 4
	// localChunkSize is the default chunk size on a local store, where a
	// read costs no request: smaller chunks hold less memory.
	localChunkSize = 4 << 20
	// inOrderBytes is the most bytes of a blob read in order held in
	// chunks at once, and only up to half of the blob: enough to keep
	// hashing the blob read ahead on one core while the service reads
	// the blob before it, without holding all of a large one.
	inOrderBytes = 32 << 20
)

// inOrderChunks returns how many chunk buffers a reader of a blob of
// size bytes read in order may hold: a chunk downloaded while the one
// before it is hashed and read, and more for a larger blob, up to half of
// it and inOrderBytes.
func inOrderChunks(size, chunk int64) int {
	ahead := min(size/2, inOrderBytes)
	return int(max(2, (ahead+chunk-1)/chunk))
}

// chunked reports whether e is read in chunks.
func (s *Source) chunked(e manifest.Entry) bool {
	return s.opts.LargeThreshold > 0 && e.Size >= s.opts.LargeThreshold
}

// chunkReader streams a large blob in chunks of ChunkSize bytes: from
// ParallelThreshold up, ranged reads, up to maxChunks of them at once;
// below it, one request read in order, chunk after chunk, which costs the
// server one request instead of one per chunk. The first Read decides
// how:
//
//   - When its buffer holds the whole blob, as that of core.ReadBlob
//     does, the chunks are read straight into it and hashed in order as
//     they come in, and that Read returns the blob's size once its size
//     and digest are checked. No byte is copied from a buffer of ours,
//     and no memory is taken from the store's budget.
//   - Otherwise the chunks are read ahead of the reader into buffers taken
//     from the budget. A goroutine of its own hashes each chunk in order
//     as soon as it is in, beside the reader's copying rather than in its
//     way, and a buffer is reused once both have passed it. At the end
//     Read waits for the digest and checks it.
//
// Either way the last chunk is read one byte past the recorded size, so a
// longer object is caught too, and a mismatch is returned by Read instead
// of io.EOF.
type chunkReader struct {
	e      manifest.Entry
	budget *store.Budget
	chunk  int64
	n      int // chunks
	// parallel is the number of chunks downloaded at once: maxChunks, or
	// 1 for one request read in order, stream, which only the goroutine
	// that downloads uses.
	parallel int
	stream   io.ReadCloser
	// start starts the downloads under the context of the Fetch that
	// opened the reader, and serves the first Read.
	start    func(p []byte) (int, error)
	reserved bool // the budget's memory for a first buffer is held, unused

	// Reading ahead into buffers.
	chunks  []chunkState
	free    chan []byte
	pool    *chunkPool
	limit   int        // the most buffers held: maxChunks, or see inOrderChunks
	bufs    []chunkBuf // every buffer taken from the budget; dispatcher only
	verdict chan error // the hasher's one result: nil when the digest matches
	next    int        // the chunk Read takes next
	held    *chunkState
	cur     []byte // the bytes of held not read yet

	err       error
	cancel    context.CancelCauseFunc
	stop      func() bool // ends the tie to the context of a later Fetch
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// chunkState is one chunk read ahead. Its fields are set before done is
// closed.
type chunkState struct {
	done  chan struct{}
	buf   []byte
	data  []byte // the chunk's bytes, in buf
	err   error
	users atomic.Int32 // of the reader and the hasher, those not past it
}

// chunkLimits returns how many chunks of e are downloaded at once, and
// how many buffers its reader may hold: from ParallelThreshold up,
// maxChunks of each; below it, one request read in order, and see
// inOrderChunks.
func (s *Source) chunkLimits(e manifest.Entry) (parallel, limit int) {
	if t := s.opts.ParallelThreshold; t < 0 || e.Size >= t {
		return maxChunks, maxChunks
	}
	return 1, inOrderChunks(e.Size, s.opts.ChunkSize)
}

// mayHold returns the most bytes of buffers a reader of e may hold.
func (s *Source) mayHold(e manifest.Entry) int64 {
	_, limit := s.chunkLimits(e)
	return int64(limit) * s.opts.ChunkSize
}

// openChunked returns a reader of e that starts on its first Read, or nil
// when the budget has no memory free for even one chunk (the caller then
// spools the blob). With ahead set it starts reading ahead into buffers
// at once, before any Read: see [Source.scheduleLarge].
func (s *Source) openChunked(ctx context.Context, e manifest.Entry, ahead bool) *chunkReader {
	budget := s.r.Budget()
	chunk := s.opts.ChunkSize
	if !budget.TryAcquireBytes(chunk) {
		return nil
	}
	r := &chunkReader{
		e: e, budget: budget, chunk: chunk, pool: s.chunks,
		n:        int((e.Size + chunk - 1) / chunk),
		reserved: true,
	}
	r.parallel, r.limit = s.chunkLimits(e)
	ctx, r.cancel = context.WithCancelCause(ctx)
	if ahead {
		r.readAhead(ctx, s)
		return r
	}
	r.start = func(p []byte) (int, error) {
		if int64(len(p)) >= e.Size {
			return r.readDirect(ctx, s, p)
		}
		r.readAhead(ctx, s)
		return r.readBuffered(p)
	}
	return r
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if start := r.start; start != nil {
		r.start = nil
		return start(p)
	}
	return r.readBuffered(p)
}

// bounds returns the offset and length of chunk i.
func (r *chunkReader) bounds(i int) (off, n int64) {
	off = int64(i) * r.chunk
	return off, min(r.chunk, r.e.Size-off)
}

// readDirect reads the whole blob into p and returns its size once its
// size and digest are checked. The calling goroutine downloads the first
// chunk while up to parallel-1 others start on the next ones, then hashes
// the chunks in order as they come in; while the one it needs next is not
// in, it downloads one that no one has started. No download writes into p
// after it returns.
func (r *chunkReader) readDirect(ctx context.Context, s *Source, p []byte) (int, error) {
	r.budget.ReleaseBytes(r.chunk) // the chunks go into the caller's memory
	r.reserved = false
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer r.closeStream()
	defer wg.Wait()
	defer cancel()
	span := func(i int) []byte {
		off, n := r.bounds(i)
		return p[off : off+n]
	}
	done := make([]chan error, r.n)
	for i := range done {
		done[i] = make(chan error, 1)
	}
	var claimed atomic.Int64
	// fetch downloads the next chunk no one has started, and reports
	// whether there was one.
	fetch := func() bool {
		i := int(claimed.Add(1) - 1)
		if i >= r.n || ctx.Err() != nil {
			return false
		}
		done[i] <- r.download(ctx, s, i, span(i))
		return true
	}
	claimed.Store(1) // the first chunk is the caller's
	for range min(r.parallel, r.n) - 1 {
		wg.Go(func() {
			for fetch() {
			}
		})
	}
	done[0] <- r.download(ctx, s, 0, span(0))
	h := sha256.New()
	for i := range done {
		for len(done[i]) == 0 && fetch() {
			// Chunk i is not in yet: another one was downloaded meanwhile.
		}
		select {
		case r.err = <-done[i]:
		case <-ctx.Done():
			r.err = fmt.Errorf("sources: blob %q: %w", r.e.Key, context.Cause(ctx))
		}
		if r.err != nil {
			return 0, r.err
		}
		h.Write(span(i))
	}
	if r.err = checkDigest(r.e, digest.FromSum(h.Sum(nil))); r.err != nil {
		return 0, r.err
	}
	r.err = io.EOF
	return int(r.e.Size), nil
}

// readAhead starts reading the chunks ahead into buffers, and hashing
// them.
func (r *chunkReader) readAhead(ctx context.Context, s *Source) {
	r.chunks = make([]chunkState, r.n)
	for i := range r.chunks {
		r.chunks[i].done = make(chan struct{})
		r.chunks[i].users.Store(2)
	}
	r.free = make(chan []byte, r.limit)
	r.verdict = make(chan error, 1)
	r.free <- r.newBuffer() // in the memory reserved
	r.reserved = false
	r.wg.Add(2)
	go r.dispatch(ctx, s)
	go r.hash()
}

// dispatch starts the download of each chunk in order as buffers allow;
// each download takes a request slot of the store's budget while it runs.
// Once ctx ends, it marks every chunk not started failed, so that no one
// waits for a chunk forever.
func (r *chunkReader) dispatch(ctx context.Context, s *Source) {
	defer r.wg.Done()
	for i := range r.chunks {
		buf, err := r.buffer(ctx)
		if err != nil {
			err = fmt.Errorf("sources: blob %q: %w", r.e.Key, err)
			for j := i; j < len(r.chunks); j++ {
				r.chunks[j].err = err
				close(r.chunks[j].done)
			}
			return
		}
		c := &r.chunks[i]
		get := func() {
			_, n := r.bounds(i)
			c.buf, c.data = buf, buf[:n]
			c.err = r.download(ctx, s, i, c.data)
			close(c.done)
		}
		if r.parallel == 1 {
			get() // in order, from the one request
			continue
		}
		r.wg.Go(get)
	}
}

// hash hashes the chunks in order as they come in, and sends the
// verdict: the first chunk's error, a digest mismatch, or nil.
func (r *chunkReader) hash() {
	defer r.wg.Done()
	h := sha256.New()
	for i := range r.chunks {
		c := &r.chunks[i]
		<-c.done
		if c.err != nil {
			r.verdict <- c.err
			return
		}
		h.Write(c.data)
		r.release(c)
	}
	r.verdict <- checkDigest(r.e, digest.FromSum(h.Sum(nil)))
}

// release marks c passed by the reader or the hasher; the second to pass
// it frees its buffer for the next download.
func (r *chunkReader) release(c *chunkState) {
	if c.users.Add(-1) == 0 {
		r.free <- c.buf // never blocks: at most limit buffers exist
	}
}

// buffer returns a free chunk buffer, taking a new one from the budget
// while it has room rather than wait. Before it waits, it closes the one
// request of a blob read in order: a request slot is never held while
// waiting for the reader, which may be waiting for a slot itself (the
// next chunk then opens a request for the rest).
func (r *chunkReader) buffer(ctx context.Context) ([]byte, error) {
	select {
	case b := <-r.free:
		return b, nil
	default:
	}
	if len(r.bufs) < r.limit && r.budget.TryAcquireBytes(r.chunk) {
		return r.newBuffer(), nil
	}
	r.closeStream()
	select {
	case b := <-r.free:
		return b, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// chunkPool keeps the chunk buffers of a Source's closed readers for its
// next ones. They are mapped outside the Go heap (see bigbuf.Map): memory
// already mapped costs no page faults, and buffers that come and go on
// the heap would make the garbage collector let the heap grow by as much
// again before it runs. A buffer is taken only for memory taken from the
// budget, so the pool never maps more buffers than the budget holds
// chunks; it frees them when the Source closes, or, for a reader still
// open then, when that reader closes.
//
// The Source's spools keep their memory for reuse too (spool.Memory):
// before either maps memory, it frees the free buffers of the other (see
// trim and spool.Memory.OnMap), so that the two together keep about what
// the budget lets them use at once, not each as much as it once used.
type chunkPool struct {
	size   int
	onMap  func() // called before a buffer is mapped
	mu     sync.Mutex
	free   []chunkBuf
	closed bool
}

// chunkBuf is one mapped chunk buffer and the function that frees it.
type chunkBuf struct {
	b     []byte
	unmap func()
}

// get returns a free buffer, or maps a new one, calling onMap first.
func (p *chunkPool) get() chunkBuf {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		c := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return c
	}
	p.mu.Unlock()
	if p.onMap != nil {
		p.onMap()
	}
	b, unmap := bigbuf.Map(p.size)
	return chunkBuf{b: b, unmap: unmap}
}

// trim frees the buffers not in use.
func (p *chunkPool) trim() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.free {
		c.unmap()
	}
	p.free = nil
}

// put returns c, whose last user is done with it.
func (p *chunkPool) put(c chunkBuf) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.unmap()
		return
	}
	p.free = append(p.free, c)
}

// close frees the buffers not in use, and those in use as they come back.
func (p *chunkPool) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.trim()
}

// newBuffer returns a chunk buffer from the pool, for memory already
// taken from the budget.
func (r *chunkReader) newBuffer() []byte {
	c := r.pool.get()
	r.bufs = append(r.bufs, c)
	return c.b
}

// download reads chunk i into dst, which has its length; the store
// resumes a read that breaks off. The last chunk is asked for one byte
// more: an object longer than recorded shows there.
//
// With one download at a time, the chunks come in order from one request
// for the rest of the blob, opened at the first chunk (or at one after a
// failure) and closed after the last.
func (r *chunkReader) download(ctx context.Context, s *Source, i int, dst []byte) error {
	off, want := r.bounds(i)
	last := i == r.n-1
	var rc io.ReadCloser
	if r.parallel == 1 && r.stream != nil {
		rc = r.stream
	} else {
		ask := want
		if r.parallel == 1 {
			ask = r.e.Size - off // and one more byte, after the last chunk
		}
		if r.parallel == 1 || last {
			ask++
		}
		var err error
		if rc, err = s.r.OpenBlobRange(ctx, r.e.Digest, off, ask); err != nil {
			return fmt.Errorf("sources: blob %q: %w", r.e.Key, err)
		}
		if r.parallel == 1 {
			r.stream = rc
		}
	}
	n, err := readUpTo(rc, dst)
	if err == nil && last && n == want {
		var probe [1]byte
		var m int64
		m, err = readUpTo(rc, probe[:])
		n += m
	}
	if r.parallel > 1 {
		rc.Close()
	} else if last || err != nil || n != want {
		r.closeStream()
	}
	switch {
	case err != nil:
		return fmt.Errorf("sources: blob %q: %w", r.e.Key, err)
	case n < want:
		return shorter(r.e, off+n)
	case n > want:
		return longer(r.e)
	}
	return nil
}

// closeStream closes the one request of a blob read in order, if open.
func (r *chunkReader) closeStream() {
	if r.stream != nil {
		r.stream.Close()
		r.stream = nil
	}
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

// readBuffered serves Read from the chunks read ahead.
func (r *chunkReader) readBuffered(p []byte) (int, error) {
	if err := r.fill(); err != nil {
		return 0, err
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// fill makes r.cur hold the next bytes read ahead, once the chunk they
// are in is in, and frees the chunk passed before. At the end it returns
// io.EOF, or the mismatch found in its place.
func (r *chunkReader) fill() error {
	for len(r.cur) == 0 {
		if r.err != nil {
			return r.err
		}
		if r.held != nil {
			r.release(r.held)
			r.held = nil
		}
		if r.next == len(r.chunks) {
			r.err = io.EOF
			if err := <-r.verdict; err != nil {
				r.err = err
			}
			return r.err
		}
		c := &r.chunks[r.next]
		<-c.done
		r.next++
		if c.err != nil {
			r.err = c.err
			return r.err
		}
		r.held, r.cur = c, c.data
	}
	return nil
}

// WriteTo writes the rest of the blob to w straight from the chunks read
// ahead, which io.Copy uses to skip copying them through a buffer of its
// own. As with Read, a mismatch is returned after the last byte, in place
// of a clean end.
func (r *chunkReader) WriteTo(w io.Writer) (int64, error) {
	if start := r.start; start != nil {
		r.start = nil
		if _, err := start(nil); err != nil { // reads ahead, as a short buffer does
			return 0, err
		}
	}
	var total int64
	for {
		if err := r.fill(); err != nil {
			if err == io.EOF {
				err = nil
			}
			return total, err
		}
		n, err := w.Write(r.cur)
		total += int64(n)
		r.cur = r.cur[n:]
		if err == nil && len(r.cur) > 0 {
			err = io.ErrShortWrite
		}
		if err != nil {
			return total, err
		}
	}
}

// Close stops the downloads and returns the buffers' memory.
func (r *chunkReader) Close() error {
	r.closeOnce.Do(func() {
		if r.stop != nil {
			r.stop()
		}
		r.cancel(nil)
		r.wg.Wait()
		r.closeStream()
		for _, c := range r.bufs {
			r.pool.put(c)
		}
		n := int64(len(r.bufs))
		if r.reserved {
			n++
		}
		r.budget.ReleaseBytes(n * r.chunk)
		r.start, r.cur, r.held = nil, nil, nil
		if r.err == nil {
			r.err = errors.New("sources: read after close")
		}
	})
	return nil
}
