package testserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Environment variables that point the tests at a running S3 server.
const (
	EnvS3Endpoint  = "STATEBUCKET_S3_ENDPOINT"
	EnvS3AccessKey = "STATEBUCKET_S3_ACCESS_KEY"
	EnvS3SecretKey = "STATEBUCKET_S3_SECRET_KEY"
	EnvS3Region    = "STATEBUCKET_S3_REGION"
)

// DefaultRegion is the region used when STATEBUCKET_S3_REGION is not set.
const DefaultRegion = "us-east-1"

// S3Server is an S3-compatible server the tests may use: either a MinIO
// started by this package or the one the environment names. Its methods
// are safe for concurrent use.
type S3Server struct {
	Endpoint  string // base URL, such as http://127.0.0.1:40123
	AccessKey string
	SecretKey string
	Region    string

	adminOnce sync.Once
	admin     *s3.Client
	dataDir   string // of the MinIO this package started; "" otherwise
}

var s3Server lazy[*S3Server]

// S3 returns the test binary's S3 server, starting MinIO on first use
// unless STATEBUCKET_S3_ENDPOINT names one. If there is none, it skips the
// test, or fails it when CI is true, saying how to get one.
func S3(t testing.TB) *S3Server {
	t.Helper()
	return s3Server.get(t, startS3)
}

func startS3() (*S3Server, error) {
	if endpoint := os.Getenv(EnvS3Endpoint); endpoint != "" {
		return s3FromEnv(endpoint)
	}
	bin, err := findBinary("minio")
	if err != nil {
		return nil, &unavailableError{fmt.Sprintf("testserver: no S3 server: %v, and %s is not set; "+
			"run `make tools` to build MinIO into ./bin, or set %s (with %s and %s) "+
			"to use a running server, such as the one `docker compose up -d minio` starts",
			err, EnvS3Endpoint, EnvS3Endpoint, EnvS3AccessKey, EnvS3SecretKey)}
	}
	return retryPortClash(func() (*S3Server, error) { return startMinIO(bin) })
}

func s3FromEnv(endpoint string) (*S3Server, error) {
	srv := &S3Server{
		Endpoint:  endpoint,
		AccessKey: os.Getenv(EnvS3AccessKey),
		SecretKey: os.Getenv(EnvS3SecretKey),
		Region:    os.Getenv(EnvS3Region),
	}
	if srv.AccessKey == "" || srv.SecretKey == "" {
		return nil, fmt.Errorf("testserver: %s is set, but %s and %s must be set too", EnvS3Endpoint, EnvS3AccessKey, EnvS3SecretKey)
	}
	if srv.Region == "" {
		srv.Region = DefaultRegion
	}
	return srv, nil
}

func startMinIO(bin string) (*S3Server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, fmt.Errorf("testserver: minio: %w", err)
	}
	console, err := freeAddr()
	if err != nil {
		return nil, fmt.Errorf("testserver: minio: %w", err)
	}
	srv := &S3Server{
		Endpoint:  "http://" + addr,
		AccessKey: "sb" + randomHex(9),
		SecretKey: randomHex(20),
		Region:    DefaultRegion,
	}
	args := func(dir string) []string {
		return []string{"server", dir + "/data", "--address", addr, "--console-address", console}
	}
	env := []string{
		"MINIO_ROOT_USER=" + srv.AccessKey,
		"MINIO_ROOT_PASSWORD=" + srv.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	}
	p, err := startProcess("minio", bin, args, env, srv.Endpoint+"/minio/health/ready")
	if err != nil {
		return nil, err
	}
	register(p)
	srv.dataDir = filepath.Join(p.dir, "data")
	return srv, nil
}

// DataDir returns the data directory of the MinIO this package started,
// or "" for a server the environment names.
func (s *S3Server) DataDir() string { return s.dataDir }

// PurgeTrash frees the disk space of the objects and buckets deleted so
// far. MinIO moves what is deleted into a trash folder of its data
// directory (.minio.sys/tmp/.trash) and frees it later, at its own pace:
// a benchmark that writes and deletes many gigabytes would fill the disk
// first. It removes what the trash holds, on the MinIO this package
// started only; for a server the environment names it does nothing.
func (s *S3Server) PurgeTrash() error {
	if s.dataDir == "" {
		return nil
	}
	trash := filepath.Join(s.dataDir, ".minio.sys", "tmp", ".trash")
	entries, err := os.ReadDir(trash)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("testserver: purge MinIO's trash: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(trash, e.Name())); err != nil {
			return fmt.Errorf("testserver: purge MinIO's trash: %w", err)
		}
	}
	return nil
}

