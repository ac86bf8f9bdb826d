// Package visitors is the export engine: a [core.BlobVisitor] that writes
// the blobs a service hands it into a repository ([repo.Repo]) over any
// store driver.
//
// Blobs are uploaded concurrently under the store's shared
// [store.Budget], by goroutines that outlive a minibatch: Visit returns
// once it has read its batch, and the uploads of one batch overlap the
// reading of the next, as in a bare loop over every blob; [Visitor.Wait]
// waits for the last ones. Every blob is read once, hashed while it is
// spooled (in memory when small, to a temporary file when large, in place
// when its reader gives random access and it is larger than 256 KiB), and
// stored with its digest attached so the driver can have the server
// verify it, unless the repository holds it already. A blob whose digest
// the service declares, read in place, is not hashed by the visitor at
// all: its name is known before it is read, so its upload is its one
// read, and the store verifies the declared digest as it writes. The
// visitor records one manifest entry per blob.
//
// Deduplication costs what the state costs, never what the repository
// holds: nothing is listed. A blob of a parent snapshot (see
// [Visitor.AddStored]) costs no request. Any other blob of at most
// Options.CreateOnlyMax bytes is written create-only, one request whether
// or not it is stored already (a refused write means it is); a larger one
// is looked up first, and uploaded only if missing or of another size.
//
// The same engine serves two other flows. With Options.DryRun it only
// hashes: it records the entries an export would, and reads or writes
// nothing in the repository. [Visitor.Copy] moves the blobs of a manifest
// from another repository: each blob the repository lacks is uploaded as
// Visit does, with the size and digest the manifest records, which the
// store checks; a small one is spooled in memory first, and a larger one
// streams from the source as the upload reads it.
package visitors

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/internal/spool"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/store"
)

// Options configure a [Visitor]. The zero value is ready to use.
type Options struct {
	// MemoryThreshold is the largest blob spooled in memory; larger ones
	// go to a temporary file, or, in a Copy, stream from the source
	// without a spool. 0 means 4 MiB.
	MemoryThreshold int64
	// TempDir holds temporary spool files; "" means os.TempDir().
	TempDir string
	// OnBlob, if set, is called after each blob is stored or skipped, from
	// the uploading goroutine.
	OnBlob func(Event)
	// CreateOnlyMax is the largest blob that, unless a parent snapshot
	// shows it stored (see [Visitor.AddStored]), is written create-only
	// straight away: a new blob costs one request, and a stored one
	// refuses the write, which then costs one more to check its size.
	// Larger blobs are looked up (Stat) before their upload, which a
	// stored one then skips. 0 means DefaultCreateOnlyMax; a negative
	// value looks every blob up first.
	CreateOnlyMax int64
	// DryRun makes Visit hash each blob and record its entry without
	// listing, reading or writing anything in the repository: the
	// entries are those a real export records. No blob is spooled: each
	// is hashed as it streams, so a dry run takes no memory of the budget.
	DryRun bool
}

// DefaultCreateOnlyMax is the default of Options.CreateOnlyMax: up to
// this size, sending a blob the repository may hold already costs about
// what asking for it does, on the servers measured (see docs/design.md,
// "Deduplication").
const DefaultCreateOnlyMax = 1 << 20

// Event reports one blob handled by a [Visitor].
type Event struct {
	Key      string
	Size     int64
	Uploaded bool // false: the repository already held the digest, or a dry run
}

// Stats counts what a [Visitor] did. Every blob handled is either
// Uploaded or Skipped.
type Stats struct {
	Blobs         int   // entries recorded
	Bytes         int64 // their total size
	Uploaded      int   // blobs written to the store
	UploadedBytes int64
	// Skipped are the blobs not written: those a parent snapshot holds
	// (see [Visitor.AddStored]), those found stored (a refused
	// create-only write, or a lookup), and those sharing a digest with a
	// blob this visitor handled before.
	Skipped int
}

