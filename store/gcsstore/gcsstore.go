package gcsstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"cloud.google.com/go/storage"
	"golang.org/x/sync/semaphore"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
)

// Defaults of [Options].
const (
	DefaultMaxConcurrency = 32
	// DefaultChunkSize is the client library's default, and rclone's:
	// each chunk of a resumable upload costs a request, and a server
	// may do work per chunk on all it holds of the object so far (the
	// emulator hashes it again), while the buffer of each large upload
	// adds to the engine's memory. Half of it (8 MiB, the least Google
	// advises for throughput) took 1.6 times as long to upload 1 GiB to the
	// emulator (docs/benchmarks.md).
	DefaultChunkSize = 16 << 20
	// DefaultMaxBufferBytes lets two uploads of large objects run at
	// once with DefaultChunkSize.
	DefaultMaxBufferBytes = 2 * DefaultChunkSize
	DefaultMaxAttempts    = 8
	// DefaultSingleRequestMax is the largest object sent in one
	// streamed request: a failed one is sent again whole, which costs
	// little below this size, and a resumable upload costs a request
	// and a buffered chunk per ChunkSize bytes.
	DefaultSingleRequestMax = 64 << 20

	// chunkGranularity is the multiple of which GCS takes the chunks of
	// a resumable upload; the client rounds ChunkSize up to it.
	chunkGranularity = 256 << 10
)

// Options configure a [Driver]. The zero value, like a nil *Options, means
// the defaults.
type Options struct {
	// MaxConcurrency is the number of requests the engine keeps in flight
	// to the driver. Default DefaultMaxConcurrency.
	MaxConcurrency int
	// SingleRequestMax is the largest object sent in one request
	// streamed from the Put's body, with no buffer: the driver reads the
	// body once first for its CRC32C, which the request declares, and
	// after a transient failure the engine sends the object again from
	// its body. Larger objects, and bodies that another store streams
	// from a server (a [store.ReaderAt] that is not [store.Local], which
	// a second pass would download again), go as ChunkSize says. Default DefaultSingleRequestMax; negative sends
	// every object as ChunkSize says.
	SingleRequestMax int64
	// ChunkSize decides how an object that does not go in one streamed
	// request goes up. One smaller than ChunkSize goes up in one request,
	// from a buffer of its size rounded up to a multiple of 256 KiB, so
	// that the client can send it again. A larger one goes up in a
	// resumable upload, in chunks of ChunkSize (rounded up likewise), each
	// buffered: ChunkSize is the memory of each such upload in flight.
	// Default DefaultChunkSize.
	ChunkSize int
	// MaxBufferBytes bounds the memory of the buffers of uploads in
	// flight together: an upload whose buffer does not fit waits. Objects
	// under 256 KiB, whose buffers are the smallest the client takes, do
	// not count and never wait: at most MaxConcurrency of them are in
	// flight. Default DefaultMaxBufferBytes; it is raised to ChunkSize if
	// smaller.
	MaxBufferBytes int64
	// CompositeThreshold is the size from which an object read from a
	// body on this machine, and put with no precondition (as the engine
	// puts large blobs), goes up in a parallel composite upload: in
	// parts of ComponentSize (more if that makes over 1,024), each an
	// object of its own sent in one streamed request, ComponentConcurrency
	// at once, which one compose request then joins into the object (over
	// 32 parts, in groups of 32 first) before the parts are deleted. Only a bucket whose default storage class is
	// STANDARD, with no retention policy, default event-based holds or
	// versioning, gets them (see the package documentation). Default
	// DefaultCompositeThreshold; negative never uploads in parts.
	CompositeThreshold int64
	// ComponentSize is the size of the parts of a composite upload.
	// Default DefaultComponentSize.
	ComponentSize int64
	// ComponentConcurrency is the number of parts of one object sent at
	// once. Default DefaultComponentConcurrency.
	ComponentConcurrency int
	// MaxAttempts is the number of times the client sends a request whose
	// answer says it may be tried again (429, 5xx, a broken connection)
	// before the driver reports core.ErrTransient; for a resumable
	// upload, the number of consecutive failures. Default
	// DefaultMaxAttempts. (The client library's own default is to retry
	// until the context ends.)
	MaxAttempts int

	// ClientOptions configure the client that Open makes, for example
	// option.WithCredentialsFile or option.WithEndpoint. When any are
	// given, Open leaves authentication to them and the client library;
	// otherwise it finds Application Default Credentials itself, to say
	// clearly when there are none. New ignores them.
	ClientOptions []option.ClientOption
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.MaxConcurrency <= 0 {
		r.MaxConcurrency = DefaultMaxConcurrency
	}
	if r.ChunkSize <= 0 {
		r.ChunkSize = DefaultChunkSize
	}
	r.ChunkSize = int(roundUp(int64(r.ChunkSize)))
	if r.MaxBufferBytes <= 0 {
		r.MaxBufferBytes = DefaultMaxBufferBytes
	}
	r.MaxBufferBytes = max(r.MaxBufferBytes, int64(r.ChunkSize))
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = DefaultMaxAttempts
	}
	if r.SingleRequestMax == 0 {
		r.SingleRequestMax = DefaultSingleRequestMax
	}
	if r.CompositeThreshold == 0 {
		r.CompositeThreshold = DefaultCompositeThreshold
	}
	if r.ComponentSize <= 0 {
		r.ComponentSize = DefaultComponentSize
	}
	if r.ComponentConcurrency <= 0 {
		r.ComponentConcurrency = DefaultComponentConcurrency
	}
	return r
}

