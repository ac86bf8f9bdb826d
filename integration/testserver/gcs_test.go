package testserver_test

import (
	"io"
	"os"
	"os/exec"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/integration/testserver"
)

func TestGCS(t *testing.T) {
	srv := testserver.GCS(t)
	assert.Same(t, srv, testserver.GCS(t), "one server per test binary")
	bucket := srv.NewBucket(t)
	assert.NotEqual(t, bucket, srv.NewBucket(t))
	assert.Equal(t, "gs://"+bucket+"/some/prefix", srv.URL(bucket, "some/prefix"))

	ctx := t.Context()
	obj := srv.Client(t).Bucket(bucket).Object("dir/k")
	w := obj.NewWriter(ctx)
	_, err := io.WriteString(w, "content")
	require.NoError(t, err)
	require.NoError(t, w.Close())
	r, err := obj.NewReader(ctx) // a download, which goes to the public host
	require.NoError(t, err)
	defer r.Close()
	data, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.Equal(t, "content", string(data))

	_, err = srv.Client(t).Bucket("statebucket-no-such-bucket").Attrs(ctx)
	require.ErrorIs(t, err, storage.ErrBucketNotExist)
}

// TestNoGCSServer runs TestHelperNoGCSServer in a child process where no
// fake-gcs-server and no STATEBUCKET_GCS_ENDPOINT exist: it is skipped, or
// fails when CI is true, with a message saying how to get a server.
func TestNoGCSServer(t *testing.T) {
	for _, ci := range []string{"", "true"} {
		t.Run("CI="+ci, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperNoGCSServer$", "-test.v")
			cmd.Dir = t.TempDir() // no go.mod above, so no ./bin/fake-gcs-server
			cmd.Env = append(os.Environ(),
				"TESTSERVER_HELPER=1", "CI="+ci, "PATH="+t.TempDir(),
				testserver.EnvGCSEndpoint+"=",
			)
			out, err := cmd.CombinedOutput()
			msg := string(out)
			assert.Contains(t, msg, "fake-gcs-server not found")
			assert.Contains(t, msg, "run `make tools` to build fake-gcs-server into ./bin, or set STATEBUCKET_GCS_ENDPOINT")
			if ci == "true" {
				require.Error(t, err, "a missing server must fail in CI:\n%s", msg)
				assert.Contains(t, msg, "--- FAIL: TestHelperNoGCSServer")
			} else {
				require.NoError(t, err, msg)
				assert.Contains(t, msg, "--- SKIP: TestHelperNoGCSServer")
			}
		})
	}
}

func TestHelperNoGCSServer(t *testing.T) {
	if os.Getenv("TESTSERVER_HELPER") != "1" {
		t.Skip("run by TestNoGCSServer")
	}
	testserver.GCS(t)
	t.Error("GCS returned without a server")
}
