package repo_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/store"
)

func TestHeads(t *testing.T) {
	ctx := t.Context()
	r, _ := newRepo(t, nil)
	_, err := r.ReadHead(ctx, "s3", "123", "eu-west-1")
	require.True(t, repo.IsNotFound(err), "no head yet: %v", err)

	first, second := digest.FromBytes([]byte("first")), digest.FromBytes([]byte("second"))
	require.NoError(t, r.WriteHead(ctx, "s3", "123", "eu-west-1", first))
	require.NoError(t, r.WriteHead(ctx, "s3", "123\x00", "../x", first))
	require.NoError(t, r.WriteHead(ctx, "s3", "123", "eu-west-1", second), "a head is replaced without condition")
	h, err := r.ReadHead(ctx, "s3", "123", "eu-west-1")
	require.NoError(t, err)
	assert.Equal(t, "s3", h.Service)
	assert.Equal(t, "123", h.Account)
	assert.Equal(t, "eu-west-1", h.Region)
	assert.Equal(t, second, h.Snapshot)
	assert.False(t, h.Updated.IsZero())
	h, err = r.ReadHead(ctx, "s3", "123\x00", "../x")
	require.NoError(t, err)
	assert.Equal(t, first, h.Snapshot)

	// Something else under heads/ is not a head.
	require.NoError(t, r.Store().PutBytes(ctx, "heads/README", []byte("x"), store.PutOptions{}))
	scopes, err := r.ListHeads(ctx)
	require.NoError(t, err)
	require.Len(t, scopes, 2)
	byScope, err := r.ReadHeadScope(ctx, scopes[0])
	require.NoError(t, err)
	assert.Contains(t, []digest.Digest{first, second}, byScope.Snapshot)

	require.NoError(t, r.DeleteHead(ctx, scopes[0]))
	require.True(t, repo.IsNotFound(r.DeleteHead(ctx, scopes[0])))
	scopes, err = r.ListHeads(ctx)
	require.NoError(t, err)
	assert.Len(t, scopes, 1)

	assert.ErrorIs(t, r.WriteHead(ctx, "s3", "1", "r", "sha256:nope"), core.ErrInvalid)
	assert.ErrorIs(t, r.DeleteHead(ctx, "../x"), core.ErrInvalid)
	_, err = r.ReadHeadScope(ctx, "x")
	assert.ErrorIs(t, err, core.ErrInvalid)
}

// A head whose record is damaged, or names another scope than the one it
// is stored for, is corrupt: readers take it for no head.
func TestCorruptHead(t *testing.T) {
	ctx := t.Context()
	r, _ := newRepo(t, nil)
	id := digest.FromBytes([]byte("snap"))
	require.NoError(t, r.WriteHead(ctx, "s3", "other", "r", id))
	other, err := r.Store().GetBytes(ctx, repo.HeadName("s3", "other", "r"), 1<<10)
	require.NoError(t, err)
	name := repo.HeadName("s3", "1", "r")
	for _, tc := range []struct{ what, data string }{
		{"not JSON", "garbage"},
		{"another scope's record", string(other)},
		{"a bad id", string(bytes.Replace(other, []byte(id), []byte("sha256:0"), 1))},
		{"an unknown field", `{"service":"s3","account":"1","region":"r","snapshot":"` + string(id) + `","updated":"2026-01-01T00:00:00Z","x":1}`},
		{"a missing field", `{"service":"s3","account":"1","region":"r","snapshot":"` + string(id) + `"}`},
		{"too large", string(bytes.Repeat([]byte(" "), 65<<10))},
	} {
		t.Run(tc.what, func(t *testing.T) {
			require.NoError(t, r.Store().PutBytes(ctx, name, []byte(tc.data), store.PutOptions{}))
			_, err := r.ReadHead(ctx, "s3", "1", "r")
			require.ErrorIs(t, err, core.ErrCorrupt)
			assert.Contains(t, err.Error(), "heads/")
		})
	}
}

// CreateBlob writes a blob once: a second create of the same digest is
// refused with core.ErrExists, and leaves the stored blob as it was.
func TestCreateBlob(t *testing.T) {
	ctx := t.Context()
	r, _ := newRepo(t, nil)
	data := []byte("created once")
	d := digest.FromBytes(data)
	require.NoError(t, r.CreateBlob(ctx, d, bytes.NewReader(data), int64(len(data))))
	require.ErrorIs(t, r.CreateBlob(ctx, d, bytes.NewReader(data), int64(len(data))), core.ErrExists)
	size, err := r.StatBlob(ctx, d)
	require.NoError(t, err)
	assert.Equal(t, int64(len(data)), size)
	other := digest.FromBytes([]byte("other"))
	require.ErrorIs(t, r.CreateBlob(ctx, other, bytes.NewReader(data), int64(len(data))), core.ErrChecksumMismatch)
	require.ErrorIs(t, r.CreateBlob(ctx, "sha256:x", bytes.NewReader(data), 1), core.ErrInvalid)
}
