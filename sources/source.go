// Package sources is the import engine: a [core.BlobSource] that serves the
// blobs of one snapshot from a repository ([repo.Repo]) over any store
// driver.
//
// A Source looks each key up in the snapshot's manifest, downloads the blob,
// and checks its size and SHA-256 digest while streaming it into a spool
// (never reading more than the recorded size plus one byte), so a service
// never receives bytes that are not the recorded ones. Because services
// call Fetch one key at a time, the Source prefetches the entries that
// follow the last key asked for, in manifest order, under the store's
// shared [store.Budget], so a restore runs at download speed. The store
// tries failed downloads again and resumes those that break off.
//
// Blobs of Options.LargeThreshold bytes and more are not spooled: they
// stream to the service in chunks, ranged reads downloaded in parallel
// ahead of the reader, with their size and digest checked as the bytes
// pass; a mismatch is returned by Read in place of io.EOF, and the service
// then fails its restore. While the service reads one, the first chunks of
// the next large blob are downloaded and hashed, so that two digests are
// computed at once rather than one after the other. A service that reads
// such a blob into one buffer of its size, as [core.ReadBlob] does, has
// the chunks downloaded straight into that buffer, and its Read returns
// only bytes already checked. Chunk buffers are mapped outside the Go
// heap and reused from blob to blob until the Source closes.
package sources

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/internal/spool"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
)

// Options configure a [Source]. The zero value is ready to use.
type Options struct {
	// Prefetch is how many manifest entries after the last key fetched are
	// downloaded ahead (of large blobs, only the next one, and only its
	// first chunks). 0 means the store budget's MaxRequests, and up to
	// four times as many while the blobs to spool in all these entries
	// total at most a quarter of the budget's bytes; a negative value
	// turns prefetching off.
	Prefetch int
	// MemoryThreshold is the largest blob held in memory; larger ones are
	// spooled to a temporary file. 0 means 4 MiB.
	MemoryThreshold int64
	// TempDir holds temporary spool files; "" means os.TempDir().
	TempDir string
	// LargeThreshold is the size from which a blob is streamed in
	// chunks instead of being spooled whole; its digest is then checked
	// as the last byte passes, and a mismatch is returned by Read in
	// place of io.EOF. 0 means DefaultLargeThreshold, or, on a local
	// store (a directory), every blob larger than MemoryThreshold: there
	// a spool would only copy one file into another. Negative turns
	// chunked reads off.
	LargeThreshold int64
	// ChunkSize is the size of one ranged read; 0 means DefaultChunkSize,
	// or 4 MiB on a local store.
	ChunkSize int64
	// ParallelThreshold is the size from which a blob read in chunks is
	// downloaded in up to four ranged reads at once; a smaller one is one
	// request read in order, chunk after chunk. 0 means
	// DefaultParallelThreshold; negative means every chunked blob in
	// parallel ranged reads (for a distant server whose single streams
	// are slow).
	ParallelThreshold int64
	// OnBlob, if set, is called for every blob handed to the service.
	OnBlob func(key string, size int64)
}

// Stats counts what a [Source] did.
type Stats struct {
	Fetched      int   // blobs handed to the service
	Bytes        int64 // their total size
	PrefetchHits int   // of those, blobs that were downloaded ahead
}

// Source serves the blobs of one snapshot. Create it with [New] and Close
// it when the restore is over. It is safe for concurrent use.
type Source struct {
	r    *repo.Repo
	m    *manifest.Manifest
	opts Options
	// smallAhead is how many bytes of blobs to spool the window ahead
	// may hold to grow past Prefetch entries, up to 4 × Prefetch of them;
	// -1 when Prefetch was set, which then is the window.
	smallAhead int64
	files      *spool.Files  // the files of closed spools, written over
	memory     *spool.Memory // the memory of spools, reused
	chunks     *chunkPool    // the buffers of closed chunk readers

	mu    sync.Mutex
	slots map[int]*slot // downloads ahead, by manifest index
	next  int           // lowest index not yet scheduled ahead
	large int           // lowest index of a large blob not yet read ahead
	stats Stats
	wg    sync.WaitGroup
}

