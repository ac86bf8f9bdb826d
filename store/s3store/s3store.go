package s3store

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
)

// Defaults and limits of [Options].
//
// The defaults favour one PutObject: the server then verifies the
// content's SHA-256 itself (see the package documentation), where an
// upload in parts costs the client a pass of SHA-256 over the object; the
// engine keeps many uploads in flight at once, so that an object need not
// be split to use the link. Parts are large, as they cost no memory (each
// is a section of the engine's spool) and each costs a request.
const (
	DefaultMaxConcurrency     = 32
	DefaultPartSize           = 64 << 20
	DefaultMultipartThreshold = 512 << 20
	DefaultPartConcurrency    = 4

	// MinPartSize is the smallest part S3 accepts (but for the last).
	MinPartSize = 5 << 20
	// MaxPutSize is the largest object S3 accepts in one PutObject.
	MaxPutSize = 5 << 30
	// maxParts is the most parts S3 accepts in one multipart upload.
	maxParts = 10000
)

// Options configure a [Driver]. The zero value, like a nil *Options, means
// the defaults.
type Options struct {
	// MaxConcurrency is the number of requests the engine keeps in flight
	// to the driver, and the number of idle connections the pool of a
	// driver made by Open keeps. Default DefaultMaxConcurrency.
	MaxConcurrency int
	// PartSize is the size of the parts of a multipart upload. Default
	// DefaultPartSize; smaller values are raised to MinPartSize, and the
	// size grows as needed to keep an object within S3's 10,000 parts.
	PartSize int64
	// MultipartThreshold is the size from which objects are uploaded in
	// parts. Default DefaultMultipartThreshold; at most MaxPutSize. Lower
	// it where one connection cannot fill the link (a distant region) and
	// few large objects go up at once, at the cost of a pass of SHA-256 on
	// the client for each object uploaded in parts whose digest is known.
	MultipartThreshold int64
	// PartConcurrency is the number of parts of one object uploaded at
	// once. Default DefaultPartConcurrency.
	PartConcurrency int
	// ResponseTimeout bounds each request's wait for the server: to
	// connect and send the request's headers, and, once its body is sent,
	// to receive the response's headers. Default DefaultResponseTimeout;
	// negative means no limit.
	ResponseTimeout time.Duration
	// StallTimeout bounds each wait for a request body being sent, or a
	// response body being read, to move. Default DefaultStallTimeout;
	// negative means no limit.
	//
	// Both timeouts apply to every transport, Options.Transport and the
	// HTTP client of a client given to New included. A request that runs
	// out of either fails with a *TimeoutError, which the client's
	// retryer, then the store layer, try again; a read that stalls is
	// resumed where it stopped.
	StallTimeout time.Duration

	// The fields below apply to Open only; New uses its client as it is.

	// Transport carries the S3 requests, in place of the driver's own pool
	// (see NewTransport), for example to inject faults in tests. It brings
	// its own TLS settings: AWS_CA_BUNDLE does not apply to it.
	Transport http.RoundTripper
	// Credentials replaces the SDK's credential chain.
	Credentials aws.CredentialsProvider
	// Retryer makes the client's retryer, in place of the SDK's standard
	// one.
	Retryer func() aws.Retryer
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
	r.PartSize = max(r.PartSize, MinPartSize)
	if r.MultipartThreshold <= 0 {
		r.MultipartThreshold = DefaultMultipartThreshold
	}
	r.MultipartThreshold = min(r.MultipartThreshold, MaxPutSize)
	if r.PartConcurrency <= 0 {
		r.PartConcurrency = DefaultPartConcurrency
	}
	if r.ResponseTimeout == 0 {
		r.ResponseTimeout = DefaultResponseTimeout
	}
	if r.StallTimeout == 0 {
		r.StallTimeout = DefaultStallTimeout
	}
	return r
}

// Driver is a [store.Driver] over the objects under a prefix of an S3
// bucket. It is safe for concurrent use.
type Driver struct {
	client   *s3.Client
	bucket   string
	prefix   string // "" or ending in "/"
	endpoint string // where the bucket is, for messages
	opts     Options
	pool     *pool // the connection pool of a driver made by Open; or nil

	// bucketSeen is set once the bucket answered, so that an ambiguous
	// 404 (HeadObject's has no body to tell a missing object from a
	// missing bucket) need not be checked again.
	bucketSeen atomic.Bool
}

var (
	_ store.Driver            = (*Driver)(nil)
	_ store.Concurrency       = (*Driver)(nil)
	_ store.ConditionalPutter = (*Driver)(nil)
)

// New returns a driver over the objects under prefix in bucket, reached
// through client. The prefix may be empty; a trailing "/" is added when
// missing. A nil opts means the defaults; its fields for Open are ignored.
func New(client *s3.Client, bucket, prefix string, opts *Options) *Driver {
	prefix = store.KeyPrefix(prefix)
	return &Driver{
		client:   client,
		bucket:   bucket,
		prefix:   prefix,
		endpoint: endpointOf(client.Options()),
		opts:     opts.withDefaults(),
	}
}