// Visitor writes blobs into a repository and records a manifest entry for
// each. Create one per export with [New]; it is safe for concurrent use,
// but a service calls Visit one batch at a time.
type Visitor struct {
	r    *repo.Repo
	opts Options

	mu      sync.Mutex
	entries []manifest.Entry
	keys    map[string]struct{}
	claimed map[digest.Digest]struct{} // digests this visitor stores or found stored
	stored  map[digest.Digest]int64    // size of the blobs of parent snapshots
	stats   Stats

	memory *spool.Memory // the memory of spools, reused; freed by Wait and at the end of Copy

	pipe pipeline // the uploads of Visit
}

var _ core.BlobVisitor = (*Visitor)(nil)

// New returns a Visitor writing to r. opts may be nil; r may be nil with
// Options.DryRun, which touches no repository.
func New(r *repo.Repo, opts *Options) *Visitor {
	v := &Visitor{r: r, keys: map[string]struct{}{}, claimed: map[digest.Digest]struct{}{}, stored: map[digest.Digest]int64{}, memory: spool.NewMemory()}
	if opts != nil {
		v.opts = *opts
	}
	return v
}

// AddStored tells the visitor that the repository holds the blobs of
// entries, the blob entries of a committed snapshot's manifest (a parent):
// a blob of the same digest and size is then neither looked up nor
// uploaded. The caller reads that manifest while holding a lock of the
// repository that keeps garbage collections off until the export
// commits, so that those blobs stay stored (see docs/design.md,
// "Deduplication"). Call it before Visit or Copy.
func (v *Visitor) AddStored(entries []manifest.Entry) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, e := range entries {
		v.stored[e.Digest] = e.Size
	}
}

