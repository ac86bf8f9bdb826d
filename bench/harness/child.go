package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"time"

	"cloud.google.com/go/storage"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/statebucket/statebucket/integration/testserver"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store/gcsstore"
)

// envChild holds the JSON childSpec of an in-process contender: a
// harness binary started with it set runs that contender and exits.
const envChild = "STATEBUCKET_BENCH_CHILD"

// envCPUProfile, set beside envChild, names the file a child writes its
// CPU profile to, for go tool pprof.
const envCPUProfile = "STATEBUCKET_BENCH_CPUPROFILE"

// envCallTime names the file a statebucket child writes the time of its
// call to (see timeCall).
const envCallTime = "STATEBUCKET_BENCH_CALLTIME"

// envAllocProfile, set beside envChild, names the file a child writes
// its allocation profile to (go tool pprof -sample_index=alloc_space).
const envAllocProfile = "STATEBUCKET_BENCH_ALLOCPROFILE"

// The in-process contenders a child runs.
const (
	kindS3Put     = "s3-put"
	kindS3Get     = "s3-get"
	kindS3GetHash = "s3-get-sha256"
	kindGCSPut    = "gcs-put"
	kindGCSGet    = "gcs-get"
	kindGCSHash   = "gcs-get-sha256"
	kindDirWrite  = "dir-write-fsync"
	kindDirHash   = "dir-read-sha256"
	kindExport    = "statebucket-export"
	kindImport    = "statebucket-import"
)

// childSpec is what a child process runs: Kind on the workload whose
// index is Workload.
type childSpec struct {
	Kind        string `json:"kind"`
	Workload    string `json:"workload"`              // path of the workload.json
	Concurrency int    `json:"concurrency,omitempty"` // bare loops
	Endpoint    string `json:"endpoint,omitempty"`    // S3 or GCS server
	Bucket      string `json:"bucket,omitempty"`      // bare S3 and GCS loops
	Prefix      string `json:"prefix,omitempty"`      // of the object names in Bucket
	Dir         string `json:"dir,omitempty"`         // dir-write-fsync's target
	URL         string `json:"url,omitempty"`         // statebucket's repository
}