// MaxConcurrency returns Options.MaxConcurrency: the number of requests the
// engine should keep in flight (see store.Concurrency).
func (d *Driver) MaxConcurrency() int { return d.opts.MaxConcurrency }

func (d *Driver) key(name string) *string { return aws.String(d.prefix + name) }

// Put implements [store.Driver.Put].
func (d *Driver) Put(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions) error {
	if err := checkSHA256(opts); err != nil {
		return err
	}
	if size >= d.opts.MultipartThreshold {
		return d.putMultipart(ctx, name, body, size, opts)
	}
	in, err := d.putInput(ctx, name, body, size, opts)
	if err != nil {
		return err
	}
	if opts.CreateOnly {
		in.IfNoneMatch = aws.String("*")
	}
	att, optFn := d.newAttempts()
	_, err = d.client.PutObject(ctx, in, optFn, unsignedPayload)
	return d.fail(ctx, err, att)
}

// PutIfMatch implements [store.ConditionalPutter]: a PutObject with
// If-Match: version, the ETag that Stat returned, whatever the object's
// size (up to MaxPutSize, S3's limit for one PutObject). S3 answers 412
// Precondition Failed to an object replaced since, and 404 to one deleted:
// both are errors matching core.ErrConflict; 409, a concurrent conditional
// write in progress, is transient: the Store tries again. A server that ignores If-Match
// would make this a plain Put: AWS S3 honours it since 2024, and so does
// MinIO (the package's tests check the pinned release).
func (d *Driver) PutIfMatch(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions, version string) error {
	if opts.CreateOnly || size > MaxPutSize {
		return fmt.Errorf("s3store: conditional put of %d bytes (at most %d), create-only %t: %w", size, int64(MaxPutSize), opts.CreateOnly, core.ErrInvalid)
	}
	if err := checkSHA256(opts); err != nil {
		return err
	}
	in, err := d.putInput(ctx, name, body, size, opts)
	if err != nil {
		return err
	}
	in.IfMatch = aws.String(version)
	att, optFn := d.newAttempts()
	_, err = d.client.PutObject(ctx, in, optFn, unsignedPayload)
	if err == nil || ctx.Err() != nil {
		return d.fail(ctx, err, att)
	}
	switch code, status := errorCode(err), statusCode(err); {
	case status == http.StatusPreconditionFailed, status == http.StatusNotFound && code != "NoSuchBucket":
		return fmt.Errorf("s3store: %q is no longer at version %s: %w: %w", name, version, core.ErrConflict, err)
	case status == http.StatusConflict:
		// Another conditional write of the object is in progress: S3 asks
		// for a retry, which then meets the version that write left.
		return fmt.Errorf("s3store: %q: a concurrent conditional write: %w: %w", name, core.ErrTransient, err)
	}
	return d.fail(ctx, err, att)
}

func checkSHA256(opts store.PutOptions) error {
	if opts.SHA256 != nil && len(opts.SHA256) != sha256.Size {
		return fmt.Errorf("s3store: SHA256 option of %d bytes, want %d: %w", len(opts.SHA256), sha256.Size, core.ErrInvalid)
	}
	return nil
}

// putInput returns the PutObject request storing size bytes of body
// under name, with a checksum the server verifies.
func (d *Driver) putInput(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions) (*s3.PutObjectInput, error) {
	in := &s3.PutObjectInput{
		Bucket:        &d.bucket,
		Key:           d.key(name),
		Body:          section(body, size, 0, size),
		ContentLength: aws.Int64(size),
		ContentType:   contentType(opts),
	}
	if opts.SHA256 != nil {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmSha256
		in.ChecksumSHA256 = aws.String(base64.StdEncoding.EncodeToString(opts.SHA256))
	} else {
		sum, err := crc32cOf(ctx, body, size)
		if err != nil {
			return nil, err
		}
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32c
		in.ChecksumCRC32C = aws.String(sum)
	}
	return in, nil
}

// section returns the bytes [off, off+n) of body, which should hold size
// bytes, as a reader the SDK can rewind. If body ends before size, reads
// fail with an error wrapping io.ErrUnexpectedEOF, which the driver does
// not retry.
func section(body io.ReaderAt, size, off, n int64) *io.SectionReader {
	return io.NewSectionReader(sizedReaderAt{body, size}, off, n)
}

// sizedReaderAt is a body that should hold size bytes.
type sizedReaderAt struct {
	r    io.ReaderAt
	size int64
}

func (s sizedReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := s.r.ReadAt(p, off)
	if err == io.EOF && off+int64(n) < s.size {
		err = &shortBodyError{size: s.size, end: off + int64(n)}
	}
	return n, err
}

// shortBodyError reports a Put's body that holds fewer bytes than its size.
type shortBodyError struct{ size, end int64 }

func (e *shortBodyError) Error() string {
	return fmt.Sprintf("s3store: body ends at byte %d of %d: %v", e.end, e.size, io.ErrUnexpectedEOF)
}

func (e *shortBodyError) Unwrap() error { return io.ErrUnexpectedEOF }

func contentType(opts store.PutOptions) *string {
	if opts.ContentType == "" {
		return aws.String("application/octet-stream")
	}
	return aws.String(opts.ContentType)
}