// Entries returns the recorded entries sorted by key bytes, once the
// uploads of Visit have ended (see [Visitor.Wait], which says whether
// they all succeeded).
func (v *Visitor) Entries() []manifest.Entry {
	v.pipe.drain()
	v.mu.Lock()
	defer v.mu.Unlock()
	out := append([]manifest.Entry(nil), v.entries...)
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Stats returns what the visitor did, once the uploads of every Visit so
// far have ended (as [Visitor.Wait] waits for them): called after the last
// Visit, all it did. For progress while an export runs, use
// Options.OnBlob.
func (v *Visitor) Stats() Stats {
	v.pipe.drain()
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.stats
}

// Visit hands every blob of batch to the visitor's uploads and returns
// once it has closed every reader, also when it fails: a blob is then
// held in memory or in a temporary file, or stored already, so that the
// uploads of one batch overlap the reading of the next, and no request
// slot idles waiting for a batch's slowest upload. (A blob of more than
// 256 KiB read in place, from a reader that gives random access, is
// stored before Visit returns.) Call [Visitor.Wait] after the last Visit
// to learn whether every blob was stored.
//
// Visit fails if a key repeats one seen before in this export, if ctx is
// done, or if any blob handed over so far, in this batch or an earlier
// one, could not be read or stored; the error names the key. The uploads
// of a batch run under the ctx of its Visit: keep it alive until Wait
// returns. With Options.DryRun, Visit hashes the batch and returns when
// it is done.
func (v *Visitor) Visit(ctx context.Context, batch []core.BlobExportEntry) error {
	if v.opts.DryRun {
		return v.each(ctx, len(batch), func(ctx context.Context, i int) (string, error) {
			e := batch[i]
			if e.Reader == nil {
				return e.Key, errNilReader
			}
			defer e.Reader.Close()
			if err := v.addKey(e.Key); err != nil {
				return e.Key, err
			}
			return e.Key, v.hash(ctx, e)
		})
	}
	var read sync.WaitGroup
	read.Add(len(batch))
	v.dispatch(ctx, batch, read.Done)
	read.Wait()
	return v.pipe.failure()
}

// dispatch hands the blobs of batch to the pipeline, each with a release
// that closes its reader and then calls done. A blob that cannot be
// handed over (a failure came first, its key is a repeat, ctx is done)
// is released at once.
func (v *Visitor) dispatch(ctx context.Context, batch []core.BlobExportEntry, done func()) {
	p := &v.pipe
	p.dispatching.RLock()
	defer p.dispatching.RUnlock()
	var tasks chan<- task
	if p.failure() == nil {
		tasks = p.start(v.workers(), v)
	}
	for _, e := range batch {
		release := sync.OnceFunc(func() {
			if e.Reader != nil {
				e.Reader.Close()
			}
			done()
		})
		if p.failure() != nil {
			release()
			continue
		}
		if err := v.addKey(e.Key); err != nil {
			p.fail(e.Key, err)
			release()
			continue
		}
		select {
		case tasks <- task{ctx: ctx, e: e, release: release}:
		case <-ctx.Done():
			p.fail(e.Key, ctx.Err())
			release()
		}
	}
}

// Wait waits for the uploads of every Visit so far to end, and returns
// the first failure of any blob (the one a Visit returned, or one that
// came after the last Visit), or nil if every blob was stored or found
// stored. Call it after the last Visit; a failure stays: every later
// call returns it. Until Wait or Entries, a visitor that Visit started
// keeps goroutines waiting for the next batch.
func (v *Visitor) Wait() error {
	v.pipe.drain()
	v.memory.Close() // no spool is left: its memory is freed
	return v.pipe.failure()
}

var errNilReader = fmt.Errorf("nil reader: %w", core.ErrInvalid)

// workers returns the number of blobs the uploads of Visit handle at
// once: twice the store's request slots, so that the next blobs are read
// while the slots are busy.
func (v *Visitor) workers() int {
	return 2 * v.r.Budget().MaxRequests()
}

// work stores the blobs of tasks until the channel is closed: one of the
// goroutines of the pipeline, each of which keeps its stack, grown once
// to the depth of a driver's request, across blobs and batches.
func (v *Visitor) work(tasks <-chan task, workers *sync.WaitGroup) {
	defer workers.Done()
	for t := range tasks {
		err := v.pipe.failure()
		if err == nil {
			err = v.storeTask(t)
		}
		if err != nil {
			v.pipe.fail(t.e.Key, err) // before the release, for the Visit to see
		}
		t.release()
	}
}

// storeTask stores the blob of t under t's context, which the
// pipeline's first failure cancels too.
func (v *Visitor) storeTask(t task) error {
	ctx, cancel := context.WithCancelCause(t.ctx)
	defer cancel(nil)
	stop := context.AfterFunc(v.pipe.ctx, func() { cancel(context.Cause(v.pipe.ctx)) })
	defer stop()
	return v.store(ctx, t.e, t.release)
}

// task is one blob handed to the pipeline by Visit. release closes its
// reader, once, which lets Visit return: the pipeline calls it as soon
// as it no longer reads the reader.
type task struct {
	ctx     context.Context
	e       core.BlobExportEntry
	release func()
}

// pipeline is the goroutines that store the blobs of Visit across
// minibatches, and the first failure among them. Its zero value has no
// goroutines; start starts them, drain stops them.
type pipeline struct {
	// dispatching is held, shared, while Visit hands blobs over, and
	// exclusively by drain, which closes the channel they go through.
	dispatching sync.RWMutex

	mu      sync.Mutex
	tasks   chan task       // nil when no goroutine runs
	workers *sync.WaitGroup // those reading tasks
	ctx     context.Context // cancelled by the first failure
	cancel  context.CancelCauseFunc
	err     error
}

// start starts n goroutines of v unless they run, and returns the
// channel that feeds them. They run until drain.
func (p *pipeline) start(n int, v *Visitor) chan<- task {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tasks == nil {
		if p.ctx == nil {
			p.ctx, p.cancel = context.WithCancelCause(context.Background())
		}
		p.tasks, p.workers = make(chan task), &sync.WaitGroup{}
		p.workers.Add(n)
		for range n {
			go v.work(p.tasks, p.workers)
		}
	}
	return p.tasks
}

// drain stops the goroutines once they have handled every task handed
// over, and waits for them.
func (p *pipeline) drain() {
	p.dispatching.Lock()
	p.mu.Lock()
	tasks, workers := p.tasks, p.workers
	p.tasks, p.workers = nil, nil
	p.mu.Unlock()
	p.dispatching.Unlock()
	if tasks != nil {
		close(tasks)
		workers.Wait()
	}
}

// fail records the failure err of the blob key, if it is the first, and
// cancels the blobs in flight.
func (p *pipeline) fail(key string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = blobError(key, err)
		p.cancel(p.err)
	}
}

