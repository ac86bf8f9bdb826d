package gocloudstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
	"sync/atomic"

	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
)

// Defaults of [Options].
const (
	// DefaultMaxConcurrency is the number of requests the engine keeps in
	// flight to one driver.
	DefaultMaxConcurrency = store.DefaultConcurrency
	// DefaultPartSize is the size of the parts (S3), chunks (GCS) or blocks
	// (Azure) of a large upload. On S3, the transfer manager holds
	// PartSize × (PartConcurrency+1) bytes, plus the first 16 MiB, in
	// memory for each large upload.
	DefaultPartSize = 8 << 20
	// DefaultPartConcurrency is the number of parts of one upload in flight.
	DefaultPartConcurrency = 4
	// checksumLimit is the largest object whose MD5 the driver computes in
	// a pass of its own, so that a server that checks it (GCS) does.
	checksumLimit = 8 << 20
)

// Options configure a [Driver]. The zero value, like a nil *Options,
// means the defaults.
type Options struct {
	// MaxConcurrency is the number of requests the engine keeps in flight
	// to the driver (see store.Concurrency). Default DefaultMaxConcurrency.
	MaxConcurrency int
	// PartSize is the size of the parts of an upload larger than it, on
	// drivers that upload in parts (blob.WriterOptions.BufferSize); an
	// upload no larger is given a buffer of its own size. Default
	// DefaultPartSize.
	PartSize int
	// PartConcurrency is the number of parts of one upload in flight
	// (blob.WriterOptions.MaxConcurrency). Default DefaultPartConcurrency.
	PartConcurrency int
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.MaxConcurrency <= 0 {
		r.MaxConcurrency = DefaultMaxConcurrency
	}
	if r.PartSize <= 0 {
		r.PartSize = DefaultPartSize
	}
	if r.PartConcurrency <= 0 {
		r.PartConcurrency = DefaultPartConcurrency
	}
	return r
}

// kind is the gocloud.dev driver behind a bucket, as far as it matters.
type kind int

const (
	kindUnknown kind = iota // a driver New does not recognise
	kindMem                 // memblob
	kindFile                // fileblob
	kindS3                  // s3blob
	kindGCS                 // gcsblob
	kindAzure               // azureblob
)

// atomicCreate reports whether the driver's IfNotExist writes are atomic:
// of two concurrent writers, the server or the driver lets one win.
// fileblob checks that the file is missing, then renames into place, and
// drivers New does not recognise may do the same.
func (k kind) atomicCreate() bool {
	return k == kindMem || k == kindS3 || k == kindGCS || k == kindAzure
}

// detect recognises the driver of b through b.As. memblob exposes no type
// and is recognised only when [Open] made the bucket.
func detect(b *blob.Bucket) kind {
	var s3c *s3.Client
	var gcs *storage.Client
	var az *container.Client
	var fi os.FileInfo
	switch {
	case b.As(&s3c):
		return kindS3
	case b.As(&gcs):
		return kindGCS
	case b.As(&az):
		return kindAzure
	case b.As(&fi):
		return kindFile
	}
	return kindUnknown
}

// Driver is a [store.Driver] over a gocloud.dev *blob.Bucket. It is safe
// for concurrent use.
type Driver struct {
	bucket *blob.Bucket // nil when dir is set
	dir    *lazyDir     // a gocloud+file directory, opened when it exists
	owned  bool         // Close closes the bucket
	kind   kind
	opts   Options
	// name names the bucket in messages (empty when unknown).
	name string
	// domain identifies the storage behind the bucket for the locks that
	// serialise create-only writes within the process.
	domain string
	// bucketSeen is set once the bucket has answered: from then on, a
	// missing object is not a sign of a missing bucket (see notFound).
	bucketSeen atomic.Bool
}

var (
	_ store.Driver      = (*Driver)(nil)
	_ store.Concurrency = (*Driver)(nil)
)