// roundUp rounds n up to a multiple of chunkGranularity.
func roundUp(n int64) int64 {
	return (n + chunkGranularity - 1) / chunkGranularity * chunkGranularity
}

// Driver is a [store.Driver] over the objects under a prefix of a GCS
// bucket. It is safe for concurrent use.
type Driver struct {
	client *storage.Client
	owned  bool   // the client was made by Open, and Close closes it
	name   string // the bucket's name
	prefix string // "" or ending in "/"
	where  string // where the bucket is, for messages
	opts   Options

	// bucket carries every request but uploads (see Put), with the
	// client's retry policy: it retries the idempotent ones.
	bucket *storage.BucketHandle

	buffers *semaphore.Weighted // bytes of the buffers of uploads in flight

	// bucketSeen is set once the bucket answered, so that a 404, which
	// for an object does not say whether the object or the bucket is
	// missing, need not be checked again.
	bucketSeen atomic.Bool

	// Whether the bucket takes composite uploads: asked once.
	composeMu    sync.Mutex
	composeKnown bool
	composeOK    bool
}

var (
	_ store.Driver            = (*Driver)(nil)
	_ store.Concurrency       = (*Driver)(nil)
	_ store.ConditionalPutter = (*Driver)(nil)
	_ store.Cleaner           = (*Driver)(nil)
)

// New returns a driver over the objects under prefix in bucket, reached
// through client, which the caller keeps and closes. The prefix may be
// empty; a trailing "/" is added when missing. A nil opts means the
// defaults; Options.ClientOptions are ignored.
func New(client *storage.Client, bucket, prefix string, opts *Options) *Driver {
	prefix = store.KeyPrefix(prefix)
	o := opts.withDefaults()
	return &Driver{
		client:  client,
		name:    bucket,
		prefix:  prefix,
		where:   where(),
		opts:    o,
		bucket:  client.Bucket(bucket).Retryer(storage.WithMaxAttempts(o.MaxAttempts)),
		buffers: semaphore.NewWeighted(o.MaxBufferBytes),
	}
}

// where names the service a client made now reaches, for messages.
func where() string {
	if host := os.Getenv(EnvEmulatorHost); host != "" {
		return fmt.Sprintf("the emulator at %s (%s)", host, EnvEmulatorHost)
	}
	return "Google Cloud Storage"
}

// MaxConcurrency returns Options.MaxConcurrency: the number of requests the
// engine should keep in flight (see store.Concurrency).
func (d *Driver) MaxConcurrency() int { return d.opts.MaxConcurrency }

// Put implements [store.Driver.Put]. Every upload carries the CRC32C of
// what it sends, for GCS to check before it creates the object; the
// driver checks the SHA-256, which GCS cannot, before anything is sent
// or before the upload's end, and abandons the upload if it differs. How
// an object goes up (one streamed request, a resumable upload, or a
// parallel composite upload) depends on its size and its body: see the
// package documentation.
func (d *Driver) Put(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions) error {
	var conds storage.Conditions
	if opts.CreateOnly {
		conds.DoesNotExist = true
	}
	return d.put(ctx, name, body, size, opts, conds)
}

