package integration_test

import (
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/integration/faults"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/snapshot/repotest"
	"github.com/statebucket/statebucket/store"
)

// bucketServer is a test server whose buckets snapshot.Open reaches by
// URL once SetEnv has run, or in a child process given Env.
type bucketServer interface {
	SetEnv(t testing.TB)
	Env() []string
	NewBucket(t testing.TB) string
	URL(bucket, prefix string) string
}

// runRepositorySuite runs the end-to-end suite over URLs of new buckets of
// srv, opened the way users open them: snapshot.Open, with the environment
// SetEnv sets.
func runRepositorySuite(t *testing.T, srv bucketServer) {
	srv.SetEnv(t)
	repotest.Run(t, func(t *testing.T) *snapshot.Repo {
		r, err := snapshot.Open(t.Context(), srv.URL(srv.NewBucket(t), "fixtures/repo"))
		require.NoError(t, err)
		return r
	}, nil)
}

// repoOver returns a repository over drv, which was opened for u with
// error err, closed when the test ends. Its requests pass through a
// fault injector, so the store tries each call up to 21 times
// (faultStoreOptions): with the default 5, a GCS export of 300 blobs
// under 20 % of failed requests gave up on one blob in a CI run, as
// 0.2^5 per upload makes likely enough where the client does not retry
// the upload itself.
func repoOver(t *testing.T, u *url.URL, drv store.Driver, err error) *snapshot.Repo {
	t.Helper()
	require.NoError(t, err)
	r := snapshot.New(store.New(drv, store.Redact(u), faultStoreOptions))
	t.Cleanup(func() { r.Close() })
	return r
}

// roundTripUnderFaults exports 300 objects with hostile keys through repo,
// whose requests pass through rt, imports them back and compares; every
// kind of fault rt injects must have been injected. Then what landed must
// be whole: a repository opened by openClean, without faults, verifies
// every blob's digest.
func roundTripUnderFaults(t *testing.T, repo *snapshot.Repo, rt *faults.RoundTripper, openClean func() (*snapshot.Repo, error)) {
	t.Helper()
	ctx := t.Context()
	src := coretest.NewObjectStore()
	_, _, err := coretest.Fill(ctx, src, acct, region, coretest.FillOptions{Objects: 300, Size: 64 << 10, Seed: 9, Hostile: true})
	require.NoError(t, err)
	m, err := snapshot.Export(ctx, repo, src, acct, region, nil)
	require.NoError(t, err)
	dst := coretest.NewObjectStore()
	_, err = snapshot.Import(ctx, repo, dst, acct, region, m.ID.String(), nil)
	require.NoError(t, err)
	require.NoError(t, sameState(t, src, dst))
	kinds := rt.Kinds
	if len(kinds) == 0 {
		kinds = faults.AllKinds
	}
	for _, k := range kinds {
		assert.Positive(t, rt.Count(k), "no %v fault was injected", k)
	}
	t.Logf("faults injected: %v", rt)

	clean, err := openClean()
	require.NoError(t, err)
	defer clean.Close()
	_, err = clean.Verify(ctx, m.ID.String(), &snapshot.VerifyOptions{ReadData: true})
	require.NoError(t, err)
}

// demoTwice builds the CLI and runs `statebucket demo --repo repoURL`
// twice, with env added to the environment: each run restores the state
// it exported, and the second uploads nothing and gives the same
// snapshot.
func demoTwice(t *testing.T, repoURL string, env []string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "statebucket")
	build := exec.Command("go", "build", "-o", bin, "../cmd/statebucket")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))

	var ids []string
	for range 2 {
		cmd := exec.CommandContext(t.Context(), bin, "--repo", repoURL, "--json", "demo", "--objects", "200")
		cmd.Env = append(os.Environ(), env...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, stderr.String())
		var res struct {
			Snapshot string `json:"snapshot"`
			Uploaded int    `json:"uploaded_blobs"`
			Matches  bool   `json:"restored_state_matches"`
		}
		require.NoError(t, json.Unmarshal(out, &res))
		assert.True(t, res.Matches)
		if len(ids) == 1 {
			assert.Zero(t, res.Uploaded, "second demo uploaded blobs")
		}
		ids = append(ids, res.Snapshot)
	}
	assert.Equal(t, ids[0], ids[1])
}
