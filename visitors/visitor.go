// Package visitors is the export engine: a [core.BlobVisitor] that writes
// the blobs a service hands it into a repository ([repo.Repo]) over any
// store driver.
//
// Each minibatch is uploaded concurrently under the store's shared
// [store.Budget]. Every blob is read once, hashed while it is spooled (in
// memory when small, to a temporary file when large), skipped when the
// repository already holds its digest, and uploaded otherwise with its
// digest attached so the driver can have the server verify it. The visitor
// records one manifest entry per blob.
//
// The same engine serves two other flows. With Options.DryRun it only
// hashes: it records the entries an export would, and reads or writes
// nothing in the repository. [Visitor.Copy] moves the blobs of a manifest
// from another repository: each blob the repository lacks is streamed
// from the source into a spool, checked against the size and digest the
// manifest records before it is uploaded, and uploaded as Visit does.
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
	// go to a temporary file. 0 means 4 MiB.
	MemoryThreshold int64
	// TempDir holds temporary spool files; "" means os.TempDir().
	TempDir string
	// OnBlob, if set, is called after each blob is stored or skipped, from
	// the uploading goroutine.
	OnBlob func(Event)
	// DryRun makes Visit hash each blob and record its entry without
	// listing, reading or writing anything in the repository: the
	// entries are those a real export records. No blob is spooled: each
	// is hashed as it streams, so a dry run takes no memory of the budget.
	DryRun bool
}

// Event reports one blob handled by a [Visitor].
type Event struct {
	Key      string
	Size     int64
	Uploaded bool // false: the repository already held the digest, or a dry run
}

// Stats counts what a [Visitor] did.
type Stats struct {
	Blobs         int   // entries recorded
	Bytes         int64 // their total size
	Uploaded      int   // blobs written to the store
	UploadedBytes int64
	Skipped       int // blobs the repository already held
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
	stats   Stats

	listOnce sync.Once
	listErr  error
	present  map[digest.Digest]int64 // size of blobs already stored
}

var _ core.BlobVisitor = (*Visitor)(nil)

// New returns a Visitor writing to r. opts may be nil; r may be nil with
// Options.DryRun, which touches no repository.
func New(r *repo.Repo, opts *Options) *Visitor {
	v := &Visitor{r: r, keys: map[string]struct{}{}, claimed: map[digest.Digest]struct{}{}}
	if opts != nil {
		v.opts = *opts
	}
	return v
}

// Entries returns the recorded entries sorted by key bytes.
func (v *Visitor) Entries() []manifest.Entry {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := append([]manifest.Entry(nil), v.entries...)
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Stats returns what the visitor did so far.
func (v *Visitor) Stats() Stats {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.stats
}

// Visit stores every blob of batch concurrently and closes every reader,
// also when it fails. It fails if a key repeats one seen before in this
// export, or if any blob cannot be read or stored; the error names the key.
func (v *Visitor) Visit(ctx context.Context, batch []core.BlobExportEntry) error {
	if !v.opts.DryRun {
		if err := v.loadPresent(ctx); err != nil {
			closeAll(batch)
			return err
		}
	}
	return v.each(ctx, len(batch), func(ctx context.Context, i int) (string, error) {
		e := batch[i]
		if e.Reader == nil {
			return e.Key, fmt.Errorf("nil reader: %w", core.ErrInvalid)
		}
		defer e.Reader.Close()
		if v.opts.DryRun {
			return e.Key, v.hash(ctx, e)
		}
		return e.Key, v.store(ctx, e)
	})
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
			key, err := do(gctx, i)
			if _, mismatch := errors.AsType[*repo.MismatchError](err); err != nil && !mismatch {
				return fmt.Errorf("visitors: blob %q: %w", key, err)
			}
			return err // a *repo.MismatchError names the key already
		})
	}
	return g.Wait()
}

func closeAll(batch []core.BlobExportEntry) {
	for _, e := range batch {
		if e.Reader != nil {
			e.Reader.Close()
		}
	}
}

// loadPresent lists the blobs the repository holds, once per export, so
// that each blob costs one upload or nothing rather than a lookup first.
// A repository whose bucket or directory is missing holds none: the first
// upload creates the directory, or fails naming the bucket.
func (v *Visitor) loadPresent(ctx context.Context) error {
	v.listOnce.Do(func() {
		present := map[digest.Digest]int64{}
		v.listErr = v.r.ListBlobs(ctx, func(d digest.Digest, size int64) error {
			present[d] = size
			return nil
		})
		if errors.Is(v.listErr, core.ErrBucketNotFound) {
			v.listErr = nil
		}
		v.present = present
	})
	if v.listErr != nil {
		return fmt.Errorf("visitors: list stored blobs: %w", v.listErr)
	}
	return nil
}

