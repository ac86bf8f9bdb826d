package testserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
)

// EnvGCSEndpoint points the tests at a running GCS emulator, such as
// http://127.0.0.1:4443 (the fake-gcs-server of docker-compose.yml).
const EnvGCSEndpoint = "STATEBUCKET_GCS_ENDPOINT"

// EnvEmulatorHost is the variable through which the GCS client library
// (and so gcsstore's gs:// URLs) finds an emulator.
const EnvEmulatorHost = "STORAGE_EMULATOR_HOST"

// gcsProject is the project the tests create buckets in; emulators accept
// any.
const gcsProject = "statebucket-test"

// GCSServer is a GCS emulator the tests may use: either a fake-gcs-server
// started by this package or the one the environment names. Its methods
// are safe for concurrent use.
type GCSServer struct {
	Endpoint string // base URL, such as http://127.0.0.1:40123

	adminOnce sync.Once
	admin     *storage.Client
	adminErr  error
}

var gcsServer lazy[*GCSServer]

// GCS returns the test binary's GCS emulator, starting fake-gcs-server on
// first use unless STATEBUCKET_GCS_ENDPOINT names one. If there is none,
// it skips the test, or fails it when CI is true, saying how to get one.
func GCS(t testing.TB) *GCSServer {
	t.Helper()
	return gcsServer.get(t, startGCS)
}

func startGCS() (*GCSServer, error) {
	if endpoint := os.Getenv(EnvGCSEndpoint); endpoint != "" {
		u, err := url.Parse(endpoint)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("testserver: %s=%q: want a base URL such as http://127.0.0.1:4443", EnvGCSEndpoint, endpoint)
		}
		return &GCSServer{Endpoint: strings.TrimRight(endpoint, "/")}, nil
	}
	bin, err := findBinary("fake-gcs-server")
	if err != nil {
		return nil, &unavailableError{fmt.Sprintf("testserver: no GCS emulator: %v, and %s is not set; "+
			"run `make tools` to build fake-gcs-server into ./bin, or set %s "+
			"to use a running one, such as the one `docker compose up -d fake-gcs-server` starts (http://127.0.0.1:4443)",
			err, EnvGCSEndpoint, EnvGCSEndpoint)}
	}
	return retryPortClash(func() (*GCSServer, error) { return startFakeGCS(bin) })
}

// startFakeGCS runs fake-gcs-server over plain HTTP on a free loopback
// port, keeping its objects in files under its temporary directory. The
// public host is the server's own address, so that the client library's
// downloads (XML API: GET /bucket/object) reach it; the external URL is
// where resumable uploads continue.
func startFakeGCS(bin string) (*GCSServer, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, fmt.Errorf("testserver: fake-gcs-server: %w", err)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("testserver: fake-gcs-server: %w", err)
	}
	srv := &GCSServer{Endpoint: "http://" + addr}
	args := func(dir string) []string {
		return []string{
			"-backend", "filesystem",
			"-filesystem-root", dir + "/data",
			"-data", dir + "/seed", // absent: no objects to preload
			"-scheme", "http",
			"-host", host,
			"-port", port,
			"-public-host", addr,
			"-external-url", srv.Endpoint,
			"-log-level", "warn",
		}
	}
	p, err := startProcess("fake-gcs-server", bin, args, nil, srv.Endpoint+"/_internal/healthcheck")
	if err != nil {
		return nil, err
	}
	register(p)
	return srv, nil
}

// URL returns the gs:// URL of the repository under prefix in bucket. The
// emulator is not in it: see [GCSServer.Env].
func (s *GCSServer) URL(bucket, prefix string) string {
	return (&url.URL{Scheme: "gs", Host: bucket, Path: "/" + prefix}).String()
}

// Env returns the environment variables that point the GCS client
// library at the emulator, without credentials: for a child process, such
// as the CLI, or for [GCSServer.SetEnv].
func (s *GCSServer) Env() []string {
	return []string{EnvEmulatorHost + "=" + s.Endpoint}
}

// SetEnv sets [GCSServer.Env] in the test's process until the test ends
// (so the test, and its parents, may not be parallel).
func (s *GCSServer) SetEnv(t testing.TB) {
	t.Helper()
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// NewClient returns a client of the emulator that does not depend on the
// environment: no credentials, the emulator's endpoint for both the JSON
// API and downloads. Close it when done.
func (s *GCSServer) NewClient(ctx context.Context, opts ...option.ClientOption) (*storage.Client, error) {
	base := []option.ClientOption{option.WithoutAuthentication(), option.WithEndpoint(s.Endpoint + "/storage/v1/")}
	return storage.NewClient(ctx, append(base, opts...)...)
}

// Client returns a client of the emulator (see [GCSServer.NewClient]),
// closed when the test ends.
func (s *GCSServer) Client(t testing.TB, opts ...option.ClientOption) *storage.Client {
	t.Helper()
	c, err := s.NewClient(context.Background(), opts...)
	if err != nil {
		t.Fatalf("testserver: GCS client of %s: %v", s.Endpoint, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// NewBucket creates a bucket with a unique name and returns the name.
// When the test ends, the bucket is emptied and deleted.
func (s *GCSServer) NewBucket(t testing.TB) string {
	t.Helper()
	s.adminOnce.Do(func() { s.admin, s.adminErr = s.NewClient(context.Background()) })
	if s.adminErr != nil {
		t.Fatalf("testserver: GCS client of %s: %v", s.Endpoint, s.adminErr)
	}
	return newBucket(t, s.Endpoint, func(ctx context.Context, name string) error {
		return s.admin.Bucket(name).Create(ctx, gcsProject, nil)
	}, s.removeBucket)
}

// ObjectNames returns the names of the objects of bucket under prefix, in
// order.
func (s *GCSServer) ObjectNames(t testing.TB, bucket, prefix string) []string {
	t.Helper()
	var names []string
	it := s.Client(t).Bucket(bucket).Objects(context.Background(), &storage.Query{Prefix: prefix})
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return names
		}
		if err != nil {
			t.Fatalf("testserver: list %s/%s at %s: %v", bucket, prefix, s.Endpoint, err)
		}
		names = append(names, attrs.Name)
	}
}

// removeBucket deletes the bucket name and everything in it.
func (s *GCSServer) removeBucket(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := s.admin.Bucket(name)
	it := b.Objects(ctx, nil)
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return err
		}
		if err := b.Object(attrs.Name).Delete(ctx); err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
			return err
		}
	}
	return b.Delete(ctx)
}