type slot struct {
	done   chan struct{}
	cancel context.CancelFunc
	sp     *spool.Spool
	err    error
	cr     *chunkReader // a large blob read ahead in chunks; done is closed
}

var _ core.BlobSource = (*Source)(nil)

// New returns a Source for the blobs of m, read from r. opts may be nil.
func New(r *repo.Repo, m *manifest.Manifest, opts *Options) *Source {
	s := &Source{r: r, m: m, slots: map[int]*slot{}}
	if opts != nil {
		s.opts = *opts
	}
	s.smallAhead = -1
	if s.opts.Prefetch == 0 {
		s.opts.Prefetch = r.Budget().MaxRequests()
		s.smallAhead = r.Budget().MaxBytes() / 4
	}
	if s.opts.LargeThreshold == 0 {
		s.opts.LargeThreshold = DefaultLargeThreshold
		if r.Store().Local() {
			// Spooling a blob of a local store only copies a file into
			// another: every blob too large for memory streams instead.
			s.opts.LargeThreshold = cmp.Or(s.opts.MemoryThreshold, spool.DefaultMemoryThreshold) + 1
		}
	}
	if s.opts.ChunkSize <= 0 {
		s.opts.ChunkSize = DefaultChunkSize
		if r.Store().Local() {
			s.opts.ChunkSize = localChunkSize
		}
	}
	s.memory = spool.NewMemory()
	s.chunks = &chunkPool{size: int(s.opts.ChunkSize), onMap: s.memory.Trim}
	s.memory.OnMap(s.chunks.trim)
	if s.opts.ParallelThreshold == 0 {
		s.opts.ParallelThreshold = DefaultParallelThreshold
	}
	// As many spool files kept as blobs may be downloaded at once: a
	// blob past the memory threshold writes over the file of one the
	// service has read, not into a new one (see spool.Files).
	s.files = spool.NewFiles(max(s.opts.Prefetch, 1))
	return s
}

// Stats returns what the source did so far.
func (s *Source) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Fetch returns the bytes of key, verified before they are handed over
// or, for a large blob streamed in chunks, as they pass. A key the
// manifest does not list yields an error matching core.ErrNotFound; bytes
// that differ from the manifest yield a [*repo.MismatchError], from Fetch or,
// for a streamed blob, from the reader's last Read. Close the reader once
// read: the memory and the file that hold the blob are freed, or reused
// for the next blobs, only then, even after the Source is closed.
func (s *Source) Fetch(ctx context.Context, key string) (io.ReadCloser, error) {
	idx := s.m.Index(key)
	if idx < 0 {
		return nil, fmt.Errorf("sources: blob %q is not in snapshot %s: %w", key, s.m.ID, core.ErrNotFound)
	}
	s.mu.Lock()
	sl := s.slots[idx]
	delete(s.slots, idx)
	s.schedule(ctx, idx)
	s.mu.Unlock()

	if sl != nil && sl.cr != nil {
		r := sl.cr
		// From now on the reader also ends with the context of this Fetch.
		r.stop = context.AfterFunc(ctx, func() { r.cancel(context.Cause(ctx)) })
		s.count(key, s.m.Blobs[idx].Size, true)
		return r, nil
	}
	if e := s.m.Blobs[idx]; sl == nil && s.chunked(e) {
		if r := s.openChunked(ctx, e, false); r != nil {
			s.count(key, e.Size, false)
			return r, nil
		}
	}

	var sp *spool.Spool
	var err error
	if sl != nil {
		select {
		case <-sl.done:
			sp, err = sl.sp, sl.err
		case <-ctx.Done():
			sl.cancel()
			s.discard(sl)
			return nil, fmt.Errorf("sources: blob %q: %w", key, context.Cause(ctx))
		}
	}
	hit := sl != nil && err == nil
	// A download ahead runs under the context of the Fetch that started
	// it, which may have ended since: only ctx decides whether to give up.
	if sl == nil || (err != nil && isContextErr(err) && ctx.Err() == nil) {
		sp, err = s.load(ctx, idx)
	}
	if err != nil {
		return nil, err
	}
	s.count(key, sp.Size(), hit)
	return &spoolReader{Reader: sp.Reader(), sp: sp}, nil
}