// failure returns the first failure, or nil.
func (p *pipeline) failure() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// blobError returns err, the failure of the blob key, naming the key.
func blobError(key string, err error) error {
	if _, mismatch := errors.AsType[*repo.MismatchError](err); mismatch {
		return err // it names the key already
	}
	return fmt.Errorf("visitors: blob %q: %w", key, err)
}

// each runs do for 0 to n-1 concurrently, as many at once as the store's
// budget lets requests run (each upload takes its request slot in the
// store), and returns the first failure, naming the key do was handling.
func (v *Visitor) each(ctx context.Context, n int, do func(ctx context.Context, i int) (key string, err error)) error {
	limit := store.DefaultConcurrency // a dry run's, without a repository
	if v.r != nil {
		limit = v.r.Budget().MaxRequests()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	for i := range n {
		g.Go(func() error {
			if key, err := do(gctx, i); err != nil {
				return blobError(key, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// copyMax is the largest blob that Visit copies from a reader giving
// random access rather than read it in place: copied, it lets Visit
// return before its upload ends.
const copyMax = 256 << 10

// store stores the blob of e, calling release as soon as it no longer
// reads e.Reader.
func (v *Visitor) store(ctx context.Context, e core.BlobExportEntry, release func()) error {
	if e.Reader == nil {
		return errNilReader
	}
	want, declared, err := declaredDigest(e)
	if err != nil {
		return err
	}
	mine := false
	if declared {
		// A blob a parent holds, or another key of this export stores,
		// is not read at all.
		if mine = v.claim(want, e.Size); !mine {
			v.record(e.Key, want, e.Size)
			v.done(e.Key, e.Size, false)
			return nil
		}
		if body, ok := spool.RandomAccess(e.Reader, e.Size); ok && e.Size > copyMax {
			return v.storeDeclared(ctx, e.Key, want, body, e.Size)
		}
	}
	var r io.Reader = e.Reader
	if e.Size <= copyMax {
		r = struct{ io.Reader }{r} // no random access: copied
	}
	sp, err := v.spool(ctx, r, e.Size)
	if err != nil {
		return err
	}
	defer sp.Close()
	if err := checkSize(e.Size, sp.Size()); err != nil {
		return err
	}
	d := digest.FromSum(sp.Sum())
	if err := checkDeclared(want, declared, d); err != nil {
		return err
	}
	if !sp.InPlace() {
		release() // read and checked: the Visit of e learns no more
	}
	v.record(e.Key, d, sp.Size())
	uploaded := false
	if mine || !declared && v.claim(d, sp.Size()) {
		missing, err := v.lookup(ctx, d, sp.Size())
		if err != nil {
			return err
		}
		if missing {
			if uploaded, err = v.write(ctx, d, sp.ReaderAt(), sp.Size()); err != nil {
				return err
			}
		}
	}
	v.done(e.Key, sp.Size(), uploaded)
	return nil
}

// storeDeclared stores the blob of key, whose digest d the service
// declared, a blob this visitor claimed (see [Visitor.claim]), from body,
// which gives random access to its size bytes: in one pass, the upload's.
// The name being known before any byte is read, the visitor does not hash
// the body: the store verifies d as it writes (every driver does, see
// store.PutOptions.SHA256), and bytes that do not match fail the export,
// storing nothing. A blob found stored already is not read, as one a
// parent holds is not.
func (v *Visitor) storeDeclared(ctx context.Context, key string, d digest.Digest, body io.ReaderAt, size int64) error {
	if err := checkLength(body, size); err != nil {
		return err
	}
	v.record(key, d, size)
	missing, err := v.lookup(ctx, d, size)
	if err != nil {
		return err
	}
	uploaded := false
	if missing {
		uploaded, err = v.write(ctx, d, body, size)
		if errors.Is(err, core.ErrChecksumMismatch) {
			return fmt.Errorf("the service declared SHA-256 %s, but the store found the blob's bytes do not hash to it: %w", d.Hex(), err)
		}
		if err != nil {
			return err
		}
	}
	v.done(key, size, uploaded)
	return nil
}

// checkLength reports a body, read in place, that does not hold the size
// bytes the service announced: it reads the last byte and the one after.
func checkLength(body io.ReaderAt, size int64) error {
	var b [1]byte
	if size > 0 {
		if n, _ := body.ReadAt(b[:], size-1); n == 0 {
			return fmt.Errorf("service announced %d bytes, reader gave fewer: %w", size, core.ErrSizeMismatch)
		}
	}
	if n, _ := body.ReadAt(b[:], size); n > 0 {
		return fmt.Errorf("service announced %d bytes, reader gave more: %w", size, core.ErrSizeMismatch)
	}
	return nil
}

// hash records the entry of e, hashing its bytes as they stream: a dry
// run.
func (v *Visitor) hash(ctx context.Context, e core.BlobExportEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(h, e.Reader)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if err := checkSize(e.Size, n); err != nil {
		return err
	}
	want, declared, err := declaredDigest(e)
	if err != nil {
		return err
	}
	if err := checkDeclared(want, declared, digest.FromSum(h.Sum(nil))); err != nil {
		return err
	}
	v.record(e.Key, digest.FromSum(h.Sum(nil)), n)
	v.done(e.Key, n, false)
	return nil
}

// spool reads r, of size bytes or -1 when unknown, into a spool, hashing
// it.
func (v *Visitor) spool(ctx context.Context, r io.Reader, size int64) (*spool.Spool, error) {
	sp, err := spool.Fill(ctx, r, v.r.Budget(), spool.Options{
		MemoryThreshold: v.opts.MemoryThreshold,
		TempDir:         v.opts.TempDir,
		SizeHint:        size,
		Memory:          v.memory,
	})
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return sp, nil
}

// declaredDigest returns the digest e declares (see
// core.BlobExportEntry.SHA256), and whether it declares one; a declared
// digest of another length, or without a size, is bad usage.
func declaredDigest(e core.BlobExportEntry) (digest.Digest, bool, error) {
	switch {
	case e.SHA256 == nil:
		return "", false, nil
	case len(e.SHA256) != sha256.Size:
		return "", false, fmt.Errorf("BlobExportEntry.SHA256 holds %d bytes, want %d: %w", len(e.SHA256), sha256.Size, core.ErrInvalid)
	case e.Size < 0:
		return "", false, fmt.Errorf("BlobExportEntry.SHA256 is set but the size is unknown; declare both or neither: %w", core.ErrInvalid)
	}
	return digest.FromSum(e.SHA256), true, nil
}

// checkDeclared reports bytes whose digest, got, is not the one the
// service declared.
func checkDeclared(want digest.Digest, declared bool, got digest.Digest) error {
	if declared && got != want {
		return fmt.Errorf("the service declared SHA-256 %s, but the blob's bytes hash to %s: %w", want.Hex(), got.Hex(), core.ErrChecksumMismatch)
	}
	return nil
}

// checkSize reports a blob whose reader gave got bytes when the service
// announced another size.
func checkSize(announced, got int64) error {
	if announced == 0 && got > 0 {
		return fmt.Errorf("BlobExportEntry.Size is 0 (an empty blob), but the reader gave %d bytes; declare a size not known in advance as core.UnknownSize (-1): %w", got, core.ErrSizeMismatch)
	}
	if announced >= 0 && got != announced {
		return fmt.Errorf("service announced %d bytes, reader gave %d: %w", announced, got, core.ErrSizeMismatch)
	}
	return nil
}

// addKey adds key to the keys of this export, refusing one seen before.
func (v *Visitor) addKey(key string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, dup := v.keys[key]; dup {
		return fmt.Errorf("key exported twice: %w", core.ErrInvalid)
	}
	v.keys[key] = struct{}{}
	return nil
}

// record adds the entry of key.
func (v *Visitor) record(key string, d digest.Digest, size int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.entries = append(v.entries, manifest.Entry{Key: key, Digest: d, Size: size})
}

// claim reports whether this visitor is to store the blob of digest d and
// size bytes: neither held by a parent snapshot with that size (see
// [Visitor.AddStored]), nor claimed by another of its blobs already. A
// blob it is not to store is counted as skipped.
func (v *Visitor) claim(d digest.Digest, size int64) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	_, claimed := v.claimed[d]
	stored, known := v.stored[d]
	mine := !claimed && !(known && stored == size)
	v.claimed[d] = struct{}{}
	if !mine {
		v.stats.Skipped++
	}
	return mine
}

// createOnlyMax returns the largest blob written create-only without a
// lookup first.
func (v *Visitor) createOnlyMax() int64 {
	if v.opts.CreateOnlyMax == 0 {
		return DefaultCreateOnlyMax
	}
	return v.opts.CreateOnlyMax
}

// lookup reports whether the blob d of size bytes, a claimed one, is to
// be written. A blob larger than Options.CreateOnlyMax is looked up
// first, and one stored with that size is counted as skipped: not
// written. Smaller ones are written without a lookup, create-only (see
// [Visitor.write]).
func (v *Visitor) lookup(ctx context.Context, d digest.Digest, size int64) (bool, error) {
	if size <= v.createOnlyMax() {
		return true, nil
	}
	held, err := v.holds(ctx, d, size)
	if err != nil || !held {
		return !held, err
	}
	v.skipped()
	return false, nil
}

// holds reports whether the repository holds the blob d with size bytes.
// A repository whose bucket or directory is missing holds none: the
// first upload creates the directory, or fails naming the bucket.
func (v *Visitor) holds(ctx context.Context, d digest.Digest, size int64) (bool, error) {
	stored, err := v.r.StatBlob(ctx, d)
	switch {
	case err == nil:
		return stored == size, nil
	case errors.Is(err, core.ErrNotFound), errors.Is(err, core.ErrBucketNotFound):
		return false, nil
	}
	return false, fmt.Errorf("look up the stored blob: %w", err)
}

// write stores the blob of size bytes read from body, whose digest is d,
// and reports whether it uploaded it. A blob of at most
// Options.CreateOnlyMax bytes is written create-only: a refusal
// (core.ErrExists) means a blob named d is stored, by an earlier export,
// a concurrent one, or an earlier attempt of this write whose answer was
// lost; it is counted as skipped if it has size bytes, and replaced
// otherwise, as a larger blob
// found stored with another size is (see [Visitor.lookup]).
func (v *Visitor) write(ctx context.Context, d digest.Digest, body io.ReaderAt, size int64) (bool, error) {
	if size <= v.createOnlyMax() {
		err := v.r.CreateBlob(ctx, d, body, size)
		if err == nil {
			v.uploaded(size)
			return true, nil
		}
		if !errors.Is(err, core.ErrExists) {
			return false, err
		}
		// Stored already, unless a concurrent create-only write still
		// runs (S3 answers that with a conflict too) or the blob stored
		// is damaged: then it is written again.
		held, err := v.holds(ctx, d, size)
		if err != nil {
			return false, err
		}
		if held {
			v.skipped()
			return false, nil
		}
	}
	if err := v.r.PutBlob(ctx, d, body, size); err != nil {
		return false, err
	}
	v.uploaded(size)
	return true, nil
}

// uploaded counts a blob of size bytes written to the store.
func (v *Visitor) uploaded(size int64) {
	v.mu.Lock()
	v.stats.Uploaded++
	v.stats.UploadedBytes += size
	v.mu.Unlock()
}

// skipped counts a blob found stored, not written.
func (v *Visitor) skipped() {
	v.mu.Lock()
	v.stats.Skipped++
	v.mu.Unlock()
}

// done counts a blob handled, and reports it.
func (v *Visitor) done(key string, size int64, uploaded bool) {
	v.mu.Lock()
	v.stats.Blobs++
	v.stats.Bytes += size
	v.mu.Unlock()
	if v.opts.OnBlob != nil {
		v.opts.OnBlob(Event{Key: key, Size: size, Uploaded: uploaded})
	}
}

// Copy stores the blobs of entries, the blob entries of a manifest, that
// the repository lacks, reading each from from: at most one download and
// one upload per distinct digest, none for a blob stored already. Blobs
// move concurrently under the budget of the visitor's repository. A blob
// of at most Options.MemoryThreshold bytes is spooled in memory and
// checked against the size and digest its entry records before it is
// uploaded; a larger one is uploaded straight from from, the upload
// reading the source as it goes (see repo.Repo.BlobReaderAt), with the
// digest its entry records, which the store verifies as it writes and
// which fails the upload, storing nothing, if the bytes differ. Either
// way a damaged source blob is never stored: it fails the copy with a
// [*repo.MismatchError] naming its key. The reads of a streamed blob take
// no request slot, so two repositories sharing one budget never wait
// for each other. Blobs are deduplicated as Visit
// does them: those of parent snapshots (see [Visitor.AddStored]) and
// those this visitor handled before cost nothing, so one Visitor serves
// the copy of several snapshots; a larger blob is looked up before it is
// downloaded, and a smaller one is downloaded and written create-only.
// Copy records no entries (see [Visitor.Entries]): the manifest has them.
// A Visitor with Options.DryRun is refused.
func (v *Visitor) Copy(ctx context.Context, from *repo.Repo, entries []manifest.Entry) error {
	if v.opts.DryRun {
		return fmt.Errorf("visitors: copy: a dry-run visitor stores nothing: %w", core.ErrInvalid)
	}
	defer v.memory.Close() // no spool is left: its memory is freed
	return v.each(ctx, len(entries), func(ctx context.Context, i int) (string, error) {
		e := entries[i]
		return e.Key, v.copyBlob(ctx, from, e)
	})
}

// copyBlob stores the blob of e, read from from, unless the repository
// holds it or another goroutine of this visitor stores it.
func (v *Visitor) copyBlob(ctx context.Context, from *repo.Repo, e manifest.Entry) error {
	uploaded := false
	if v.claim(e.Digest, e.Size) {
		missing, err := v.lookup(ctx, e.Digest, e.Size)
		if err != nil {
			return err
		}
		if missing {
			if uploaded, err = v.transfer(ctx, from, e); err != nil {
				return err
			}
		}
	}
	v.done(e.Key, e.Size, uploaded)
	return nil
}

// transfer writes the blob of e, read from from, reporting whether it
// uploaded it: a blob larger than the spool's memory threshold streams
// (see [Visitor.stream]), and a smaller one is spooled (see
// [Visitor.spoolCopy]).
func (v *Visitor) transfer(ctx context.Context, from *repo.Repo, e manifest.Entry) (bool, error) {
	if e.Size > v.memoryThreshold() {
		return v.stream(ctx, from, e)
	}
	return v.spoolCopy(ctx, from, e)
}

// memoryThreshold returns the largest blob spooled in memory.
func (v *Visitor) memoryThreshold() int64 {
	if v.opts.MemoryThreshold <= 0 {
		return spool.DefaultMemoryThreshold
	}
	return v.opts.MemoryThreshold
}

// stream writes the blob of e with a body that reads it from from as the
// destination's driver reads the body: no spool, and one hash, the one
// the driver checks the digest e records with. A source blob of another
// size or content fails the write, storing nothing, and is reported as a
// [*repo.MismatchError].
func (v *Visitor) stream(ctx context.Context, from *repo.Repo, e manifest.Entry) (bool, error) {
	src, err := from.BlobReaderAt(ctx, e.Digest, e.Size)
	if err != nil {
		return false, err
	}
	defer src.Close()
	uploaded, err := v.write(ctx, e.Digest, src, e.Size)
	if err == nil && uploaded {
		err = src.CheckEnd(ctx) // a Put may not read up to the end
	}
	if err != nil {
		return false, streamMismatch(e, src.SizeSeen(), err)
	}
	return uploaded, nil
}

// streamMismatch returns err, the failure of a streamed copy of the blob
// of e, as a [*repo.MismatchError] if it shows a source blob that is not
// the one e records: reads that found it of size seen (see
// store.ReaderAt.SizeSeen), or a destination that refused its digest.
func streamMismatch(e manifest.Entry, seen int64, err error) error {
	mismatch := func(expected, actual string, err error) error {
		return mismatchOf(e, expected, actual, err)
	}
	switch {
	case seen > e.Size:
		return mismatch(fmt.Sprintf("%d bytes", e.Size), fmt.Sprintf("more than %d bytes", e.Size), core.ErrSizeMismatch)
	case seen >= 0 && seen < e.Size:
		return mismatch(fmt.Sprintf("%d bytes", e.Size), fmt.Sprintf("%d bytes", seen), core.ErrSizeMismatch)
	case errors.Is(err, core.ErrChecksumMismatch):
		return mismatch(string(e.Digest), "other content", core.ErrChecksumMismatch)
	}
	return err
}

// spoolCopy reads the blob of e from from into a spool, checks it
// against e, and writes it (see [Visitor.write]), reporting whether it
// uploaded it: one download and one upload, each a single request.
func (v *Visitor) spoolCopy(ctx context.Context, from *repo.Repo, e manifest.Entry) (bool, error) {
	// The source is opened on the first read, once the spool has its
	// memory: a request slot is never held while waiting for memory, even
	// when both repositories share one budget. One byte more than
	// recorded shows a longer blob.
	src := &lazyBlob{ctx: ctx, r: from, d: e.Digest}
	sp, err := v.spool(ctx, io.LimitReader(src, e.Size+1), e.Size)
	src.Close()
	if err != nil {
		return false, err
	}
	defer sp.Close()
	if err := checkEntry(e, sp); err != nil {
		return false, err
	}
	return v.write(ctx, e.Digest, sp.ReaderAt(), sp.Size())
}

// checkEntry reports bytes held by sp that are not those e records.
func checkEntry(e manifest.Entry, sp *spool.Spool) error {
	mismatch := func(expected, actual string, err error) error {
		return mismatchOf(e, expected, actual, err)
	}
	switch {
	case sp.Size() > e.Size:
		return mismatch(fmt.Sprintf("%d bytes", e.Size), fmt.Sprintf("more than %d bytes", e.Size), core.ErrSizeMismatch)
	case sp.Size() < e.Size:
		return mismatch(fmt.Sprintf("%d bytes", e.Size), fmt.Sprintf("%d bytes", sp.Size()), core.ErrSizeMismatch)
	}
	if d := digest.FromSum(sp.Sum()); d != e.Digest {
		return mismatch(string(e.Digest), string(d), core.ErrChecksumMismatch)
	}
	return nil
}

// lazyBlob reads the blob d of r, opening it on the first Read.
type lazyBlob struct {
	ctx context.Context
	r   *repo.Repo
	d   digest.Digest
	rc  io.ReadCloser
}

func (b *lazyBlob) Read(p []byte) (int, error) {
	if b.rc == nil {
		rc, err := b.r.OpenBlob(b.ctx, b.d)
		if err != nil {
			return 0, err
		}
		b.rc = rc
	}
	return b.rc.Read(p)
}

// Close closes the blob, if it was opened.
func (b *lazyBlob) Close() error {
	if b.rc == nil {
		return nil
	}
	return b.rc.Close()
}

// mismatchOf reports the blob of e found to be actual, not expected.
func mismatchOf(e manifest.Entry, expected, actual string, err error) error {
	return &repo.MismatchError{Key: e.Key, Expected: expected, Actual: actual, Err: err}
}