// childMain runs the contender the environment names, if any, and exits.
func childMain() {
	raw, ok := os.LookupEnv(envChild)
	if !ok {
		return
	}
	var spec childSpec
	err := json.Unmarshal([]byte(raw), &spec)
	if err == nil {
		err = profiled(os.Getenv(envCPUProfile), os.Getenv(envAllocProfile), func() error { return runChild(context.Background(), spec) })
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", spec.Kind, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// profiled runs f, with the CPU profiled into the file named by cpu and
// its allocations written to the file named by allocs, each unless "".
func profiled(cpu, allocs string, f func() error) error {
	if allocs != "" {
		runtime.MemProfileRate = 64 << 10
	}
	var err error
	if cpu == "" {
		err = f()
	} else {
		var out *os.File
		if out, err = os.Create(cpu); err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(out); err != nil {
			return errors.Join(err, out.Close())
		}
		err = f()
		pprof.StopCPUProfile()
		err = errors.Join(err, out.Close())
	}
	if allocs == "" || err != nil {
		return err
	}
	out, err := os.Create(allocs)
	if err != nil {
		return err
	}
	return errors.Join(pprof.Lookup("allocs").WriteTo(out, 0), out.Close())
}

func runChild(ctx context.Context, spec childSpec) error {
	data, err := os.ReadFile(spec.Workload)
	if err != nil {
		return err
	}
	var w workload
	if err := json.Unmarshal(data, &w); err != nil {
		return fmt.Errorf("workload %s: %w", spec.Workload, err)
	}
	switch spec.Kind {
	case kindExport:
		svc := fileService(&w)
		return timeCall(ctx, spec.URL, func(r *snapshot.Repo) error {
			m, err := snapshot.Export(ctx, r, svc, account, zone, nil)
			if err == nil && m.ID.String() != w.ID {
				err = fmt.Errorf("exported snapshot %s, want the workload's %s", m.ID, w.ID)
			}
			return err
		})
	case kindImport:
		return timeCall(ctx, spec.URL, func(r *snapshot.Repo) error {
			_, err := snapshot.Import(ctx, r, &service{}, account, zone, w.ID, nil)
			return err
		})
	case kindS3Put, kindS3Get, kindS3GetHash:
		srv := &testserver.S3Server{Endpoint: spec.Endpoint, AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"),
			SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY"), Region: os.Getenv("AWS_REGION")}
		var client *s3.Client
		if err := withTB(func(tb *harnessTB) { client = srv.Client(tb, nil) }); err != nil {
			return err
		}
		return eachBlob(ctx, &w, spec, s3Loop{client: client, bucket: spec.Bucket})
	case kindGCSPut, kindGCSGet, kindGCSHash:
		client, err := (&testserver.GCSServer{Endpoint: spec.Endpoint}).NewClient(ctx)
		if err != nil {
			return err
		}
		defer client.Close()
		return eachBlob(ctx, &w, spec, gcsLoop{bucket: client.Bucket(spec.Bucket)})
	case kindDirWrite, kindDirHash:
		return eachBlob(ctx, &w, spec, dirLoop{root: spec.Dir})
	}
	return fmt.Errorf("unknown contender kind %q", spec.Kind)
}

// timeCall opens the repository at url, calls f with it and closes it,
// and writes the seconds that took to the file $STATEBUCKET_BENCH_CALLTIME
// names, if set: statebucket's own time, without the process's start and
// the loading of the workload that the wall time of a run holds too (see
// sample.CallSeconds).
func timeCall(ctx context.Context, url string, f func(r *snapshot.Repo) error) error {
	start := time.Now()
	r, err := snapshot.Open(ctx, url)
	if err != nil {
		return err
	}
	err = errors.Join(f(r), r.Close())
	if path := os.Getenv(envCallTime); path != "" && err == nil {
		err = os.WriteFile(path, []byte(strconv.FormatFloat(time.Since(start).Seconds(), 'f', 6, 64)), 0o644)
	}
	return err
}

// loop is a bare store: one blob written from a file, or read.
type loop interface {
	put(ctx context.Context, name string, f *os.File, size int64) error
	get(ctx context.Context, name string) (io.ReadCloser, error)
}

// eachBlob runs spec's bare loop over every blob of w, spec.Concurrency at
// a time: a PUT (or create + write + fsync) of each file, or a GET (or
// read) into nothing or into SHA-256.
func eachBlob(ctx context.Context, w *workload, spec childSpec, l loop) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(spec.Concurrency, 1))
	upload := spec.Kind == kindS3Put || spec.Kind == kindGCSPut || spec.Kind == kindDirWrite
	hash := spec.Kind == kindS3GetHash || spec.Kind == kindGCSHash || spec.Kind == kindDirHash
	for _, b := range w.Blobs {
		name := path.Join(spec.Prefix, b.Path)
		g.Go(func() error {
			if upload {
				f, err := os.Open(filepath.Join(w.Repo, filepath.FromSlash(b.Path)))
				if err != nil {
					return err
				}
				defer f.Close()
				if err := l.put(gctx, name, f, b.Size); err != nil {
					return fmt.Errorf("put %q: %w", name, err)
				}
				return nil
			}
			rc, err := l.get(gctx, name)
			if err != nil {
				return fmt.Errorf("get %q: %w", name, err)
			}
			defer rc.Close()
			var dst io.Writer = io.Discard
			if hash {
				dst = sha256.New()
			}
			n, err := io.Copy(dst, rc)
			if err == nil && n != b.Size {
				err = fmt.Errorf("%d bytes, want %d", n, b.Size)
			}
			if err != nil {
				return fmt.Errorf("get %q: %w", name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// s3Loop is the bare aws-sdk-go-v2 loop: PutObject from the file, with
// the SDK's defaults, and GetObject.
type s3Loop struct {
	client *s3.Client
	bucket string
}

func (l s3Loop) put(ctx context.Context, name string, f *os.File, size int64) error {
	_, err := l.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &l.bucket, Key: aws.String(name), Body: f, ContentLength: aws.Int64(size)})
	return err
}

func (l s3Loop) get(ctx context.Context, name string) (io.ReadCloser, error) {
	out, err := l.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &l.bucket, Key: aws.String(name)})
	if err != nil {
		return nil, err
	}
	return out.Body, nil
}

// gcsLoop is the bare cloud.google.com/go/storage loop. Each Writer's
// ChunkSize is gcsstore.DefaultChunkSize (the client's own default), or
// just past the object's size for a smaller one: one request for it,
// without the client buffering a whole chunk for each small object;
// resumable chunks of that size otherwise. (gcsstore sends objects of up
// to its SingleRequestMax in one streamed request instead.)
type gcsLoop struct{ bucket *storage.BucketHandle }

func (l gcsLoop) put(ctx context.Context, name string, f *os.File, size int64) error {
	w := l.bucket.Object(name).NewWriter(ctx)
	w.ChunkSize = int(min(size+1, gcsstore.DefaultChunkSize))
	if _, err := io.Copy(w, f); err != nil {
		return errors.Join(err, w.Close())
	}
	return w.Close()
}

func (l gcsLoop) get(ctx context.Context, name string) (io.ReadCloser, error) {
	return l.bucket.Object(name).NewReader(ctx)
}

// dirLoop is the bare local-directory loop: create, write, fsync and
// close each file; open and read it.
type dirLoop struct{ root string }

func (l dirLoop) put(_ context.Context, name string, src *os.File, _ int64) error {
	p := filepath.Join(l.root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, src)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

func (l dirLoop) get(_ context.Context, name string) (io.ReadCloser, error) {
	return os.Open(filepath.Join(l.root, filepath.FromSlash(name)))
}
