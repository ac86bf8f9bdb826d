package integration_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/integration/testserver"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/snapshot/repotest"
	// mem:// and gocloud+<scheme>:// URLs.
	_ "github.com/statebucket/statebucket/store/gocloudstore"
)

// openRepo returns a function that opens the repository at the URL url
// gives for each subtest, through snapshot.Open as users do.
func openRepo(url func(t *testing.T) string) func(t *testing.T) *snapshot.Repo {
	return func(t *testing.T) *snapshot.Repo {
		r, err := snapshot.Open(t.Context(), url(t))
		require.NoError(t, err)
		return r
	}
}

func TestMemRepository(t *testing.T) {
	repotest.Run(t, openRepo(func(*testing.T) string { return "mem://" }), nil)
}

func TestGocloudFileRepository(t *testing.T) {
	repotest.Run(t, openRepo(func(t *testing.T) string {
		u := url.URL{Scheme: "gocloud+file", Path: t.TempDir() + "/repo"}
		return u.String()
	}), nil)
}

// TestGocloudS3Repository runs the suite through gocloud.dev's s3blob
// against MinIO, with the URL parameters it needs there.
func TestGocloudS3Repository(t *testing.T) {
	srv := testserver.S3(t)
	srv.SetEnv(t)
	repotest.Run(t, openRepo(func(t *testing.T) string {
		u := url.URL{Scheme: "gocloud+s3", Host: srv.NewBucket(t), Path: "/fixtures/repo", RawQuery: url.Values{
			"endpoint":       {srv.Endpoint},
			"region":         {srv.Region},
			"use_path_style": {"true"},
		}.Encode()}
		return u.String()
	}), nil)
}

// TestGocloudGCSRepository runs the suite through gocloud.dev's gcsblob
// against fake-gcs-server, which STORAGE_EMULATOR_HOST names: as
// host:port, since gcsblob puts "http://" before it itself.
func TestGocloudGCSRepository(t *testing.T) {
	srv := testserver.GCS(t)
	t.Setenv(testserver.EnvEmulatorHost, strings.TrimPrefix(srv.Endpoint, "http://"))
	repotest.Run(t, openRepo(func(t *testing.T) string {
		u := url.URL{Scheme: "gocloud+gs", Host: srv.NewBucket(t), Path: "/fixtures/repo"}
		return u.String()
	}), nil)
}
