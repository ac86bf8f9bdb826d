package snapshottest_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/snapshottest"
)

// TestExampleRestoreFromMinIO is how a user's test restores a fixture
// from MinIO: one line. The fixture is published first, as a CI job that
// exports it once would do.
func TestExampleRestoreFromMinIO(t *testing.T) {
	minio := snapshottest.MinIO(t) // a MinIO from the environment or ./bin, and a fresh bucket
	// Keep this test's blob cache to itself; by default it is the user's
	// cache directory, shared by every run.
	t.Setenv(snapshottest.EnvCacheDir, t.TempDir())

	// Publish: export a mock's state to the bucket under the tag "fixture".
	published := coretest.NewObjectStore()
	_, _, err := coretest.Fill(t.Context(), published, "123456789012", "us-east-1", coretest.FillOptions{Objects: 50})
	require.NoError(t, err)
	r, err := snapshot.Open(t.Context(), minio.URL)
	require.NoError(t, err)
	defer r.Close()
	_, err = snapshot.Export(t.Context(), r, published, "123456789012", "us-east-1", &snapshot.ExportOptions{Tag: "fixture"})
	require.NoError(t, err)

	// Restore: one line loads the fixture into a fresh mock.
	svc := coretest.NewObjectStore()
	snapshottest.Restore(t, svc, minio.URL, "fixture", "123456789012", "us-east-1")

	data, err := svc.GetObject(t.Context(), "123456789012", "us-east-1", "coretest-versioned", "versions/same-key")
	require.NoError(t, err)
	want, err := published.GetObject(t.Context(), "123456789012", "us-east-1", "coretest-versioned", "versions/same-key")
	require.NoError(t, err)
	require.Equal(t, want, data)
}
