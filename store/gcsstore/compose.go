package gcsstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"golang.org/x/sync/errgroup"
	"google.golang.org/api/iterator"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
)

// Parallel composite uploads: a large object goes up as parts, several at
// once, each an object of its own under tmpPrefix; one compose request
// then makes the object from them, and the parts are deleted. This is
// what gcloud storage does by default for objects of 150 MiB and more
// (docs.cloud.google.com/storage/docs/parallel-composite-uploads), and
// the GCS counterpart of S3's multipart upload: one stream no longer
// bounds a large object's upload, no chunk is buffered, and a server that
// works per chunk on all it holds of an object so far (the emulator
// hashes it again) does that work once per part, not once per chunk.

const (
	// DefaultCompositeThreshold is gcloud storage's: the size from which
	// an object goes up in parts, when the bucket allows (see
	// Options.CompositeThreshold).
	DefaultCompositeThreshold = 150 << 20
	// DefaultComponentSize is gcloud storage's size of the parts.
	DefaultComponentSize = 50 << 20
	// DefaultComponentConcurrency is the number of parts of one object
	// sent at once, as s3store's PartConcurrency.
	DefaultComponentConcurrency = 4
	// DefaultStaleAge is the age from which CleanStale takes a part for
	// the debris of an interrupted upload, when not told otherwise: one
	// upload's parts live while that upload runs.
	DefaultStaleAge = 24 * time.Hour

	// maxComponents is the most sources that one compose request takes.
	maxComponents = 32
	// maxParts is the most parts of one upload: maxComponents groups of
	// maxComponents, each group composed into an object of its own, then
	// those into the object, as gcloud storage composes in rounds. Past
	// maxParts parts of ComponentSize, the parts grow.
	maxParts = maxComponents * maxComponents
	// tmpPrefix holds the parts of the uploads in flight, under the
	// driver's prefix: no repository name starts with it.
	tmpPrefix = "tmp/compose-"
)

// composite reports whether an object of size bytes read from body goes
// up in parts (see Options.CompositeThreshold). A bucket whose default
// storage class is not STANDARD, or that has a retention policy, default
// event-based holds or versioning, keeps parts (or charges for them) after
// their deletion, and gets no composite uploads, as gcloud storage checks
// (it does not check versioning). So does a bucket whose settings the
// credentials cannot read. The answer is asked once per driver; a
// transient failure to get it is asked again at the next large upload.
func (d *Driver) composite(ctx context.Context, body io.ReaderAt, size int64) bool {
	if d.opts.CompositeThreshold < 0 || size < d.opts.CompositeThreshold || size <= d.opts.ComponentSize {
		return false
	}
	if ra, ok := body.(*store.ReaderAt); ok && !ra.Local() {
		return false // the body is read twice, and in parallel
	}
	d.composeMu.Lock()
	defer d.composeMu.Unlock()
	if d.composeKnown {
		return d.composeOK
	}
	attrs, err := d.bucket.Attrs(ctx)
	if err != nil {
		// The upload that follows says what is wrong with the bucket.
		if code := statusCode(err); code == http.StatusUnauthorized || code == http.StatusForbidden {
			d.composeKnown = true
		}
		return false
	}
	d.composeKnown = true
	d.composeOK = (attrs.StorageClass == "" || attrs.StorageClass == "STANDARD") &&
		attrs.RetentionPolicy == nil && !attrs.DefaultEventBasedHold && !attrs.VersioningEnabled
	return d.composeOK
}

// part is a section of a composite upload's body.
type part struct {
	off, size int64
	crc       uint32
	name      string // of its object, with the driver's prefix
	gen       int64  // of its object, once stored
}

// parts splits size bytes into parts of Options.ComponentSize, or into
// maxParts equal ones if that makes more, named after prefix.
func (d *Driver) parts(size int64, prefix string) []part {
	each := max(d.opts.ComponentSize, (size+maxParts-1)/maxParts)
	var ps []part
	for off := int64(0); off < size; off += each {
		ps = append(ps, part{off: off, size: min(each, size-off), name: prefix + strconv.Itoa(len(ps))})
	}
	return ps
}