// count records a blob handed to the service.
func (s *Source) count(key string, size int64, hit bool) {
	s.mu.Lock()
	s.stats.Fetched++
	s.stats.Bytes += size
	if hit {
		s.stats.PrefetchHits++
	}
	s.mu.Unlock()
	if s.opts.OnBlob != nil {
		s.opts.OnBlob(key, size)
	}
}

// schedule starts downloads of the entries after idx and drops those
// before it. s.mu is held.
func (s *Source) schedule(ctx context.Context, idx int) {
	for i, sl := range s.slots {
		if i < idx {
			delete(s.slots, i)
			sl.cancel()
			s.discardAsync(sl)
		}
	}
	if s.opts.Prefetch < 0 {
		return
	}
	if s.next <= idx {
		s.next = idx + 1
	}
	end := s.windowEnd(idx)
	for ; s.next < end; s.next++ {
		i := s.next
		if s.chunked(s.m.Blobs[i]) {
			continue // streamed in chunks when fetched, not spooled ahead
		}
		pctx, cancel := context.WithCancel(ctx)
		sl := &slot{done: make(chan struct{}), cancel: cancel}
		s.slots[i] = sl
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer close(sl.done)
			sl.sp, sl.err = s.load(pctx, i)
		}()
	}
	s.scheduleLarge(ctx, idx, end)
}

// windowEnd returns the end of the window of entries downloaded ahead
// of idx: Prefetch entries, and, by default, more while their blobs to
// spool are small, up to 4 × Prefetch. The store runs only Prefetch
// (its request limit) downloads at once either way; a window larger than
// that lets the other downloads go on past a slow one, as a bare loop of
// that many workers does, rather than wait for the service to fetch it.
func (s *Source) windowEnd(idx int) int {
	end := min(idx+1+s.opts.Prefetch, len(s.m.Blobs))
	if s.smallAhead < 0 {
		return end
	}
	var bytes int64
	for i := idx + 1; i < end; i++ {
		if e := s.m.Blobs[i]; !s.chunked(e) {
			bytes += e.Size
		}
	}
	for limit := min(idx+1+4*s.opts.Prefetch, len(s.m.Blobs)); end < limit; end++ {
		if e := s.m.Blobs[end]; !s.chunked(e) {
			if bytes += e.Size; bytes > s.smallAhead {
				break
			}
		}
	}
	return end
}

// scheduleLarge starts reading ahead the next large blob after idx and
// before end not read ahead yet, if the large blobs read ahead leave it
// room. s.mu is held.
//
// A large blob is hashed as one stream, on one core, so a restore that
// reads large blobs one after the other would verify them no faster than
// one core hashes. Reading the next ones ahead, into the buffers of chunk
// readers, hashes their first chunks on another core while the service
// reads the current one. The blobs read ahead may hold half of the
// budget's bytes together, or one blob whatever it may hold, and their
// buffers come from the budget only if they are free: the current blob
// and one of the largest next fill the default budget (inOrderBytes
// each), and more would take memory from the blob being read. Several
// smaller ones share that half: one alone would be read whole, and
// hashed, long before the service reaches it, leaving a core idle (a
// long tail of blobs of a few megabytes restored from a directory kept
// the cores 87% busy so, 93% with the half shared: docs/benchmarks.md).
//
// Its downloads run under ctx without its end, since ctx may be that of
// one Fetch: until the service fetches the blob, only a Fetch past it or
// Close stops them; from then on, that Fetch's context too.
func (s *Source) scheduleLarge(ctx context.Context, idx, end int) {
	var held int64 // the most the blobs read ahead may hold
	ahead := 0
	for _, sl := range s.slots {
		if sl.cr != nil {
			held += s.mayHold(sl.cr.e)
			ahead++
		}
	}
	for i := max(s.large, idx+1); i < end; i++ {
		e := s.m.Blobs[i]
		if !s.chunked(e) {
			continue
		}
		if ahead > 0 && held+s.mayHold(e) > s.r.Budget().MaxBytes()/2 {
			return // no room: try again at the next Fetch
		}
		r := s.openChunked(context.WithoutCancel(ctx), e, true)
		if r == nil {
			return // no memory free now: try again at the next Fetch
		}
		done := make(chan struct{})
		close(done)
		s.slots[i] = &slot{done: done, cancel: func() { r.cancel(nil) }, cr: r}
		s.large = i + 1
		held += s.mayHold(e)
		ahead++
	}
}

