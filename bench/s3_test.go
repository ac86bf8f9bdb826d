package bench

import (
	"bytes"
	"context"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/statebucket/statebucket/integration/testserver"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store/s3store"
)

// s3Concurrency is the engine's request limit and the baseline's loop
// width alike.
const s3Concurrency = s3store.DefaultMaxConcurrency

// s3Raw is the S3 baseline: PutObject and GetObject of the same bytes by
// a bare SDK client, no hashing of ours, no manifest. Bodies come from
// memory (small) or from a file written before the clock starts (large),
// as the engine's come from its spool.
type s3Raw struct {
	client *s3.Client
	bucket string
	dir    string
	mu     sync.Mutex
	files  map[string]*os.File
}

func (r *s3Raw) Put(ctx context.Context, name string, body io.Reader, size int64) error {
	var rs io.ReadSeeker
	if size <= 4<<20 {
		data, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		rs = bytes.NewReader(data)
	} else {
		r.mu.Lock()
		f := r.files[name]
		r.mu.Unlock()
		rs = io.NewSectionReader(f, 0, size)
	}
	_, err := r.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &r.bucket, Key: aws.String(name), Body: rs, ContentLength: aws.Int64(size)})
	return err
}

func (r *s3Raw) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	out, err := r.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &r.bucket, Key: aws.String(name)})
	if err != nil {
		return nil, err
	}
	return out.Body, nil
}

// prepare writes the large bodies to files before the clock starts.
func (r *s3Raw) prepare(c benchCase) error {
	if c.size <= 4<<20 {
		return nil
	}
	r.files = map[string]*os.File{}
	for i := range c.count {
		f, err := os.Create(filepath.Join(r.dir, rawName(i)[len("raw/00/"):]))
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, newSynthReader(int64(i), c.size)); err != nil {
			return err
		}
		r.files[rawName(i)] = f
	}
	return nil
}

// BenchmarkS3 measures the driver's defaults, under which a 256 MiB blob
// goes up in one PUT whose SHA-256 the server checks.
func BenchmarkS3(b *testing.B) {
	runS3(b, "s3", []benchCase{{count: 10000, size: 4 << 10}, {count: 4, size: 256 << 20}}, nil)
}

// BenchmarkS3Multipart measures the multipart path on the same 256 MiB
// blobs, with the threshold lowered to 64 MiB.
func BenchmarkS3Multipart(b *testing.B) {
	runS3(b, "s3-multipart", []benchCase{{count: 4, size: 256 << 20}}, &s3store.Options{MultipartThreshold: 64 << 20})
}

func runS3(b *testing.B, name string, cases []benchCase, opts *s3store.Options) {
	run(b, s3Target(b, name, cases, opts))
}

// s3Target is the native S3 driver, with opts, on the test MinIO.
func s3Target(b *testing.B, name string, cases []benchCase, opts *s3store.Options) target {
	srv := testserver.S3(b)
	srv.SetEnv(b)
	o := s3store.Options{}
	if opts != nil {
		o = *opts
	}
	o.MaxConcurrency = s3Concurrency
	return target{
		name:        name,
		cases:       cases,
		concurrency: s3Concurrency,
		newRepo: func(b *testing.B) *snapshot.Repo {
			return openRepo(b, srv.URL(srv.NewBucket(b), "repo"), func(ctx context.Context, u *url.URL) (*s3store.Driver, error) {
				return s3store.Open(ctx, u, &o)
			})
		},
		newRaw: func(b *testing.B) rawStore {
			return &s3Raw{client: srv.Client(b, nil), bucket: srv.NewBucket(b), dir: b.TempDir()}
		},
	}
}