// New returns a driver over bucket, which the caller keeps: Close does not
// close it, and the caller must not close it while the driver is in use.
// Wrap the bucket with blob.PrefixedBucket to keep a repository under a
// prefix. A nil opts means the defaults.
//
// New recognises the s3blob, gcsblob, azureblob and fileblob drivers (by
// bucket.As). Create-only writes to buckets of other drivers, memblob
// included, are read back to check that they won (see the package
// documentation); [Open] recognises mem:// buckets.
func New(bucket *blob.Bucket, opts *Options) *Driver {
	return &Driver{
		bucket: bucket,
		kind:   detect(bucket),
		opts:   opts.withDefaults(),
		domain: fmt.Sprintf("bucket:%p", bucket),
	}
}

// Bucket returns the bucket the driver reads and writes, or nil for the
// directory of a gocloud+file URL that did not exist yet when the driver
// was opened, until an operation has opened it.
func (d *Driver) Bucket() *blob.Bucket {
	if d.dir != nil {
		return d.dir.bucket.Load()
	}
	return d.bucket
}

// open returns the bucket; write says the caller is about to write to
// it, which creates a gocloud+file directory that does not exist yet.
func (d *Driver) open(ctx context.Context, write bool) (*blob.Bucket, error) {
	if d.dir != nil {
		return d.dir.open(ctx, write)
	}
	return d.bucket, nil
}

// MaxConcurrency implements store.Concurrency.
func (d *Driver) MaxConcurrency() int { return d.opts.MaxConcurrency }

// Close closes the bucket if [Open] opened it; a bucket given to [New]
// stays open.
func (d *Driver) Close() error {
	var err error
	switch {
	case !d.owned:
	case d.dir != nil:
		err = d.dir.close()
	default:
		err = d.bucket.Close()
	}
	if err != nil {
		return fmt.Errorf("gocloudstore: close: %w", err)
	}
	return nil
}

// Put implements store.Driver. The body streams through a reader that
// counts and hashes it; when it falls short of size, or its digest is not
// opts.SHA256, the reader cancels the write's context before it fails the
// read, so the gocloud.dev writer aborts instead of committing.
func (d *Driver) Put(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	bucket, err := d.open(ctx, true)
	if err != nil {
		return err
	}
	verify := opts.CreateOnly && !d.kind.atomicCreate()
	if verify {
		unlock, err := lockName(ctx, d.domain+"\x00"+name)
		if err != nil {
			return err
		}
		defer unlock()
	}
	wopts, err := d.writerOptions(body, size, opts)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr := &putReader{
		ctx:   ctx,
		abort: cancel,
		r:     io.NewSectionReader(body, 0, size),
		size:  size,
	}
	if opts.SHA256 != nil && !d.serverSHA256(wopts, size, opts.SHA256) {
		pr.want = store.SHA256ToCheck(body, opts.SHA256)
	}
	if pr.want != nil || verify {
		pr.h = sha256.New()
	}
	err = bucket.Upload(wctx, name, pr, wopts)
	if pr.err != nil {
		return pr.err
	}
	if err != nil {
		return d.putFailed(ctx, err, opts.CreateOnly)
	}
	if verify {
		return d.readBack(ctx, bucket, name, size, pr.h.Sum(nil))
	}
	return nil
}

// putFailed maps the error of an upload. A write finds no object
// missing, so "not found" there means the bucket is (GCS answers a bare
// 404).
func (d *Driver) putFailed(ctx context.Context, err error, createOnly bool) error {
	mapped := d.mapError(ctx, err, createOnly)
	if errors.Is(mapped, core.ErrNotFound) && !errors.Is(mapped, core.ErrBucketNotFound) {
		return d.bucketNotFound(err)
	}
	return mapped
}

// writerOptions sizes the writer's buffer to the object, up to PartSize,
// and sends the content's MD5 to servers that check it when the object is
// small enough for the extra pass to be cheap.
func (d *Driver) writerOptions(body io.ReaderAt, size int64, opts store.PutOptions) (*blob.WriterOptions, error) {
	wopts := &blob.WriterOptions{
		ContentType:    opts.ContentType,
		BufferSize:     int(max(1, min(size, int64(d.opts.PartSize)))),
		MaxConcurrency: d.opts.PartConcurrency,
		IfNotExist:     opts.CreateOnly,
	}
	if wopts.ContentType == "" {
		wopts.ContentType = "application/octet-stream"
	}
	if d.kind == kindGCS && size <= checksumLimit {
		h := md5.New()
		if _, err := io.Copy(h, io.NewSectionReader(body, 0, size)); err != nil {
			return nil, fmt.Errorf("gocloudstore: read the body for its MD5: %w", err)
		}
		wopts.ContentMD5 = h.Sum(nil)
	}
	return wopts, nil
}