func (v *Visitor) store(ctx context.Context, e core.BlobExportEntry) error {
	sp, err := v.spool(ctx, e.Reader, e.Size)
	if err != nil {
		return err
	}
	defer sp.Close()
	if err := checkSize(e.Size, sp.Size()); err != nil {
		return err
	}
	d := digest.FromSum(sp.Sum())
	if err := v.record(e.Key, d, sp.Size()); err != nil {
		return err
	}
	upload := v.claim(d, sp.Size())
	if upload {
		if err := v.upload(ctx, d, sp); err != nil {
			return err
		}
	}
	v.done(e.Key, sp.Size(), upload)
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
	if err := v.record(e.Key, digest.FromSum(h.Sum(nil)), n); err != nil {
		return err
	}
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
	})
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return sp, nil
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

// record adds the entry of key, refusing a key seen before.
func (v *Visitor) record(key string, d digest.Digest, size int64) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, dup := v.keys[key]; dup {
		return fmt.Errorf("key exported twice: %w", core.ErrInvalid)
	}
	v.keys[key] = struct{}{}
	v.entries = append(v.entries, manifest.Entry{Key: key, Digest: d, Size: size})
	return nil
}

// claim reports whether the blob of digest d and size bytes is
// to be uploaded: neither stored with that size before this visitor
// began, nor claimed by one of its uploads already.
func (v *Visitor) claim(d digest.Digest, size int64) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	_, claimed := v.claimed[d]
	stored, present := v.present[d]
	upload := !claimed && !(present && stored == size)
	v.claimed[d] = struct{}{}
	if !upload {
		v.stats.Skipped++
	}
	return upload
}

// upload stores the blob held by sp, whose digest is d.
func (v *Visitor) upload(ctx context.Context, d digest.Digest, sp *spool.Spool) error {
	if err := v.r.PutBlob(ctx, d, sp.ReaderAt(), sp.Size()); err != nil {
		return err
	}
	v.mu.Lock()
	v.stats.Uploaded++
	v.stats.UploadedBytes += sp.Size()
	v.mu.Unlock()
	return nil
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
// move concurrently under the budget of the visitor's repository; each is
// streamed from from into a spool and checked against the size and
// digest its entry records before it is uploaded, so that a damaged
// source blob is never stored: it fails the copy with a
// [*repo.MismatchError] naming its key. The repository's blobs are listed
// once per Visitor, as for Visit, so one Visitor serves the copy of
// several snapshots. Copy records no entries (see [Visitor.Entries]): the
// manifest has them. A Visitor with Options.DryRun is refused.
func (v *Visitor) Copy(ctx context.Context, from *repo.Repo, entries []manifest.Entry) error {
	if v.opts.DryRun {
		return fmt.Errorf("visitors: copy: a dry-run visitor stores nothing: %w", core.ErrInvalid)
	}
	if err := v.loadPresent(ctx); err != nil {
		return err
	}
	return v.each(ctx, len(entries), func(ctx context.Context, i int) (string, error) {
		e := entries[i]
		return e.Key, v.copyBlob(ctx, from, e)
	})
}

// copyBlob stores the blob of e, read from from, unless the repository
// holds it or another goroutine of this visitor stores it.
func (v *Visitor) copyBlob(ctx context.Context, from *repo.Repo, e manifest.Entry) error {
	upload := v.claim(e.Digest, e.Size)
	if upload {
		// The source is opened on the first read, once the spool has its
		// memory: a request slot is never held while waiting for memory,
		// even when both repositories share one budget. One byte more than
		// recorded shows a longer blob.
		src := &lazyBlob{ctx: ctx, r: from, d: e.Digest}
		sp, err := v.spool(ctx, io.LimitReader(src, e.Size+1), e.Size)
		src.Close()
		if err != nil {
			return err
		}
		defer sp.Close()
		if err := checkEntry(e, sp); err != nil {
			return err
		}
		if err := v.upload(ctx, e.Digest, sp); err != nil {
			return err
		}
	}
	v.done(e.Key, e.Size, upload)
	return nil
}

// checkEntry reports bytes held by sp that are not those e records.
func checkEntry(e manifest.Entry, sp *spool.Spool) error {
	mismatch := func(expected, actual string, err error) error {
		return &repo.MismatchError{Key: e.Key, Expected: expected, Actual: actual, Err: err}
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