// PutIfMatch implements [store.ConditionalPutter]: an upload with the
// precondition GenerationMatch (ifGenerationMatch), version being the
// object's generation in decimal, as Stat returns it. GCS answers 412
// Precondition Failed to an object replaced since or deleted: an error
// matching core.ErrConflict.
func (d *Driver) PutIfMatch(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions, version string) error {
	gen, err := strconv.ParseInt(version, 10, 64)
	if err != nil || gen <= 0 || opts.CreateOnly {
		return fmt.Errorf("gcsstore: conditional put at version %q (want a generation), create-only %t: %w", version, opts.CreateOnly, core.ErrInvalid)
	}
	return d.put(ctx, name, body, size, opts, storage.Conditions{GenerationMatch: gen})
}

// put stores size bytes of body under name with the preconditions conds,
// which may be empty.
func (d *Driver) put(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions, conds storage.Conditions) error {
	if opts.SHA256 != nil && len(opts.SHA256) != sha256.Size {
		return fmt.Errorf("gcsstore: SHA256 option of %d bytes, want %d: %w", len(opts.SHA256), sha256.Size, core.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("gcsstore: %w", err)
	}
	if d.oneRequest(body, size) {
		return d.putStreamed(ctx, name, body, size, opts, conds)
	}
	if conds == (storage.Conditions{}) && d.composite(ctx, body, size) {
		return d.putComposite(ctx, name, body, size, opts)
	}
	// A chunk larger than the object makes the client send it in one
	// request; a full chunk would leave it waiting for the end of the
	// body to know that the chunk is the last.
	chunk := min(roundUp(size+1), int64(d.opts.ChunkSize))
	if chunk > chunkGranularity {
		if err := d.buffers.Acquire(ctx, chunk); err != nil {
			return fmt.Errorf("gcsstore: %w", err)
		}
		defer d.buffers.Release(chunk)
	}

	var attempts atomic.Int32
	obj := d.uploadBucket(&attempts).Object(d.prefix + name)
	if conds != (storage.Conditions{}) {
		obj = obj.If(conds)
	}
	// GCS creates the object only once the upload's last byte has
	// arrived, which Close sends (the client waits for the end of the
	// body to know which chunk is the last): cancelling wctx before Close
	// abandons the upload.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := obj.NewWriter(wctx)
	w.ChunkSize = int(chunk)
	w.ContentType = contentType(opts)
	w.ProgressFunc = func(int64) { attempts.Store(0) } // a chunk went up
	abandon := func(err error) error {
		cancel()
		_ = w.Close() // fails with the cancellation: err says more
		return err
	}

	h := newBodyHashes(store.SHA256ToCheck(body, opts.SHA256))
	buf := getBuffer()
	defer putBuffer(buf)
	src := io.NewSectionReader(sizedReaderAt{body, size}, 0, size)
	if _, err := io.CopyBuffer(io.MultiWriter(h.w, w), src, *buf); err != nil {
		if errors.As(err, new(*bodyError)) {
			return abandon(err)
		}
		return abandon(d.putFailed(ctx, err, conds))
	}
	if err := h.check("the upload was abandoned"); err != nil {
		return abandon(err)
	}
	if err := w.Close(); err != nil {
		return d.putFailed(ctx, err, conds)
	}
	return d.checkStored(ctx, name, w.Attrs(), h.crc.Sum32())
}

// bodyHashes take the CRC32C of a Put's body and, when the engine gives
// one, its SHA-256, through w.
type bodyHashes struct {
	crc  hash.Hash32
	sum  hash.Hash // nil without a SHA-256 to check
	want []byte
	w    io.Writer
}

func newBodyHashes(want []byte) *bodyHashes {
	h := &bodyHashes{crc: crc32.New(castagnoli), want: want}
	h.w = h.crc
	if want != nil {
		h.sum = sha256.New()
		h.w = io.MultiWriter(h.crc, h.sum)
	}
	return h
}

// check reports a body whose SHA-256 is not the one given, saying what
// became of the upload.
func (h *bodyHashes) check(outcome string) error {
	if h.sum == nil {
		return nil
	}
	if got := h.sum.Sum(nil); !bytes.Equal(got, h.want) {
		return fmt.Errorf("gcsstore: content has SHA-256 %x, want %x; %s: %w", got, h.want, outcome, core.ErrChecksumMismatch)
	}
	return nil
}

// oneRequest reports whether an object of size bytes read from body goes
// up in one streamed request (see Options.SingleRequestMax).
func (d *Driver) oneRequest(body io.ReaderAt, size int64) bool {
	if size > d.opts.SingleRequestMax {
		return false
	}
	// A body streamed from another store would be downloaded twice,
	// unless that store is on this machine.
	if ra, ok := body.(*store.ReaderAt); ok && !ra.Local() {
		return false
	}
	return true
}

// putStreamed stores size bytes of body under name in one request that
// streams the body through the client without a buffer. The body is read
// twice: first for its CRC32C, which the request declares so that GCS
// refuses bytes that differ (a body that changed between the passes, or
// was damaged on its way) and stores nothing, and for its SHA-256, which
// is checked before anything is sent; then for the upload. The client
// does not send such a request again: the engine does, from the body.
func (d *Driver) putStreamed(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions, conds storage.Conditions) error {
	src := sizedReaderAt{body, size}
	crc, err := hashParts(ctx, src, []part{{size: size}}, store.SHA256ToCheck(body, opts.SHA256))
	if err != nil {
		return err
	}
	obj := d.bucket.Object(d.prefix + name)
	if conds != (storage.Conditions{}) {
		obj = obj.If(conds)
	}
	attrs, err := d.send(ctx, obj, io.NewSectionReader(src, 0, size), crc, contentType(opts))
	if err != nil {
		if errors.As(err, new(*bodyError)) {
			return err
		}
		return d.putFailed(ctx, err, conds)
	}
	return d.checkStored(ctx, name, attrs, crc)
}

// send uploads src as obj in one request that streams it through the
// client, declaring its CRC32C, and returns what the server stored.
func (d *Driver) send(ctx context.Context, obj *storage.ObjectHandle, src io.Reader, crc uint32, ctype string) (*storage.ObjectAttrs, error) {
	buf := getBuffer()
	defer putBuffer(buf)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	up := obj.NewWriter(wctx)
	up.ChunkSize = 0 // one request, streamed
	up.ContentType = ctype
	up.CRC32C, up.SendCRC32C = crc, true
	if _, err := io.CopyBuffer(up, src, *buf); err != nil {
		cancel()
		_ = up.Close() // fails with the cancellation: err says more
		return nil, err
	}
	if err := up.Close(); err != nil {
		return nil, err
	}
	return up.Attrs(), nil
}

// checkStored compares the CRC32C of the object an upload stored with the
// body's, crc. GCS refuses an upload whose bytes do not match the CRC32C
// sent with it, so they can differ only on a server that does not check
// (fake-gcs-server ignores the CRC32C of a resumable upload, and appends a
// chunk sent again a second time). Then checkStored deletes that
// generation of the object and reports the mismatch.
func (d *Driver) checkStored(ctx context.Context, name string, attrs *storage.ObjectAttrs, crc uint32) error {
	if attrs == nil || attrs.CRC32C == crc {
		return nil
	}
	err := fmt.Errorf("gcsstore: the server stored bytes with CRC32C %08x, but the body's is %08x: %w", attrs.CRC32C, crc, core.ErrChecksumMismatch)
	if derr := d.bucket.Object(d.prefix + name).Generation(attrs.Generation).Delete(ctx); derr != nil {
		return fmt.Errorf("%w; deleting them failed: %w", err, d.fail(ctx, derr))
	}
	return err
}

// uploadBucket returns a handle on the bucket for one upload, whose
// failures it counts in attempts. The client retries an upload it may
// send again (one it holds in a buffer) until its context ends, and then
// only if it has a precondition; the handle has it retry any upload, and
// give up after Options.MaxAttempts consecutive failures.
//
// Retrying an upload without a precondition is safe here: a replacement
// sent again stores the same bytes. (Of two writers replacing one object,
// the first one's retry may land after the second one's write.) A
// create-only upload sent again after its first try landed is refused
// with 412, as if another writer had won: the engine reads the object
// back and compares.
func (d *Driver) uploadBucket(attempts *atomic.Int32) *storage.BucketHandle {
	// Each client.Bucket has its own copy of the client's retry
	// settings, which Retryer changes in place.
	return d.client.Bucket(d.name).Retryer(
		storage.WithPolicy(storage.RetryAlways),
		storage.WithErrorFunc(func(err error) bool {
			return storage.ShouldRetry(err) && attempts.Add(1) < int32(d.opts.MaxAttempts)
		}),
	)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// bufferSize is the size of the reads of a Put's body.
const bufferSize = 256 << 10

var buffers = sync.Pool{New: func() any {
	b := make([]byte, bufferSize)
	return &b
}}

func getBuffer() *[]byte  { return buffers.Get().(*[]byte) }
func putBuffer(b *[]byte) { buffers.Put(b) }

// sizedReaderAt is a body that should hold size bytes. Its errors are
// *bodyError.
type sizedReaderAt struct {
	r    io.ReaderAt
	size int64
}

func (s sizedReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := s.r.ReadAt(p, off)
	switch {
	case err == io.EOF && off+int64(n) < s.size:
		err = &bodyError{fmt.Errorf("body ends at byte %d of %d: %w", off+int64(n), s.size, io.ErrUnexpectedEOF)}
	case err != nil && err != io.EOF:
		err = &bodyError{err}
	}
	return n, err
}

// bodyError is the failure to read a Put's body, which no retry mends.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "gcsstore: read body: " + e.err.Error() }

func (e *bodyError) Unwrap() error { return e.err }

func contentType(opts store.PutOptions) string {
	if opts.ContentType == "" {
		return "application/octet-stream"
	}
	return opts.ContentType
}

// Get implements [store.Driver.Get]. The client verifies the CRC32C of
// what it reads and resumes a read whose connection breaks.
func (d *Driver) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	return d.read(ctx, name, 0, -1)
}

// GetRange implements [store.Driver.GetRange].
func (d *Driver) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	return store.ServeRange(ctx, name, offset, length, d.Stat, func(offset, length int64) (io.ReadCloser, error) {
		return d.read(ctx, name, offset, length)
	})
}