// putComposite stores size bytes of body under name in a parallel
// composite upload, unconditionally. It reads the body once for its
// SHA-256, checked before anything is sent, and the CRC32C of each part
// and of the whole; then it sends the parts, each in one request that declares its CRC32C, at most
// Options.ComponentConcurrency at once, and sends a part that fails
// transiently again; then it composes them into the object, declaring the
// whole's CRC32C, with the parts' generations, so that the object is made
// of the very bytes sent; more than maxComponents parts are composed in
// groups first (see composeGroups). Whatever happens, it deletes the
// parts and the groups.
func (d *Driver) putComposite(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions) error {
	src := sizedReaderAt{body, size}
	var id [8]byte
	_, _ = rand.Read(id[:])
	prefix := d.prefix + tmpPrefix + hex.EncodeToString(id[:]) + "-"
	ps := d.parts(size, prefix)
	whole, err := hashParts(ctx, src, ps, store.SHA256ToCheck(body, opts.SHA256))
	if err != nil {
		return err
	}
	defer d.deleteParts(ctx, ps)

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(d.opts.ComponentConcurrency)
	for i := range ps {
		g.Go(func() error {
			if err := d.putPart(gctx, &ps[i], src); err != nil {
				return fmt.Errorf("part %d of %d (bytes %d to %d): %w", i+1, len(ps), ps[i].off, ps[i].off+ps[i].size, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		var be *bodyError
		switch {
		case errors.As(err, &be):
			return be
		case errors.Is(err, core.ErrChecksumMismatch):
			return fmt.Errorf("gcsstore: %w", err)
		}
		return d.putFailed(ctx, err, storage.Conditions{})
	}

	if len(ps) > maxComponents {
		groups, err := d.composeGroups(ctx, ps, prefix+"g")
		defer d.deleteParts(ctx, groups)
		if err != nil {
			return d.putFailed(ctx, err, storage.Conditions{})
		}
		ps = groups
	}
	c := d.bucket.Object(d.prefix + name).ComposerFrom(sources(d.bucket, ps)...)
	c.ContentType = contentType(opts)
	c.CRC32C, c.SendCRC32C = whole, true
	attrs, err := c.Run(ctx)
	if err != nil {
		return d.putFailed(ctx, err, storage.Conditions{})
	}
	return d.checkStored(ctx, name, attrs, whole)
}

// sources returns handles on the stored parts ps, each at its generation.
func sources(b *storage.BucketHandle, ps []part) []*storage.ObjectHandle {
	srcs := make([]*storage.ObjectHandle, len(ps))
	for i, p := range ps {
		srcs[i] = b.Object(p.name).Generation(p.gen)
	}
	return srcs
}

// composeGroups composes the stored parts ps, maxComponents at a time,
// into objects named prefix and the group's number, at most
// Options.ComponentConcurrency at once, and returns those it made, as
// parts: the sources of the object's compose. A group's compose is sent
// again after a transient failure (its sources are pinned by generation
// and its name is the upload's own, so the same compose twice makes the
// same object). The groups declare no CRC32C: the server computes each
// from its parts', which it checked as they came, and the object's
// compose declares the whole's.
func (d *Driver) composeGroups(ctx context.Context, ps []part, prefix string) ([]part, error) {
	groups := make([]part, (len(ps)+maxComponents-1)/maxComponents)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(d.opts.ComponentConcurrency)
	for i := range groups {
		in := ps[i*maxComponents : min((i+1)*maxComponents, len(ps))]
		groups[i] = part{off: in[0].off, name: prefix + strconv.Itoa(i)}
		g.Go(func() error {
			var attempts atomic.Int32
			b := d.uploadBucket(&attempts)
			c := b.Object(groups[i].name).ComposerFrom(sources(b, in)...)
			c.ContentType = "application/octet-stream"
			attrs, err := c.Run(gctx)
			if err != nil {
				return fmt.Errorf("compose group %d of %d (parts %d to %d): %w", i+1, len(groups), i*maxComponents+1, i*maxComponents+len(in), err)
			}
			groups[i].size, groups[i].crc, groups[i].gen = attrs.Size, attrs.CRC32C, attrs.Generation
			return nil
		})
	}
	return groups, g.Wait()
}

// hashParts reads body once, in order, and sets the CRC32C of each part;
// it returns the whole's. With want, it checks the SHA-256 too. It stops
// when ctx ends.
func hashParts(ctx context.Context, body io.ReaderAt, ps []part, want []byte) (uint32, error) {
	h := newBodyHashes(want)
	buf := getBuffer()
	defer putBuffer(buf)
	for i := range ps {
		w, crc := h.w, h.crc // one part: its CRC32C is the whole's
		if len(ps) > 1 {
			crc = crc32.New(castagnoli)
			w = io.MultiWriter(h.w, crc)
		}
		src := ctxReader{ctx, io.NewSectionReader(body, ps[i].off, ps[i].size)}
		if _, err := io.CopyBuffer(w, src, *buf); err != nil {
			return 0, err
		}
		ps[i].crc = crc.Sum32()
	}
	if err := h.check("nothing was sent"); err != nil {
		return 0, err
	}
	return h.crc.Sum32(), nil
}

// ctxReader is a reader that fails once ctx has ended.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, fmt.Errorf("gcsstore: %w", err)
	}
	return c.r.Read(p)
}

// putPart stores p's section of body as the object p.name, in one
// streamed request, sending it again after a transient failure (the
// client does not: it keeps no copy), at most Options.MaxAttempts times.
func (d *Driver) putPart(ctx context.Context, p *part, body io.ReaderAt) error {
	backoff := gax.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	for attempt := 1; ; attempt++ {
		attrs, err := d.send(ctx, d.bucket.Object(p.name), io.NewSectionReader(body, p.off, p.size), p.crc, "application/octet-stream")
		if err == nil && attrs.CRC32C != p.crc {
			// A server that does not check what it was told; no
			// retry mends it.
			return fmt.Errorf("the server stored CRC32C %08x, but the body's is %08x: %w", attrs.CRC32C, p.crc, core.ErrChecksumMismatch)
		}
		if err == nil {
			p.gen = attrs.Generation
			return nil
		}
		if errors.As(err, new(*bodyError)) || !storage.ShouldRetry(err) || attempt >= d.opts.MaxAttempts {
			return err
		}
		if err := gax.Sleep(ctx, backoff.Pause()); err != nil {
			return err
		}
	}
}

// deleteParts deletes the parts of a composite upload, even once ctx has
// ended. What it cannot delete, CleanStale will.
func (d *Driver) deleteParts(ctx context.Context, ps []part) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	var g errgroup.Group
	g.SetLimit(d.opts.ComponentConcurrency)
	for _, p := range ps {
		g.Go(func() error {
			// A generation's delete is one the client retries.
			obj := d.bucket.Object(p.name)
			if p.gen != 0 {
				obj = obj.Generation(p.gen)
			}
			_ = obj.Delete(ctx)
			return nil
		})
	}
	_ = g.Wait()
}

// CleanStale deletes the parts that composite uploads interrupted by a
// crash or a kill left behind (see [store.Cleaner]), and returns how many
// it deleted: those stored more than olderThan ago (DefaultStaleAge if
// olderThan ≤ 0). A part lives as long as its upload runs, and nothing
// tells whose it is: only its age does.
func (d *Driver) CleanStale(ctx context.Context, olderThan time.Duration) (int, error) {
	if olderThan <= 0 {
		olderThan = DefaultStaleAge
	}
	cutoff := time.Now().Add(-olderThan)
	q := &storage.Query{Prefix: d.prefix + tmpPrefix}
	if err := q.SetAttrSelection([]string{"Name", "Generation", "Updated"}); err != nil {
		return 0, fmt.Errorf("gcsstore: %w", err)
	}
	var mu sync.Mutex
	removed := 0
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(d.opts.MaxConcurrency)
	it := d.bucket.Objects(gctx, q)
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			_ = g.Wait()
			return removed, d.fail(ctx, err)
		}
		if !strings.HasPrefix(attrs.Name, d.prefix+tmpPrefix) || !attrs.Updated.Before(cutoff) {
			continue
		}
		g.Go(func() error {
			err := d.bucket.Object(attrs.Name).Generation(attrs.Generation).Delete(gctx)
			if errors.Is(err, storage.ErrObjectNotExist) {
				return nil // its upload, or another sweep, deleted it
			}
			if err != nil {
				return d.fail(gctx, err)
			}
			mu.Lock()
			removed++
			mu.Unlock()
			return nil
		})
	}
	err := g.Wait()
	return removed, err
}
