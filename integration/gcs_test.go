package integration_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/integration/faults"
	"github.com/statebucket/statebucket/integration/testserver"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store/gcsstore"
)

// TestGCSRepository runs the end-to-end suite over gs:// URLs, with
// STORAGE_EMULATOR_HOST naming the emulator.
func TestGCSRepository(t *testing.T) { runRepositorySuite(t, testserver.GCS(t)) }

// openGCS opens the repository under "repo" in bucket with gcsstore.Open,
// its requests carried by rt.
func openGCS(t *testing.T, srv *testserver.GCSServer, bucket string, rt http.RoundTripper) *snapshot.Repo {
	t.Helper()
	srv.SetEnv(t)
	u, err := url.Parse(srv.URL(bucket, "repo"))
	require.NoError(t, err)
	drv, err := gcsstore.Open(t.Context(), u, &gcsstore.Options{
		ClientOptions: []option.ClientOption{option.WithHTTPClient(&http.Client{Transport: rt})},
	})
	return repoOver(t, u, drv, err)
}

// TestGCSFaultsRoundTrip fails one request in five (503, connection resets
// before and after the request lands): export and import still round-trip
// byte-exact. (A cut answer to an upload that landed fails it with
// core.ErrTransient, which the client does not retry: the store layer's
// retries will cover it.)
func TestGCSFaultsRoundTrip(t *testing.T) {
	srv := testserver.GCS(t)
	bucket := srv.NewBucket(t)
	rt := &faults.RoundTripper{Base: http.DefaultTransport.(*http.Transport).Clone(), Rate: 0.2, Seed: 2026,
		Kinds: []faults.Kind{faults.SlowDown, faults.ResetBeforeSend, faults.ResetAfterSend}}
	repo := openGCS(t, srv, bucket, rt)
	roundTripUnderFaults(t, repo, rt, func() (*snapshot.Repo, error) {
		return snapshot.Open(t.Context(), srv.URL(bucket, "repo"))
	})
}

// TestGCSRetriedCommitIsSuccess: the create-only manifest upload whose
// first try landed answers 412 when the client sends it again; the export
// reads the manifest back, finds its own, and succeeds.
func TestGCSRetriedCommitIsSuccess(t *testing.T) {
	srv := testserver.GCS(t)
	rt := &faults.LoseAnswer{Match: func(req *http.Request) bool {
		return strings.HasPrefix(req.URL.Path, "/upload/") && strings.HasSuffix(req.URL.Query().Get("name"), "/manifest.json")
	}}
	repo := openGCS(t, srv, srv.NewBucket(t), rt)

	src := coretest.NewObjectStore()
	_, _, err := coretest.Fill(t.Context(), src, acct, region, coretest.FillOptions{Objects: 10, Seed: 4})
	require.NoError(t, err)
	m, err := snapshot.Export(t.Context(), repo, src, acct, region, nil)
	require.NoError(t, err)
	assert.Equal(t, 2, rt.Matched(), "the manifest upload was not sent again")
	ms, err := repo.List(t.Context(), snapshot.Filter{})
	require.NoError(t, err)
	require.Len(t, ms, 1)
	assert.Equal(t, m.ID, ms[0].ID)
}

// composes counts the compose requests that go through it.
type composes struct {
	base http.RoundTripper
	n    atomic.Int32
}

func (c *composes) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/compose") {
		c.n.Add(1)
	}
	return c.base.RoundTrip(req)
}

// TestGCSCompositeExport: blobs past the composite threshold (lowered
// here) that are not written create-only (those past
// visitors.DefaultCreateOnlyMax, 1 MiB) go up through an export in
// parallel composite uploads, import
// back byte-exact, and leave no part; a part that a killed upload left is
// deleted by gc.
func TestGCSCompositeExport(t *testing.T) {
	ctx := t.Context()
	srv := testserver.GCS(t)
	srv.SetEnv(t)
	bucket := srv.NewBucket(t)
	rt := &composes{base: http.DefaultTransport.(*http.Transport).Clone()}
	u, err := url.Parse(srv.URL(bucket, "repo"))
	require.NoError(t, err)
	drv, err := gcsstore.Open(ctx, u, &gcsstore.Options{SingleRequestMax: -1, CompositeThreshold: 256 << 10, ComponentSize: 64 << 10,
		ClientOptions: []option.ClientOption{option.WithHTTPClient(&http.Client{Transport: rt})}})
	r := repoOver(t, u, drv, err)

	src := coretest.NewObjectStore()
	_, _, err = coretest.Fill(ctx, src, acct, region, coretest.FillOptions{Objects: 40, Size: 4 << 20, Seed: 11})
	require.NoError(t, err)
	m, err := snapshot.Export(ctx, r, src, acct, region, nil)
	require.NoError(t, err)
	assert.Positive(t, rt.n.Load(), "no blob went up in parts")
	dst := coretest.NewObjectStore()
	_, err = snapshot.Import(ctx, r, dst, acct, region, m.ID.String(), nil)
	require.NoError(t, err)
	require.NoError(t, sameState(t, src, dst))

	admin := srv.Client(t)
	assert.Empty(t, srv.ObjectNames(t, bucket, "repo/tmp/"), "parts left")
	w := admin.Bucket(bucket).Object("repo/tmp/compose-0123456789abcdef-3").NewWriter(ctx)
	_, err = w.Write([]byte("a part of a killed upload"))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	rep, err := r.GC(ctx, &snapshot.GCOptions{Grace: time.Nanosecond})
	require.NoError(t, err)
	assert.Equal(t, 1, rep.TempFiles)
	assert.Zero(t, rep.Blobs.Objects, "a referenced blob collected")
	assert.Empty(t, srv.ObjectNames(t, bucket, "repo/tmp/"))
	_, err = r.Verify(ctx, m.ID.String(), &snapshot.VerifyOptions{ReadData: true})
	require.NoError(t, err)
}

// TestGCSMissingBucket: the error names the bucket.
func TestGCSMissingBucket(t *testing.T) {
	srv := testserver.GCS(t)
	srv.SetEnv(t)
	repo, err := snapshot.Open(t.Context(), srv.URL("statebucket-no-such-bucket", "repo"))
	require.NoError(t, err)
	defer repo.Close()
	_, err = snapshot.Export(t.Context(), repo, coretest.NewObjectStore(), acct, region, nil)
	require.ErrorIs(t, err, core.ErrBucketNotFound)
	assert.Contains(t, err.Error(), `bucket "statebucket-no-such-bucket" does not exist`)
}

// TestCLIDemoOverGCS runs `statebucket demo --repo gs://…` as a user
// would.
func TestCLIDemoOverGCS(t *testing.T) {
	srv := testserver.GCS(t)
	demoTwice(t, srv.URL(srv.NewBucket(t), "demo"), srv.Env())
}
