package testserver_test

import (
	"os"
	"os/exec"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/integration/testserver"
)

func TestMain(m *testing.M) { testserver.Main(m) }

func TestS3(t *testing.T) {
	srv := testserver.S3(t)
	assert.Same(t, srv, testserver.S3(t), "one server per test binary")
	bucket := srv.NewBucket(t)
	assert.NotEqual(t, bucket, srv.NewBucket(t))

	client := srv.Client(t, nil)
	_, err := client.PutObject(t.Context(), &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("k")})
	require.NoError(t, err)
	_, err = client.HeadBucket(t.Context(), &s3.HeadBucketInput{Bucket: &bucket})
	require.NoError(t, err)
}

// TestNoServer runs TestHelperNoServer in a child process where no MinIO
// and no STATEBUCKET_S3_ENDPOINT exist: it is skipped, or fails when CI
// is true, with a message saying how to get a server.
func TestNoServer(t *testing.T) {
	for _, ci := range []string{"", "true"} {
		t.Run("CI="+ci, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperNoServer$", "-test.v")
			cmd.Dir = t.TempDir() // no go.mod above, so no ./bin/minio
			cmd.Env = append(os.Environ(),
				"TESTSERVER_HELPER=1", "CI="+ci, "PATH="+t.TempDir(),
				testserver.EnvS3Endpoint+"=",
			)
			out, err := cmd.CombinedOutput()
			msg := string(out)
			assert.Contains(t, msg, "minio not found")
			assert.Contains(t, msg, "run `make tools` to build MinIO into ./bin, or set STATEBUCKET_S3_ENDPOINT")
			if ci == "true" {
				require.Error(t, err, "a missing server must fail in CI:\n%s", msg)
				assert.Contains(t, msg, "--- FAIL: TestHelperNoServer")
			} else {
				require.NoError(t, err, msg)
				assert.Contains(t, msg, "--- SKIP: TestHelperNoServer")
			}
		})
	}
}

func TestHelperNoServer(t *testing.T) {
	if os.Getenv("TESTSERVER_HELPER") != "1" {
		t.Skip("run by TestNoServer")
	}
	testserver.S3(t)
	t.Error("S3 returned without a server")
}
