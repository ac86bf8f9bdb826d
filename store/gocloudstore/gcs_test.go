package gocloudstore_test

import (
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/api/googleapi"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/integration/testserver"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/storetest"
)

// gsURL returns the gocloud+gs URL of prefix in bucket.
func gsURL(bucket, prefix string) string { return "gocloud+gs://" + bucket + "/" + prefix }

// gcsServer returns the test fake-gcs-server, named by
// STORAGE_EMULATOR_HOST, which gcsblob's client follows. gcsblob puts
// "http://" before the variable's value itself, so it gets host:port, not
// the base URL testserver's SetEnv gives.
func gcsServer(t *testing.T) *testserver.GCSServer {
	t.Helper()
	srv := testserver.GCS(t)
	t.Setenv(testserver.EnvEmulatorHost, strings.TrimPrefix(srv.Endpoint, "http://"))
	return srv
}

func TestConformanceGCS(t *testing.T) {
	srv := gcsServer(t)
	storetest.RunDriverTests(t, func(t *testing.T) store.Driver {
		return openURL(t, gsURL(srv.NewBucket(t), "some/prefix"))
	})
}

// TestGCSErrors checks the mapping of GCS's errors through gcsblob, and
// that errors.As reaches *googleapi.Error through it.
func TestGCSErrors(t *testing.T) {
	srv := gcsServer(t)
	ctx := t.Context()
	tag := "tags/t.json"
	st, err := store.Open(ctx, gsURL(srv.NewBucket(t), "p"))
	require.NoError(t, err)
	defer st.Close()

	require.NoError(t, st.PutBytes(ctx, tag, []byte("1"), store.PutOptions{CreateOnly: true}))
	err = st.PutBytes(ctx, tag, []byte("2"), store.PutOptions{CreateOnly: true})
	require.ErrorIs(t, err, core.ErrExists)
	var apiErr *googleapi.Error
	require.ErrorAs(t, err, &apiErr)

	wrong := sha256.Sum256([]byte("other"))
	err = st.PutBytes(ctx, "blobs/b", []byte("content"), store.PutOptions{SHA256: wrong[:]})
	require.ErrorIs(t, err, core.ErrChecksumMismatch)
	_, err = st.Stat(ctx, "blobs/b")
	require.ErrorIs(t, err, core.ErrNotFound, "a refused Put stored nothing")

	missing, err := store.Open(ctx, gsURL("statebucket-no-such-bucket", "p"))
	require.NoError(t, err)
	defer missing.Close()
	_, err = missing.Stat(ctx, tag)
	require.ErrorIs(t, err, core.ErrBucketNotFound)
	require.ErrorContains(t, err, "statebucket-no-such-bucket")
	err = missing.PutBytes(ctx, tag, []byte("x"), store.PutOptions{})
	require.ErrorIs(t, err, core.ErrBucketNotFound)
}