// discard waits for sl's download to end and frees what it holds.
func (s *Source) discard(sl *slot) {
	if sl.cr != nil {
		sl.cr.Close()
		return
	}
	<-sl.done
	if sl.sp != nil {
		sl.sp.Close()
	}
}

func (s *Source) discardAsync(sl *slot) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.discard(sl)
	}()
}

// Close stops downloads ahead and frees what they hold. It waits for them
// to end.
func (s *Source) Close() error {
	s.mu.Lock()
	for i, sl := range s.slots {
		delete(s.slots, i)
		sl.cancel()
		s.discardAsync(sl)
	}
	s.next = len(s.m.Blobs)
	s.mu.Unlock()
	s.wg.Wait()
	s.chunks.close()
	s.memory.Close()
	return s.files.Close()
}

// load downloads and verifies entry idx, under ctx; the store tries
// again after transient failures.
func (s *Source) load(ctx context.Context, idx int) (*spool.Spool, error) {
	e := s.m.Blobs[idx]
	sp, err := s.spoolBlob(ctx, e)
	if _, mismatch := errors.AsType[*repo.MismatchError](err); err != nil && !mismatch {
		return nil, fmt.Errorf("sources: blob %q: %w", e.Key, err)
	}
	return sp, err
}

// spoolBlob downloads the blob of e into a spool and verifies it.
func (s *Source) spoolBlob(ctx context.Context, e manifest.Entry) (*spool.Spool, error) {
	rc, err := s.r.OpenBlob(ctx, e.Digest)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// Read at most one byte more than recorded, enough to tell a longer
	// blob. The reader holds a request slot until it is closed: filling
	// must not wait for memory, which a held spool may keep (NoWait).
	sp, err := spool.Fill(ctx, io.LimitReader(rc, e.Size+1), s.r.Budget(), spool.Options{
		MemoryThreshold: s.opts.MemoryThreshold,
		TempDir:         s.opts.TempDir,
		SizeHint:        e.Size,
		NoWait:          true,
		Files:           s.files,
		Memory:          s.memory,
	})
	if err != nil {
		return nil, err
	}
	if err := verify(e, sp); err != nil {
		sp.Close()
		return nil, err
	}
	return sp, nil
}

func verify(e manifest.Entry, sp *spool.Spool) error {
	if sp.Size() > e.Size {
		return longer(e)
	}
	if sp.Size() != e.Size {
		return shorter(e, sp.Size())
	}
	return checkDigest(e, digest.FromSum(sp.Sum()))
}

// longer reports a blob of e longer than recorded.
func longer(e manifest.Entry) error {
	return &repo.MismatchError{Key: e.Key, Expected: sizeText(e.Size), Actual: "more than " + sizeText(e.Size), Err: core.ErrSizeMismatch}
}

// shorter reports a blob of e that ended after n bytes.
func shorter(e manifest.Entry, n int64) error {
	return &repo.MismatchError{Key: e.Key, Expected: sizeText(e.Size), Actual: sizeText(n), Err: core.ErrSizeMismatch}
}

// checkDigest reports a blob of e whose digest is got, if it is not the
// recorded one.
func checkDigest(e manifest.Entry, got digest.Digest) error {
	if got != e.Digest {
		return &repo.MismatchError{Key: e.Key, Expected: string(e.Digest), Actual: string(got), Err: core.ErrChecksumMismatch}
	}
	return nil
}

func sizeText(n int64) string { return strconv.FormatInt(n, 10) + " bytes" }

// isContextErr reports whether err comes from a context that ended.
func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// spoolReader reads a spool and frees it on Close.
type spoolReader struct {
	io.Reader
	sp *spool.Spool
}

func (r *spoolReader) Close() error { return r.sp.Close() }