// Get implements [store.Driver.Get]. The reader is the response's body,
// bound to ctx; a read that breaks off fails, and the Store resumes it.
func (d *Driver) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	return d.get(ctx, name, 0, -1)
}

// GetRange implements [store.Driver.GetRange], as Get does.
func (d *Driver) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	return store.ServeRange(ctx, name, offset, length, d.Stat, func(offset, length int64) (io.ReadCloser, error) {
		end := int64(-1) // to the object's end
		if length >= 0 {
			end = offset + length
		}
		return d.get(ctx, name, offset, end)
	})
}

// get opens the bytes of the object name from offset to end, exclusive,
// or to the object's end if end is -1; the whole object when offset is 0
// and end -1.
func (d *Driver) get(ctx context.Context, name string, offset, end int64) (io.ReadCloser, error) {
	in := &s3.GetObjectInput{Bucket: &d.bucket, Key: d.key(name)}
	if offset > 0 || end >= 0 {
		r := "bytes=" + strconv.FormatInt(offset, 10) + "-"
		if end >= 0 {
			r += strconv.FormatInt(end-1, 10)
		}
		in.Range = &r
	}
	att, optFn := d.newAttempts()
	out, err := d.client.GetObject(ctx, in, optFn, noResponseChecksum)
	if statusCode(err) == http.StatusRequestedRangeNotSatisfiable {
		return d.rangeNotSatisfiable(ctx, name, offset, err, att)
	}
	if err != nil {
		return nil, d.fail(ctx, err, att)
	}
	d.bucketSeen.Store(true)
	return out.Body, nil
}

// rangeNotSatisfiable handles the answer 416 Range Not Satisfiable (err)
// to a GetObject of a range from offset: S3 gives it for a range that
// starts at or past the object's end, where GetRange yields an empty
// reader. It asks for the object's size to make sure.
func (d *Driver) rangeNotSatisfiable(ctx context.Context, name string, offset int64, err error, att *attempts) (io.ReadCloser, error) {
	info, serr := d.Stat(ctx, name)
	if serr != nil {
		return nil, serr
	}
	if offset >= info.Size {
		return http.NoBody, nil
	}
	return nil, d.fail(ctx, err, att)
}

// noResponseChecksum turns off the SDK's verification of downloads:
// statebucket's engine verifies every object's SHA-256 as it reads it, so
// a second hash of the same bytes would only cost CPU.
func noResponseChecksum(o *s3.Options) {
	o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
}

// Stat implements [store.Driver.Stat].
func (d *Driver) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	att, optFn := d.newAttempts()
	out, err := d.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &d.bucket, Key: d.key(name)}, optFn)
	if err != nil {
		return store.ObjectInfo{}, d.headFailed(ctx, err, att)
	}
	d.bucketSeen.Store(true)
	return store.ObjectInfo{Name: name, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified), Version: aws.ToString(out.ETag)}, nil
}

// headFailed maps the error of a HeadObject. The answer to a HEAD has no
// body, so a 404 does not say whether the object or the bucket is
// missing: until the bucket has answered once, HeadBucket tells.
func (d *Driver) headFailed(ctx context.Context, err error, att *attempts) error {
	mapped := d.fail(ctx, err, att)
	if !errors.Is(mapped, core.ErrNotFound) || d.bucketSeen.Load() {
		return mapped
	}
	batt, optFn := d.newAttempts()
	_, berr := d.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &d.bucket}, optFn)
	switch {
	case berr == nil:
		d.bucketSeen.Store(true)
		return mapped
	case statusCode(berr) == http.StatusNotFound:
		return d.bucketNotFound(berr)
	}
	return d.fail(ctx, berr, batt)
}

// List implements [store.Driver.List].
func (d *Driver) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	pages := s3.NewListObjectsV2Paginator(d.client, &s3.ListObjectsV2Input{Bucket: &d.bucket, Prefix: aws.String(d.prefix + prefix)})
	for pages.HasMorePages() {
		att, optFn := d.newAttempts()
		page, err := pages.NextPage(ctx, optFn)
		if err != nil {
			return d.fail(ctx, err, att)
		}
		d.bucketSeen.Store(true)
		for _, obj := range page.Contents {
			name, ok := strings.CutPrefix(aws.ToString(obj.Key), d.prefix)
			if !ok {
				continue
			}
			if err := fn(store.ObjectInfo{Name: name, Size: aws.ToInt64(obj.Size), ModTime: aws.ToTime(obj.LastModified)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete implements [store.Driver.Delete]. S3's DeleteObject succeeds on a
// missing object, so Delete asks for it first, to fail with
// core.ErrNotFound as the contract requires.
func (d *Driver) Delete(ctx context.Context, name string) error {
	if _, err := d.Stat(ctx, name); err != nil {
		return err
	}
	att, optFn := d.newAttempts()
	_, err := d.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &d.bucket, Key: d.key(name)}, optFn)
	return d.fail(ctx, err, att)
}

// Close closes the idle connections of the driver's own pool, if it has
// one.
func (d *Driver) Close() error {
	if d.pool != nil {
		d.pool.closeIdleConnections()
	}
	return nil
}
