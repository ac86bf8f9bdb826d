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

func TestOpenRefuses(t *testing.T) {
	for _, raw := range []string{
		"mem://name",
		"mem:///path",
		"mem://?x=1",
		"gocloud+s3:///prefix-without-bucket",
		"gocloud+s3://user:hunter2@bucket/p",
		"gocloud+s3://bucket/p?prefix=q/",
		"gocloud+ftp://host/p",
	} {
		t.Run(raw, func(t *testing.T) {
			_, err := store.Open(t.Context(), raw)
			require.Error(t, err)
			assert.ErrorIs(t, err, core.ErrInvalid)
			assert.NotContains(t, err.Error(), "hunter2")
		})
	}
}

func TestFileDirectory(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "a", "b")
	u := url.URL{Scheme: "gocloud+file", Path: missing}

	q := url.Values{"create_dir": {""}}
	_, err := store.Open(t.Context(), u.String()+"?"+q.Encode())
	require.ErrorIs(t, err, core.ErrBucketNotFound)
	assert.Contains(t, err.Error(), missing)
	assert.NoDirExists(t, missing)

	st, err := store.Open(t.Context(), u.String())
	require.NoError(t, err, "create_dir is the default")
	defer st.Close()
	assert.DirExists(t, missing)
	require.NoError(t, st.PutBytes(t.Context(), "tags/t.json", []byte("x"), store.PutOptions{}))
	entries, err := os.ReadDir(filepath.Join(missing, "tags"))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no sidecar attribute files, no temporary files left")
	assert.Equal(t, "t.json", entries[0].Name())
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
