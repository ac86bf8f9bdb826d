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
package visitors

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/internal/spool"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
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
}

// Event reports one blob handled by a [Visitor].
type Event struct {
	Key      string
	Size     int64
	Uploaded bool // false: the repository already held the digest
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

// New returns a Visitor writing to r. opts may be nil.
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
	if err := v.loadPresent(ctx); err != nil {
		closeAll(batch)
		return err
	}
	// As many blobs are spooled and uploaded at once as the store's budget
	// lets requests run; each upload takes its request slot in the store.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(v.r.Budget().MaxRequests())
	for i := range batch {
		e := batch[i]
		g.Go(func() error {
			if e.Reader == nil {
				return blobErr(e.Key, fmt.Errorf("nil reader: %w", core.ErrInvalid))
			}
			defer e.Reader.Close()
			if err := v.store(gctx, e); err != nil {
				return blobErr(e.Key, err)
			}
			return nil
		})
	}
	return g.Wait()
}

func blobErr(key string, err error) error {
	return fmt.Errorf("visitors: blob %q: %w", key, err)
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
	sp, err := spool.Fill(ctx, e.Reader, v.r.Budget(), spool.Options{
		MemoryThreshold: v.opts.MemoryThreshold,
		TempDir:         v.opts.TempDir,
		SizeHint:        e.Size,
	})
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	defer sp.Close()
	if e.Size == 0 && sp.Size() > 0 {
		return fmt.Errorf("BlobExportEntry.Size is 0 (an empty blob), but the reader gave %d bytes; declare a size not known in advance as core.UnknownSize (-1): %w", sp.Size(), core.ErrSizeMismatch)
	}
	if e.Size >= 0 && sp.Size() != e.Size {
		return fmt.Errorf("service announced %d bytes, reader gave %d: %w", e.Size, sp.Size(), core.ErrSizeMismatch)
	}
	d := digest.FromSum(sp.Sum())

	v.mu.Lock()
	if _, dup := v.keys[e.Key]; dup {
		v.mu.Unlock()
		return fmt.Errorf("key exported twice: %w", core.ErrInvalid)
	}
	v.keys[e.Key] = struct{}{}
	v.entries = append(v.entries, manifest.Entry{Key: e.Key, Digest: d, Size: sp.Size()})
	v.stats.Blobs++
	v.stats.Bytes += sp.Size()
	_, claimed := v.claimed[d]
	size, present := v.present[d]
	upload := !claimed && !(present && size == sp.Size())
	v.claimed[d] = struct{}{}
	if !upload {
		v.stats.Skipped++
	}
	v.mu.Unlock()

	if upload {
		if err := v.r.PutBlob(ctx, d, sp.ReaderAt(), sp.Size()); err != nil {
			return err
		}
		v.mu.Lock()
		v.stats.Uploaded++
		v.stats.UploadedBytes += sp.Size()
		v.mu.Unlock()
	}
	if v.opts.OnBlob != nil {
		v.opts.OnBlob(Event{Key: e.Key, Size: sp.Size(), Uploaded: upload})
	}
	return nil
}
