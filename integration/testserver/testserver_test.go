package testserver_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
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

// TestPurgeTrash stores 4 MiB, deletes them, and purges MinIO's trash:
// the data directory then holds less than the object did.
func TestPurgeTrash(t *testing.T) {
	srv := testserver.S3(t)
	if srv.DataDir() == "" {
		t.Skip("the S3 server is the environment's: its trash is not ours to purge")
	}
	bucket := srv.NewBucket(t)
	client := srv.Client(t, nil)
	body := bytes.Repeat([]byte("statebucket"), 400_000)
	_, err := client.PutObject(t.Context(), &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("k"), Body: bytes.NewReader(body)})
	require.NoError(t, err)
	require.Greater(t, dirSize(t, srv.DataDir()), int64(len(body)))

	_, err = client.DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: &bucket, Key: aws.String("k")})
	require.NoError(t, err)
	require.NoError(t, srv.PurgeTrash())
	assert.Less(t, dirSize(t, srv.DataDir()), int64(len(body)))
	require.NoError(t, srv.PurgeTrash(), "an empty trash")
}

// dirSize returns the bytes of the regular files under dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	require.NoError(t, err)
	return n
}

// TestNoServer runs TestHelperNoServer in a child process where neither
// the server's binary nor the variable naming a running one exist: it is
// skipped, or fails when CI is true, with a message saying how to get a
// server.
func TestNoServer(t *testing.T) {
	for _, srv := range []struct {
		name, env string
		want      []string
	}{
		{"S3", testserver.EnvS3Endpoint, []string{"minio not found",
			"run `make tools` to build MinIO into ./bin, or set STATEBUCKET_S3_ENDPOINT"}},
		{"GCS", testserver.EnvGCSEndpoint, []string{"fake-gcs-server not found",
			"run `make tools` to build fake-gcs-server into ./bin, or set STATEBUCKET_GCS_ENDPOINT"}},
	} {
		for _, ci := range []string{"", "true"} {
			t.Run(srv.name+"/CI="+ci, func(t *testing.T) {
				cmd := exec.Command(os.Args[0], "-test.run=^TestHelperNoServer$", "-test.v")
				cmd.Dir = t.TempDir() // no go.mod above, so no ./bin
				cmd.Env = append(os.Environ(), "TESTSERVER_HELPER="+srv.name, "CI="+ci, "PATH="+t.TempDir(), srv.env+"=")
				out, err := cmd.CombinedOutput()
				msg := string(out)
				for _, want := range srv.want {
					assert.Contains(t, msg, want)
				}
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
}

func TestHelperNoServer(t *testing.T) {
	switch os.Getenv("TESTSERVER_HELPER") {
	case "S3":
		testserver.S3(t)
	case "GCS":
		testserver.GCS(t)
	default:
		t.Skip("run by TestNoServer")
	}
	t.Error("returned without a server")
}
