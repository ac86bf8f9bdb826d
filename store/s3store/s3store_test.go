package s3store_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/integration/faults"
	"github.com/statebucket/statebucket/integration/testserver"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/s3store"
	"github.com/statebucket/statebucket/store/storetest"
)

func TestMain(m *testing.M) { testserver.Main(m) }

func TestConformance(t *testing.T) {
	srv := testserver.S3(t)
	client := srv.Client(t, nil)
	storetest.RunDriverTests(t, func(t *testing.T) store.Driver {
		return s3store.New(client, srv.NewBucket(t), "some/prefix", nil)
	})
}

// TestConformanceMultipart runs the suite with every object from 5 MiB up
// uploaded in parts.
func TestConformanceMultipart(t *testing.T) {
	srv := testserver.S3(t)
	client := srv.Client(t, nil)
	opts := &s3store.Options{PartSize: s3store.MinPartSize, MultipartThreshold: s3store.MinPartSize}
	storetest.RunDriverTests(t, func(t *testing.T) store.Driver {
		return s3store.New(client, srv.NewBucket(t), "", opts)
	})
}

// tag is the name of the object most tests below use.
const tag = "tags/t.json"

// open returns a Store with stOpts over a driver made by s3store.Open for
// a new bucket of srv, with opts (whose Credentials it sets).
func open(t *testing.T, srv *testserver.S3Server, opts s3store.Options, stOpts *store.Options) *store.Store {
	t.Helper()
	u, err := url.Parse(srv.URL(srv.NewBucket(t), "repo"))
	require.NoError(t, err)
	opts.Credentials = srv.Credentials()
	drv, err := s3store.Open(t.Context(), u, &opts)
	require.NoError(t, err)
	st := store.New(drv, store.Redact(u), stOpts)
	t.Cleanup(func() { st.Close() })
	return st
}

// TestOpenEnvironment opens URLs whose credentials, and region and
// endpoint when they are missing, come from the environment, as the SDK
// reads it.
func TestOpenEnvironment(t *testing.T) {
	srv := testserver.S3(t)
	srv.SetEnv(t)
	raw := srv.Client(t, nil)
	for _, tc := range []struct {
		name string
		url  func(bucket string) string
		env  []string
	}{
		{"EndpointInURL", func(bucket string) string { return srv.URL(bucket, "repo") }, nil},
		{"EndpointInEnvironment", func(bucket string) string { return "s3://" + bucket + "/repo" }, []string{"AWS_ENDPOINT_URL_S3", srv.Endpoint}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != nil {
				t.Setenv(tc.env[0], tc.env[1])
			}
			bucket := srv.NewBucket(t)
			u, err := url.Parse(tc.url(bucket))
			require.NoError(t, err)
			drv, err := s3store.Open(t.Context(), u, nil)
			require.NoError(t, err)
			defer drv.Close()
			st := store.New(drv, store.Redact(u), nil)
			require.NoError(t, st.PutBytes(t.Context(), tag, []byte("hello"), store.PutOptions{}))

			out, err := raw.GetObject(t.Context(), &s3.GetObjectInput{Bucket: &bucket, Key: aws.String("repo/" + tag)})
			require.NoError(t, err)
			defer out.Body.Close()
			data, err := io.ReadAll(out.Body)
			require.NoError(t, err)
			assert.Equal(t, "hello", string(data))
		})
	}
}

func TestMissingBucket(t *testing.T) {
	srv := testserver.S3(t)
	bucket := "statebucket-missing-" + fmt.Sprint(time.Now().UnixNano())
	st := store.New(s3store.New(srv.Client(t, nil), bucket, "p", nil), "s3://"+bucket+"/p", nil)
	for op, err := range everyOperation(t, st) {
		require.ErrorIs(t, err, core.ErrBucketNotFound, op)
		assert.NotErrorIs(t, err, core.ErrNotFound, op)
		assert.Contains(t, err.Error(), fmt.Sprintf("bucket %q does not exist at %s: create it or fix the URL", bucket, srv.Endpoint), op)
	}
}

func TestWrongSecret(t *testing.T) {
	srv := testserver.S3(t)
	bucket := srv.NewBucket(t)
	const secret = "not-the-secret-0123456789"
	client := s3.New(s3.Options{
		BaseEndpoint: aws.String(srv.Endpoint),
		Region:       srv.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(srv.AccessKey, secret, ""),
		UsePathStyle: true,
	})
	st := store.New(s3store.New(client, bucket, "", nil), "s3://"+bucket, nil)
	for op, err := range everyOperation(t, st) {
		require.ErrorIs(t, err, core.ErrPermission, op)
		assert.Contains(t, err.Error(), "check the credentials", op)
		assert.NotContains(t, err.Error(), secret, op)
		assert.NotContains(t, err.Error(), srv.SecretKey, op)
	}
}

func TestNoServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	endpoint := "http://" + l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now
	client := s3.New(s3.Options{
		BaseEndpoint:     aws.String(endpoint),
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("id", "secret", ""),
		UsePathStyle:     true,
		RetryMaxAttempts: 1,
	})
	st := store.New(s3store.New(client, "bucket", "", nil), "s3://bucket", nil)
	for op, err := range everyOperation(t, st) {
		require.Error(t, err, op)
		assert.Contains(t, err.Error(), "s3store: cannot connect to "+endpoint+": check the endpoint and that the server is running", op)
	}
}

// everyOperation runs each operation of st on tag and returns its error,
// by operation.
func everyOperation(t *testing.T, st *store.Store) map[string]error {
	ctx := t.Context()
	_, statErr := st.Stat(ctx, tag)
	_, getErr := st.Get(ctx, tag)
	return map[string]error{
		"put":    st.PutBytes(ctx, tag, []byte("x"), store.PutOptions{}),
		"stat":   statErr,
		"get":    getErr,
		"list":   st.List(ctx, "", func(store.ObjectInfo) error { return nil }),
		"delete": st.Delete(ctx, tag),
	}
}

// TestMultipart uploads an object in five parts.
func TestMultipart(t *testing.T) {
	srv := testserver.S3(t)
	client := srv.Client(t, nil)
	bucket := srv.NewBucket(t)
	drv := s3store.New(client, bucket, "mp", &s3store.Options{PartSize: 5 << 20, MultipartThreshold: 8 << 20})
	st := store.New(drv, "s3://"+bucket+"/mp", nil)
	ctx := t.Context()
	data := randomBytes(1, 23<<20)
	sum := sha256.Sum256(data)
	name := fmt.Sprintf("blobs/%x", sum)

	wrong := sha256.Sum256([]byte("other"))
	err := st.PutBytes(ctx, name, data, store.PutOptions{SHA256: wrong[:], CreateOnly: true})
	require.ErrorIs(t, err, core.ErrChecksumMismatch)
	_, err = st.Stat(ctx, name)
	require.ErrorIs(t, err, core.ErrNotFound)

	require.NoError(t, st.PutBytes(ctx, name, data, store.PutOptions{SHA256: sum[:], CreateOnly: true}))
	got, err := st.GetBytes(ctx, name, 1<<30)
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got), "content read back differs")

	err = st.PutBytes(ctx, name, randomBytes(2, 23<<20), store.PutOptions{CreateOnly: true})
	require.ErrorIs(t, err, core.ErrExists)
	got, err = st.GetBytes(ctx, name, 1<<30)
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got), "a refused create-only upload changed the object")

	uploads, err := client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket})
	require.NoError(t, err)
	assert.Empty(t, uploads.Uploads, "failed uploads were not aborted")
}

// TestTransientErrors answers every request with 503 SlowDown, or breaks
// its connection: once the client's retryer gives up, every operation
// fails with an error the store layer retries (core.ErrTransient).
func TestTransientErrors(t *testing.T) {
	srv := testserver.S3(t)
	for _, kind := range []faults.Kind{faults.SlowDown, faults.ResetBeforeSend} {
		t.Run(kind.String(), func(t *testing.T) {
			rt := &faults.RoundTripper{Rate: 1, Kinds: []faults.Kind{kind}}
			st := open(t, srv, s3store.Options{Transport: rt, Retryer: testserver.Retryer(2, time.Millisecond)}, &store.Options{Retries: -1})
			for op, err := range everyOperation(t, st) {
				require.ErrorIs(t, err, core.ErrTransient, op)
				assert.True(t, store.IsTransient(err), op)
				assert.True(t, errors.Is(err, faults.ErrInjected) || strings.Contains(err.Error(), faults.SlowDownMessage), "%s: not the injected cause: %v", op, err)
			}
		})
	}
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)}).Read(b)
	return b
}

// loseCompletion is a transport that loses the answer to the first
// CompleteMultipartUpload after the server has applied it.
type loseCompletion struct {
	base http.RoundTripper
	lost atomic.Bool
}

func (l *loseCompletion) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(req)
	if err != nil || req.Method != http.MethodPost || !req.URL.Query().Has("uploadId") || !l.lost.CompareAndSwap(false, true) {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil, &faults.Error{Kind: faults.ResetAfterSend, Err: syscall.ECONNRESET}
}