// Credentials returns a provider of the server's static credentials.
func (s *S3Server) Credentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, "")
}

// URL returns the s3:// URL of the repository under prefix in bucket on
// the server, with its endpoint and region. The credentials are not in
// it: see [S3Server.Env].
func (s *S3Server) URL(bucket, prefix string) string {
	u := url.URL{Scheme: "s3", Host: bucket, Path: "/" + prefix, RawQuery: url.Values{
		"endpoint": {s.Endpoint},
		"region":   {s.Region},
	}.Encode()}
	return u.String()
}

// Env returns the environment variables that make the AWS SDK's standard
// chain use the server's credentials and region, and nothing from the
// shared configuration files: for a child process, such as the CLI, or
// for [S3Server.SetEnv].
func (s *S3Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_SESSION_TOKEN=",
		"AWS_REGION=" + s.Region,
		"AWS_PROFILE=",
		"AWS_CONFIG_FILE=" + os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
		// Never ask the EC2 instance metadata service: tests talk to
		// loopback only.
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// SetEnv sets [S3Server.Env] in the test's process until the test ends
// (so the test, and its parents, may not be parallel).
func (s *S3Server) SetEnv(t testing.TB) {
	t.Helper()
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// ClientOptions modify the client [S3Server.Client] returns.
type ClientOptions struct {
	// Transport carries the client's requests; nil means a pooled
	// transport of the SDK's.
	Transport http.RoundTripper
	// Retryer makes the client's retryer; nil means the SDK's standard one.
	Retryer func() aws.Retryer
}

// Client returns a client of the server, with its credentials, region and
// path-style addressing.
func (s *S3Server) Client(t testing.TB, opts *ClientOptions) *s3.Client {
	t.Helper()
	if opts == nil {
		opts = &ClientOptions{}
	}
	var httpClient aws.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns = 256
		tr.MaxIdleConnsPerHost = 256
	})
	if opts.Transport != nil {
		httpClient = &http.Client{Transport: opts.Transport}
	}
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(s.Endpoint),
		Region:       s.Region,
		Credentials:  s.Credentials(),
		UsePathStyle: true,
		HTTPClient:   httpClient,
		Retryer:      retryer(opts.Retryer),
	})
}

func retryer(newRetryer func() aws.Retryer) aws.Retryer {
	if newRetryer == nil {
		return nil // s3.New resolves the default
	}
	return newRetryer()
}

// NewBucket creates a bucket with a unique name and returns the name.
// When the test ends, the bucket is emptied and deleted.
func (s *S3Server) NewBucket(t testing.TB) string {
	t.Helper()
	// A MinIO that answers ready may still refuse requests for a moment
	// ("Server not initialized yet", 503): try for longer than the SDK's 3.
	s.adminOnce.Do(func() { s.admin = s.Client(t, &ClientOptions{Retryer: Retryer(10, 2*time.Second)}) })
	return newBucket(t, s.Endpoint, func(ctx context.Context, name string) error {
		_, err := s.admin.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
		return err
	}, s.removeBucket)
}

// removeBucket deletes the bucket name and everything in it.
func (s *S3Server) removeBucket(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bucket := aws.String(name)
	uploads, err := s.admin.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: bucket})
	if err != nil {
		return err
	}
	for _, u := range uploads.Uploads {
		if _, err := s.admin.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: bucket, Key: u.Key, UploadId: u.UploadId}); err != nil {
			return err
		}
	}
	pages := s3.NewListObjectsV2Paginator(s.admin, &s3.ListObjectsV2Input{Bucket: bucket})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return err
		}
		if len(page.Contents) == 0 {
			continue
		}
		ids := make([]types.ObjectIdentifier, len(page.Contents))
		for i, o := range page.Contents {
			ids[i] = types.ObjectIdentifier{Key: o.Key}
		}
		out, err := s.admin.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: bucket, Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		if err != nil {
			return err
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return fmt.Errorf("delete %q: %s: %s", aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message))
		}
	}
	_, err = s.admin.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: bucket})
	return err
}

// Retryer returns a retryer maker for tests that fail requests on purpose:
// the SDK's standard retryer with up to attempts attempts, backoff capped at
// maxBackoff, and no client-side retry quota (which injected faults would
// drain).
func Retryer(attempts int, maxBackoff time.Duration) func() aws.Retryer {
	return func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = attempts
			o.MaxBackoff = maxBackoff
			o.RateLimiter = ratelimit.None
		})
	}
}
