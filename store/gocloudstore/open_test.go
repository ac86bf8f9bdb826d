package gocloudstore_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/gocloudstore"
)

func TestSchemesRegistered(t *testing.T) {
	for _, s := range []string{"mem", "gocloud+s3", "gocloud+gs", "gocloud+file", "gocloud+azblob"} {
		assert.Contains(t, store.Schemes(), s)
	}
}

func TestMemIsFreshPerOpen(t *testing.T) {
	ctx := t.Context()
	first, err := store.Open(ctx, "mem://")
	require.NoError(t, err)
	defer first.Close()
	require.NoError(t, first.PutBytes(ctx, "tags/t.json", []byte("x"), store.PutOptions{}))
	assert.False(t, existsAt(t, "mem://", "tags/t.json"))
}

// existsAt reports whether the object name exists in the repository at
// rawURL.
func existsAt(t *testing.T, rawURL, name string) bool {
	t.Helper()
	st, err := store.Open(t.Context(), rawURL)
	require.NoError(t, err)
	defer st.Close()
	ok, err := st.Exists(t.Context(), name)
	require.NoError(t, err)
	return ok
}

// TestOpenRefuses checks the URLs that store.Open, and Open called
// directly, refuse.
func TestOpenRefuses(t *testing.T) {
	for _, raw := range []string{
		"mem://name",
		"mem:///path",
		"mem://?x=1",
		"gocloud+s3:///prefix-without-bucket",
		"gocloud+s3://user:hunter2@bucket/p",
		"gocloud+s3://bucket/p?prefix=q/",
		"gocloud+ftp://host/p",
		"gocloud+s3://bucket/a//b",
		"gocloud+file:///tmp/a/../b",
	} {
		t.Run(raw, func(t *testing.T) {
			_, err := store.Open(t.Context(), raw)
			require.ErrorIs(t, err, core.ErrInvalid)
			assert.NotContains(t, err.Error(), "hunter2")

			u, err := url.Parse(raw)
			require.NoError(t, err)
			_, err = gocloudstore.Open(t.Context(), u, nil)
			require.ErrorIs(t, err, core.ErrInvalid, "Open called directly")
			assert.NotContains(t, err.Error(), "hunter2")
		})
	}
}

// TestFileDirectory checks that a gocloud+file directory is created by
// the first write, never by opening or reading it, as a file://
// repository is, and not at all when create_dir is empty or false.
func TestFileDirectory(t *testing.T) {
	ctx := t.Context()
	missing := filepath.Join(t.TempDir(), "a", "b")
	u := url.URL{Scheme: "gocloud+file", Path: missing}

	for _, off := range []string{"", "false", "0"} {
		q := url.Values{"create_dir": {off}}
		st, err := store.Open(ctx, u.String()+"?"+q.Encode())
		require.NoError(t, err, "opening touches nothing")
		err = st.PutBytes(ctx, "tags/t.json", []byte("x"), store.PutOptions{})
		require.ErrorIs(t, err, core.ErrBucketNotFound, "create_dir=%q", off)
		assert.Contains(t, err.Error(), missing)
		require.NoError(t, st.Close())
		assert.NoDirExists(t, missing)
	}

	st, err := store.Open(ctx, u.String())
	require.NoError(t, err)
	defer st.Close()
	_, err = st.Stat(ctx, "tags/t.json")
	require.ErrorIs(t, err, core.ErrBucketNotFound)
	assert.Contains(t, err.Error(), missing)
	err = st.List(ctx, "", func(store.ObjectInfo) error { return nil })
	require.ErrorIs(t, err, core.ErrBucketNotFound)
	assert.NoDirExists(t, missing, "reads create nothing")

	require.NoError(t, st.PutBytes(ctx, "tags/t.json", []byte("x"), store.PutOptions{}))
	entries, err := os.ReadDir(filepath.Join(missing, "tags"))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no sidecar attribute files, no temporary files left")
	assert.Equal(t, "t.json", entries[0].Name())
	assert.True(t, existsAt(t, u.String()+"?create_dir=false", "tags/t.json"), "an existing directory opens whatever create_dir says")
}

// TestS3PathIsPrefix checks that the path of a gocloud+s3 URL becomes the
// repository's prefix in the bucket, by opening the same bucket with
// gocloud.dev's own prefix= parameter.
func TestS3PathIsPrefix(t *testing.T) {
	srv := s3Server(t)
	bucket := srv.NewBucket(t)
	ctx := t.Context()
	withPath, err := store.Open(ctx, s3URL(srv, bucket, "a/b"))
	require.NoError(t, err)
	defer withPath.Close()
	require.NoError(t, withPath.PutBytes(ctx, "tags/t.json", []byte("x"), store.PutOptions{}))

	u, err := url.Parse(s3URL(srv, bucket, ""))
	require.NoError(t, err)
	q := u.Query()
	q.Set("prefix", "a/b/")
	u.RawQuery = q.Encode()
	assert.True(t, existsAt(t, u.String(), "tags/t.json"))
}

// TestAzureWithoutCredentials opens an Azure container with no
// credentials in the environment: Open fails at once, within a context
// deadline it never reaches, saying what to set, and leaks nothing of the
// environment.
func TestAzureWithoutCredentials(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AZURE_") || k == "IDENTITY_ENDPOINT" || k == "MSI_ENDPOINT" {
			t.Setenv(k, "")
		}
	}
	t.Setenv("AZURE_STORAGE_ACCOUNT", "statebucketacct")
	t.Setenv("AZURE_CLIENT_SECRET", "hunter2-secret") // useless without a client id
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	u, err := url.Parse("gocloud+azblob://fixtures/ci")
	require.NoError(t, err)
	_, err = gocloudstore.Open(ctx, u, nil)
	require.ErrorIs(t, err, core.ErrPermission)
	require.NoError(t, ctx.Err(), "Open waited for the deadline")
	assert.Contains(t, err.Error(), "no Azure credentials")
	assert.Contains(t, err.Error(), "AZURE_STORAGE_KEY")
	assert.NotContains(t, err.Error(), "hunter2")
}
