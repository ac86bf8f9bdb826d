package testserver_test

import (
	"io"
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