// read opens length bytes of the object name from offset, or the bytes to
// its end if length is -1.
func (d *Driver) read(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	r, err := d.bucket.Object(d.prefix+name).NewRangeReader(ctx, offset, length)
	if statusCode(err) == http.StatusRequestedRangeNotSatisfiable {
		// GCS answers so for a range from the object's end or past it,
		// where a RangeReader yields no byte. Make sure.
		info, serr := d.Stat(ctx, name)
		if serr != nil {
			return nil, serr
		}
		if offset >= info.Size {
			return http.NoBody, nil
		}
	}
	if err != nil {
		return nil, d.objectFailed(ctx, err)
	}
	d.bucketSeen.Store(true)
	return &objectReader{r: r, d: d}, nil
}

// objectReader maps the errors of a download.
type objectReader struct {
	r *storage.Reader
	d *Driver
}

func (o *objectReader) Read(p []byte) (int, error) {
	n, err := o.r.Read(p)
	if err != nil && err != io.EOF {
		err = o.d.mapError(err)
	}
	return n, err
}

func (o *objectReader) Close() error { return o.r.Close() }

// Stat implements [store.Driver.Stat].
func (d *Driver) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	attrs, err := d.bucket.Object(d.prefix + name).Attrs(ctx)
	if err != nil {
		return store.ObjectInfo{}, d.objectFailed(ctx, err)
	}
	d.bucketSeen.Store(true)
	return store.ObjectInfo{Name: name, Size: attrs.Size, ModTime: attrs.Updated, Version: strconv.FormatInt(attrs.Generation, 10)}, nil
}

// listAttrs are the attributes List asks for.
var listAttrs = []string{"Name", "Size", "Updated"}

// List implements [store.Driver.List].
func (d *Driver) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	q := &storage.Query{Prefix: d.prefix + prefix}
	if err := q.SetAttrSelection(listAttrs); err != nil {
		return fmt.Errorf("gcsstore: %w", err)
	}
	it := d.bucket.Objects(ctx, q)
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return d.fail(ctx, err)
		}
		d.bucketSeen.Store(true)
		name, ok := strings.CutPrefix(attrs.Name, d.prefix)
		if !ok {
			continue
		}
		if err := fn(store.ObjectInfo{Name: name, Size: attrs.Size, ModTime: attrs.Updated}); err != nil {
			return err
		}
	}
}

// Delete implements [store.Driver.Delete].
func (d *Driver) Delete(ctx context.Context, name string) error {
	if err := d.bucket.Object(d.prefix + name).Delete(ctx); err != nil {
		return d.objectFailed(ctx, err)
	}
	return nil
}

// Close closes the client if Open made it.
func (d *Driver) Close() error {
	if d.owned {
		return d.client.Close()
	}
	return nil
}