// serverSHA256 has the server verify sum, the content's SHA-256, where it
// can: on S3, for objects that the transfer manager sends in one
// PutObject, as its x-amz-checksum-sha256 header (multipart uploads have
// no whole-object SHA-256). It reports whether it did.
func (d *Driver) serverSHA256(wopts *blob.WriterOptions, size int64, sum []byte) bool {
	if d.kind != kindS3 || size >= s3MultipartThreshold {
		return false
	}
	wopts.BeforeWrite = func(as func(any) bool) error {
		var in *transfermanager.UploadObjectInput
		if !as(&in) {
			return errors.New("gocloudstore: s3blob exposes no *transfermanager.UploadObjectInput")
		}
		in.ChecksumAlgorithm = tmtypes.ChecksumAlgorithmSha256
		in.ChecksumSHA256 = aws.String(base64.StdEncoding.EncodeToString(sum))
		return nil
	}
	return true
}

// s3MultipartThreshold is the size from which s3blob's transfer manager
// uploads in parts (its default, which s3blob does not change).
const s3MultipartThreshold = 16 << 20

// putReader is the body of an upload (see [Driver.Put]).
type putReader struct {
	ctx   context.Context    // the Put's context
	abort context.CancelFunc // cancels the writer's context
	r     io.Reader
	size  int64
	n     int64
	h     hash.Hash // nil: no digest wanted
	want  []byte    // the expected SHA-256, or nil
	err   error     // the first failure, returned by every later Read
}

func (p *putReader) Read(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	if err := p.ctx.Err(); err != nil {
		return 0, p.fail(err)
	}
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.h != nil {
		p.h.Write(b[:n])
	}
	switch {
	case err != nil && err != io.EOF:
		return n, p.fail(fmt.Errorf("gocloudstore: read the body: %w", err))
	case p.n < p.size && err == io.EOF:
		return n, p.fail(fmt.Errorf("gocloudstore: the body ended after %d of %d bytes: %w", p.n, p.size, io.ErrUnexpectedEOF))
	case p.n == p.size && p.want != nil:
		if got := p.h.Sum(nil); !bytes.Equal(got, p.want) {
			return n, p.fail(fmt.Errorf("gocloudstore: the body's SHA-256 is %x, want %x: %w", got, p.want, core.ErrChecksumMismatch))
		}
		p.want = nil // checked
	}
	return n, err
}

// fail records err and cancels the write before the writer sees err.
func (p *putReader) fail(err error) error {
	p.abort()
	p.err = err
	return err
}

// readBack checks, after a create-only write to a driver whose IfNotExist
// is not atomic, that the object holds what was written: if another
// writer's content replaced it, this write lost the race.
func (d *Driver) readBack(ctx context.Context, bucket *blob.Bucket, name string, size int64, sum []byte) error {
	r, err := bucket.NewReader(ctx, name, nil)
	if err != nil {
		return fmt.Errorf("gocloudstore: read back the created object: %w", d.mapError(ctx, err, false))
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return fmt.Errorf("gocloudstore: read back the created object: %w", d.mapError(ctx, err, false))
	}
	if n != size || !bytes.Equal(h.Sum(nil), sum) {
		return fmt.Errorf("gocloudstore: another writer replaced the object while it was created: %w", core.ErrExists)
	}
	return nil
}

// Get implements store.Driver. Like GetRange, it returns a read that
// breaks off as an error matching core.ErrTransient and leaves resuming
// it to the Store.
func (d *Driver) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	return d.GetRange(ctx, name, 0, -1)
}