// TestLostCompletion loses the answer to a completion that landed: its
// retry fails, but the Put succeeds, create-only or not.
func TestLostCompletion(t *testing.T) {
	srv := testserver.S3(t)
	for _, createOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("CreateOnly=%v", createOnly), func(t *testing.T) {
			rt := &loseCompletion{base: s3store.NewTransport(4)}
			st := open(t, srv, s3store.Options{Transport: rt, PartSize: 5 << 20, MultipartThreshold: 5 << 20}, nil)
			data := randomBytes(3, 11<<20)
			require.NoError(t, st.PutBytes(t.Context(), tag, data, store.PutOptions{CreateOnly: createOnly}))
			require.True(t, rt.lost.Load(), "no completion was lost")
			got, err := st.GetBytes(t.Context(), tag, 1<<30)
			require.NoError(t, err)
			require.True(t, bytes.Equal(data, got), "content read back differs")
			err = st.PutBytes(t.Context(), tag, data, store.PutOptions{CreateOnly: true})
			require.ErrorIs(t, err, core.ErrExists, "a second writer")
		})
	}
}

// corruptUploads is a transport that flips a bit in the middle of the
// body of every upload (PUT) it carries, as a faulty network card or proxy
// might, after checking that the request does not sign its body: the
// server must then refuse it by its checksum header alone.
type corruptUploads struct {
	base      http.RoundTripper
	corrupted atomic.Int64
	signed    atomic.Int64 // uploads whose body is signed, or without a checksum
}

func (c *corruptUploads) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPut || req.ContentLength <= 0 {
		return c.base.RoundTrip(req)
	}
	checksummed := req.Header.Get("X-Amz-Checksum-Sha256") != "" || req.Header.Get("X-Amz-Checksum-Crc32c") != ""
	if req.Header.Get("X-Amz-Content-Sha256") != "UNSIGNED-PAYLOAD" || !checksummed {
		c.signed.Add(1)
	}
	c.corrupted.Add(1)
	req = req.Clone(req.Context())
	req.Body = &flipReader{rc: req.Body, at: req.ContentLength / 2}
	return c.base.RoundTrip(req)
}

// flipReader flips the lowest bit of the byte at offset at.
type flipReader struct {
	rc  io.ReadCloser
	at  int64
	off int64
}

func (f *flipReader) Read(p []byte) (int, error) {
	n, err := f.rc.Read(p)
	if i := f.at - f.off; i >= 0 && i < int64(n) {
		p[i] ^= 1
	}
	f.off += int64(n)
	return n, err
}

func (f *flipReader) Close() error { return f.rc.Close() }

// TestCorruptedInTransit flips a bit of every upload's body on its way to
// the server, which signs none (UNSIGNED-PAYLOAD): the server refuses each
// by its checksum, x-amz-checksum-sha256 when the content's SHA-256 is
// known and CRC32C otherwise and for parts, and nothing is stored.
func TestCorruptedInTransit(t *testing.T) {
	srv := testserver.S3(t)
	for _, tc := range []struct {
		name string
		size int
	}{
		{"PutObject", 100 << 10},
		{"Multipart", 11 << 20},
	} {
		for _, withSHA256 := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/SHA256=%v", tc.name, withSHA256), func(t *testing.T) {
				rt := &corruptUploads{base: s3store.NewTransport(4)}
				bucket := srv.NewBucket(t)
				client := srv.Client(t, &testserver.ClientOptions{Transport: rt})
				st := store.New(s3store.New(client, bucket, "", &s3store.Options{PartSize: 5 << 20, MultipartThreshold: 5 << 20}), "s3://"+bucket, nil)
				data := randomBytes(5, tc.size)
				var opts store.PutOptions
				if withSHA256 {
					sum := sha256.Sum256(data)
					opts.SHA256 = sum[:]
				}
				err := st.PutBytes(t.Context(), tag, data, opts)
				require.ErrorIs(t, err, core.ErrChecksumMismatch)
				assert.Positive(t, rt.corrupted.Load(), "no upload was corrupted")
				assert.Zero(t, rt.signed.Load(), "uploads signed their body or carried no checksum")
				_, err = st.Stat(t.Context(), tag)
				require.ErrorIs(t, err, core.ErrNotFound)
				uploads, err := srv.Client(t, nil).ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: &bucket})
				require.NoError(t, err)
				assert.Empty(t, uploads.Uploads, "the failed upload was not aborted")
			})
		}
	}
}
