package gocloudstore_test

import (
	"crypto/sha256"
	"errors"
	"net/url"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/integration/testserver"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/gocloudstore"
	"github.com/statebucket/statebucket/store/storetest"
)

// s3URL returns the gocloud+s3 URL of prefix in bucket on srv, with the
// parameters s3blob needs for MinIO.
func s3URL(srv *testserver.S3Server, bucket, prefix string) string {
	u := url.URL{Scheme: "gocloud+s3", Host: bucket, Path: "/" + prefix, RawQuery: url.Values{
		"endpoint":       {srv.Endpoint},
		"region":         {srv.Region},
		"use_path_style": {"true"},
	}.Encode()}
	return u.String()
}

// s3Server returns the test MinIO, with its credentials in the
// environment, where the AWS SDK's chain finds them.
func s3Server(t *testing.T) *testserver.S3Server {
	t.Helper()
	srv := testserver.S3(t)
	srv.SetEnv(t)
	return srv
}

func TestConformanceS3(t *testing.T) {
	srv := s3Server(t)
	storetest.RunDriverTests(t, func(t *testing.T) store.Driver {
		return openURL(t, s3URL(srv, srv.NewBucket(t), "some/prefix"))
	})
}

// TestS3Errors checks the mapping of S3's errors, and that errors.As and
// Bucket.ErrorAs reach the SDK's error types through it.
func TestS3Errors(t *testing.T) {
	srv := s3Server(t)
	ctx := t.Context()
	tag := "tags/t.json"

	st, err := store.Open(ctx, s3URL(srv, srv.NewBucket(t), "repo"))
	require.NoError(t, err)
	defer st.Close()
	bucket := st.Driver().(*gocloudstore.Driver).Bucket()

	_, err = st.Get(ctx, tag)
	require.ErrorIs(t, err, core.ErrNotFound)
	require.NotErrorIs(t, err, core.ErrBucketNotFound)
	var noKey *types.NoSuchKey
	assert.ErrorAs(t, err, &noKey)
	assert.True(t, bucket.ErrorAs(err, &noKey), "Bucket.ErrorAs")

	require.NoError(t, st.PutBytes(ctx, tag, []byte("1"), store.PutOptions{CreateOnly: true}))
	err = st.PutBytes(ctx, tag, []byte("2"), store.PutOptions{CreateOnly: true})
	require.ErrorIs(t, err, core.ErrExists)
	var apiErr smithy.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "PreconditionFailed", apiErr.ErrorCode())
	assert.True(t, bucket.ErrorAs(err, &apiErr), "Bucket.ErrorAs")

	// A small object's SHA-256 goes to the server, which refuses a
	// mismatch itself.
	wrong := sha256.Sum256([]byte("other"))
	err = st.PutBytes(ctx, "blobs/b", []byte("content"), store.PutOptions{SHA256: wrong[:]})
	require.ErrorIs(t, err, core.ErrChecksumMismatch)
	require.ErrorAs(t, err, &apiErr, "refused by the server")
	t.Logf("server's answer: %s", apiErr.ErrorCode())

	missing, err := store.Open(ctx, s3URL(srv, "no-such-bucket-here", "repo"))
	require.NoError(t, err, "opening contacts no server")
	defer missing.Close()
	_, err = missing.Stat(ctx, tag)
	require.ErrorIs(t, err, core.ErrBucketNotFound)
	assert.Contains(t, err.Error(), `"no-such-bucket-here"`)
	err = missing.PutBytes(ctx, tag, []byte("x"), store.PutOptions{})
	require.ErrorIs(t, err, core.ErrBucketNotFound)
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "NoSuchBucket", apiErr.ErrorCode())

	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-0123456789")
	denied, err := store.Open(ctx, s3URL(srv, srv.NewBucket(t), "repo"))
	require.NoError(t, err)
	defer denied.Close()
	_, err = denied.Stat(ctx, tag)
	require.ErrorIs(t, err, core.ErrPermission)
	assert.NotContains(t, err.Error(), "wrong-secret")
	assert.True(t, errors.As(err, &apiErr))
}