// GetRange implements store.Driver. A length past the object's end, or
// negative (as Get passes), reads to its end; an offset at or past the
// end yields an empty reader.
func (d *Driver) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if length == 0 {
		// Servers differ on empty ranges (S3 refuses them): ask whether
		// the object exists instead.
		if _, err := d.Stat(ctx, name); err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	if length > math.MaxInt64-offset {
		length = -1
	}
	bucket, err := d.open(ctx, false)
	if err != nil {
		return nil, err
	}
	r, err := bucket.NewRangeReader(ctx, name, offset, length, nil)
	if err != nil {
		mapped := d.notFound(ctx, bucket, err)
		if offset > 0 || length > 0 {
			// S3 answers 416 to a range that starts at or past the end.
			if info, serr := d.Stat(ctx, name); serr == nil && offset >= info.Size {
				return io.NopCloser(bytes.NewReader(nil)), nil
			}
		}
		return nil, mapped
	}
	return &reader{r: r, ctx: ctx, d: d}, nil
}

// reader maps the errors of a *blob.Reader.
type reader struct {
	r   *blob.Reader
	ctx context.Context
	d   *Driver
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = r.d.mapError(r.ctx, err, false)
	}
	return n, err
}

func (r *reader) Close() error { return r.r.Close() }

// Stat implements store.Driver.
func (d *Driver) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return store.ObjectInfo{}, err
	}
	bucket, err := d.open(ctx, false)
	if err != nil {
		return store.ObjectInfo{}, err
	}
	attrs, err := bucket.Attributes(ctx, name)
	if err != nil {
		return store.ObjectInfo{}, d.notFound(ctx, bucket, err)
	}
	d.bucketSeen.Store(true)
	return store.ObjectInfo{Name: name, Size: attrs.Size, ModTime: attrs.ModTime}, nil
}

// List implements store.Driver. It skips objects whose names are not
// repository names, such as the temporary files of fileblob.
func (d *Driver) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	bucket, err := d.open(ctx, false)
	if err != nil {
		return err
	}
	opts := &blob.ListOptions{Prefix: prefix}
	token := blob.FirstPageToken
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		page, next, err := d.listPage(ctx, bucket, token, opts)
		if err != nil {
			return d.mapError(ctx, err, false)
		}
		for _, obj := range page {
			if obj.IsDir || store.ValidName(obj.Key) != nil {
				continue
			}
			if err := fn(store.ObjectInfo{Name: obj.Key, Size: obj.Size, ModTime: obj.ModTime}); err != nil {
				return err
			}
		}
		if len(next) == 0 {
			return nil
		}
		token = next
	}
}

// Listing pages.
const (
	listPageSize = 1000
	// listAttempts is how many times a page of a fileblob listing is
	// asked for (see listPage).
	listAttempts = 5
)

// listPage returns a page of the listing. fileblob fails a page when a
// file vanishes between its directory's read and its stat (a temporary
// file renamed into place, an object deleted); such a page is asked for
// again, which is safe as pages are named by the last key before them.
func (d *Driver) listPage(ctx context.Context, bucket *blob.Bucket, token []byte, opts *blob.ListOptions) ([]*blob.ListObject, []byte, error) {
	for attempt := 1; ; attempt++ {
		page, next, err := bucket.ListPage(ctx, token, listPageSize, opts)
		if err == nil || d.kind != kindFile || attempt == listAttempts || gcerrors.Code(err) != gcerrors.NotFound || ctx.Err() != nil {
			return page, next, err
		}
	}
}

// Delete implements store.Driver.
func (d *Driver) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	bucket, err := d.open(ctx, false)
	if err != nil {
		return err
	}
	if err := bucket.Delete(ctx, name); err != nil {
		return d.notFound(ctx, bucket, err)
	}
	return nil
}

// notFound maps err, the failure of an operation on one object, telling a
// missing bucket from a missing object where the answer does not: S3
// answers a HEAD (and s3blob's Delete, which starts with one) with a bare
// 404. Until the bucket has answered once, a page of one listing tells.
func (d *Driver) notFound(ctx context.Context, bucket *blob.Bucket, err error) error {
	mapped := d.mapError(ctx, err, false)
	if !errors.Is(mapped, core.ErrNotFound) || errors.Is(mapped, core.ErrBucketNotFound) || d.bucketSeen.Load() {
		return mapped
	}
	_, _, lerr := bucket.ListPage(ctx, blob.FirstPageToken, 1, nil)
	if lerr == nil {
		d.bucketSeen.Store(true)
		return mapped
	}
	if lmapped := d.mapError(ctx, lerr, false); errors.Is(lmapped, core.ErrBucketNotFound) {
		return lmapped
	}
	return mapped
}
