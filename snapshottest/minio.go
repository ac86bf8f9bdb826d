package snapshottest

import (
	"testing"

	"github.com/statebucket/statebucket/integration/testserver"
)

// MinIOServer is an S3 server a test may publish snapshots to and restore
// them from, with a fresh bucket of the test's own.
type MinIOServer struct {
	Endpoint  string // base URL, such as http://127.0.0.1:40123
	AccessKey string
	SecretKey string
	Region    string
	// Bucket is a bucket created for the test, emptied and removed when
	// it ends.
	Bucket string
	// URL is the s3:// URL of a repository in Bucket, with the endpoint
	// and region: what snapshot.Open, Restore and the CLI take.
	URL string
}

// MinIO returns an S3 server for the test and a fresh bucket on it, and
// sets the AWS SDK's environment variables (credentials, region, no
// shared configuration) until the test ends, so that URL opens with the
// standard credential chain: a test that calls MinIO, and its parents,
// must not be parallel.
//
// The server is one already running, named by the environment variables
// STATEBUCKET_S3_ENDPOINT, STATEBUCKET_S3_ACCESS_KEY,
// STATEBUCKET_S3_SECRET_KEY and STATEBUCKET_S3_REGION (for example
// MinIO in a CI service container), or else a MinIO binary found in the
// module's ./bin directory (where statebucket's `make tools` builds the
// pinned version) or on PATH, started once per test binary on a free
// loopback port with a temporary data directory and generated
// credentials. Call [Main] from TestMain to stop it when the tests end
// (on Linux it also dies with the test binary).
//
// When there is no server, the test is skipped, or fails when the
// environment variable CI is true, saying how to get one.
func MinIO(t testing.TB) *MinIOServer {
	t.Helper()
	srv := testserver.S3(t)
	srv.SetEnv(t)
	bucket := srv.NewBucket(t)
	return &MinIOServer{
		Endpoint:  srv.Endpoint,
		AccessKey: srv.AccessKey,
		SecretKey: srv.SecretKey,
		Region:    srv.Region,
		Bucket:    bucket,
		URL:       srv.URL(bucket, "statebucket"),
	}
}

// Main runs the tests of m, stops the MinIO that [MinIO] started, if
// any, and exits with the tests' status. Call it from TestMain:
//
//	func TestMain(m *testing.M) { snapshottest.Main(m) }
func Main(m *testing.M) { testserver.Main(m) }
