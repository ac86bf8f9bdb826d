package integration_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/integration/faults"
	"github.com/statebucket/statebucket/integration/testserver"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/s3store"
)

func TestMain(m *testing.M) { testserver.Main(m) }

const acct, region = "123456789012", "eu-west-1"

// TestS3Repository runs the end-to-end suite over s3:// URLs, with the
// standard credential chain.
func TestS3Repository(t *testing.T) { runRepositorySuite(t, testserver.S3(t)) }

// openFaulty opens a repository whose every request passes through rt.
// The retryer allows 12 attempts: under `go test ./...`, with MinIO
// sharing two cores with the other test packages, the default 8 ran out
// for one request in several runs (the last attempt's error was injected;
// the earlier ones were not recorded), which 20 % of independent failures
// alone would do about once in a thousand runs.
func openFaulty(t *testing.T, srv *testserver.S3Server, bucket string, rt *faults.RoundTripper) *snapshot.Repo {
	t.Helper()
	u, err := url.Parse(srv.URL(bucket, "repo"))
	require.NoError(t, err)
	drv, err := s3store.Open(t.Context(), u, &s3store.Options{Transport: rt, Credentials: srv.Credentials(), Retryer: testserver.Retryer(12, time.Second)})
	return repoOver(t, u, drv, err)
}

// TestS3FaultsRoundTrip fails one request in five (503 SlowDown,
// connection resets before and after the request lands, truncated
// bodies): export and import still round-trip byte-exact.
func TestS3FaultsRoundTrip(t *testing.T) {
	srv := testserver.S3(t)
	bucket := srv.NewBucket(t)
	rt := &faults.RoundTripper{Base: s3store.NewTransport(32), Rate: 0.2, Seed: 2026}
	repo := openFaulty(t, srv, bucket, rt)
	roundTripUnderFaults(t, repo, rt, func() (*snapshot.Repo, error) {
		srv.SetEnv(t)
		return snapshot.Open(t.Context(), srv.URL(bucket, "repo"))
	})
}

// TestS3FaultsEverything fails every request: the export fails within its
// deadline, the error wraps the last cause, and no manifest exists.
func TestS3FaultsEverything(t *testing.T) {
	srv := testserver.S3(t)
	bucket := srv.NewBucket(t)
	rt := &faults.RoundTripper{Base: s3store.NewTransport(8), Rate: 1, Seed: 1}
	repo := openFaulty(t, srv, bucket, rt)

	src := coretest.NewObjectStore()
	_, _, err := coretest.Fill(t.Context(), src, acct, region, coretest.FillOptions{Objects: 20, Seed: 1})
	require.NoError(t, err)
	const deadline = 3 * time.Second
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	start := time.Now()
	_, err = snapshot.Export(ctx, repo, src, acct, region, nil)
	elapsed := time.Since(start)
	require.Error(t, err)
	assert.Less(t, elapsed, deadline+2*time.Second, "export outlived its deadline")
	assert.True(t, errors.Is(err, faults.ErrInjected) || strings.Contains(err.Error(), faults.SlowDownMessage),
		"error does not carry the last cause: %v", err)

	srv.SetEnv(t)
	clean, err := snapshot.Open(t.Context(), srv.URL(bucket, "repo"))
	require.NoError(t, err)
	defer clean.Close()
	ms, err := clean.List(t.Context(), snapshot.Filter{})
	require.NoError(t, err)
	assert.Empty(t, ms, "a failed export left a manifest")
}

// TestS3MissingBucketAndCredentials: errors name the bucket and never
// hold the secret.
func TestS3MissingBucketAndCredentials(t *testing.T) {
	srv := testserver.S3(t)
	srv.SetEnv(t)
	ctx := t.Context()
	repo, err := snapshot.Open(ctx, srv.URL("no-such-bucket-here", "repo"))
	require.NoError(t, err)
	defer repo.Close()
	_, err = snapshot.Export(ctx, repo, coretest.NewObjectStore(), acct, region, nil)
	require.ErrorIs(t, err, core.ErrBucketNotFound)
	assert.Contains(t, err.Error(), `"no-such-bucket-here"`)

	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value")
	repo2, err := snapshot.Open(ctx, srv.URL(srv.NewBucket(t), "repo"))
	require.NoError(t, err)
	defer repo2.Close()
	_, err = repo2.List(ctx, snapshot.Filter{})
	require.ErrorIs(t, err, core.ErrPermission)
	assert.NotContains(t, err.Error(), "wrong-secret-value")
}

// TestCLIDemoOverS3 runs `statebucket demo --repo s3://…` as a user would.
func TestCLIDemoOverS3(t *testing.T) {
	srv := testserver.S3(t)
	demoTwice(t, srv.URL(srv.NewBucket(t), "demo"), srv.Env())
}

func sameState(t *testing.T, a, b *coretest.ObjectStore) error {
	t.Helper()
	va, vb := &coretest.MemoryVisitor{}, &coretest.MemoryVisitor{}
	viewA, err := a.SnapshotWithBlobs(t.Context(), acct, region, va)
	if err != nil {
		return err
	}
	viewB, err := b.SnapshotWithBlobs(t.Context(), acct, region, vb)
	if err != nil {
		return err
	}
	assert.Equal(t, viewA, viewB)
	assert.Equal(t, va.Blobs(), vb.Blobs())
	return nil
}

// lostManifestAnswer lands the first PUT of a manifest on the server and
// then reports a connection reset, as when a response is lost on the way
// back; the SDK retries the PUT, which then meets its own manifest.
type lostManifestAnswer struct {
	base http.RoundTripper
	puts atomic.Int32
}

func (l *lostManifestAnswer) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPut || !strings.HasSuffix(req.URL.Path, "/manifest.json") {
		return l.base.RoundTrip(req)
	}
	resp, err := l.base.RoundTrip(req)
	if l.puts.Add(1) > 1 || err != nil {
		return resp, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil, &faults.Error{Kind: faults.ResetAfterSend, Err: syscall.ECONNRESET}
}

// TestS3RetriedCommitIsSuccess: the create-only manifest PUT whose first
// try landed answers 412 on its retry; the export reads the manifest back,
// finds its own, and succeeds.
func TestS3RetriedCommitIsSuccess(t *testing.T) {
	srv := testserver.S3(t)
	u, err := url.Parse(srv.URL(srv.NewBucket(t), "repo"))
	require.NoError(t, err)
	rt := &lostManifestAnswer{base: s3store.NewTransport(8)}
	drv, err := s3store.Open(t.Context(), u, &s3store.Options{Transport: rt, Credentials: srv.Credentials()})
	require.NoError(t, err)
	repo := snapshot.New(store.New(drv, store.Redact(u), nil))
	defer repo.Close()

	src := coretest.NewObjectStore()
	_, _, err = coretest.Fill(t.Context(), src, acct, region, coretest.FillOptions{Objects: 10, Seed: 4})
	require.NoError(t, err)
	m, err := snapshot.Export(t.Context(), repo, src, acct, region, nil)
	require.NoError(t, err)
	assert.Equal(t, int32(2), rt.puts.Load(), "the manifest PUT was not retried")
	ms, err := repo.List(t.Context(), snapshot.Filter{})
	require.NoError(t, err)
	require.Len(t, ms, 1)
	assert.Equal(t, m.ID, ms[0].ID)
}
