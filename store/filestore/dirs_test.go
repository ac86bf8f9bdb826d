package filestore_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
)

// storeWithBlob returns a new repository directory and a store on it
// holding blob, "first", put with a deferred sync.
func storeWithBlob(t *testing.T) (string, *store.Store) {
	t.Helper()
	root := t.TempDir()
	st := store.New(newDriver(t, root), root, nil)
	require.NoError(t, st.PutBytes(t.Context(), blob, []byte("first"), store.PutOptions{DeferSync: true}))
	return root, st
}

// TestDirectoryRemovedBetweenCalls removes a directory the driver has
// used, from outside, and puts it back with other files: the driver reads
// and writes where the path now leads.
func TestDirectoryRemovedBetweenCalls(t *testing.T) {
	root, st := storeWithBlob(t)
	ctx := t.Context()
	dir := filepath.Join(root, "blobs", "sha256", "ab")
	require.NoError(t, st.Sync(ctx))

	require.NoError(t, os.RemoveAll(filepath.Join(root, "blobs")))
	_, err := st.Get(ctx, blob)
	require.ErrorIs(t, err, core.ErrNotFound)
	require.NoError(t, os.MkdirAll(dir, 0o777))
	require.NoError(t, os.WriteFile(filepath.Join(dir, hexA), []byte("put back"), 0o666))
	got, err := st.GetBytes(ctx, blob, 100)
	require.NoError(t, err)
	assert.Equal(t, []byte("put back"), got)

	for _, createOnly := range []bool{false, true} {
		require.NoError(t, os.RemoveAll(filepath.Join(root, "blobs")))
		other := "blobs/sha256/ab/ab" + hexA[2:62] + "1111"
		require.NoError(t, st.PutBytes(ctx, other, []byte("second"), store.PutOptions{DeferSync: true, CreateOnly: createOnly}))
		require.NoError(t, st.Sync(ctx))
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(other)))
		require.NoError(t, err, "CreateOnly %v", createOnly)
		assert.Equal(t, []byte("second"), data)
		info, err := st.Stat(ctx, other)
		require.NoError(t, err)
		assert.Equal(t, int64(len("second")), info.Size)
		require.NoError(t, st.Delete(ctx, other))
		assert.NoFileExists(t, filepath.Join(root, filepath.FromSlash(other)))
	}
}

// TestDirectoryReplacedWhileWritten moves a directory the driver writes
// into aside and puts an empty one in its place: the objects written
// into the one moved are not in the repository, and Sync says so rather
// than take them for durable, once.
func TestDirectoryReplacedWhileWritten(t *testing.T) {
	root, st := storeWithBlob(t)
	ctx := t.Context()
	dir := filepath.Join(root, "blobs", "sha256", "ab")

	require.NoError(t, os.Rename(dir, dir+".moved"))
	require.NoError(t, os.Mkdir(dir, 0o777))
	err := st.Sync(ctx)
	require.ErrorIs(t, err, core.ErrConflict)
	assert.Contains(t, err.Error(), `"blobs/sha256/ab" was replaced`)
	require.NoError(t, st.Sync(ctx), "reported once")
	require.NoError(t, st.PutBytes(ctx, blob, []byte("again"), store.PutOptions{DeferSync: true}))
	require.NoError(t, st.Sync(ctx))
	data, err := os.ReadFile(filepath.Join(dir, hexA))
	require.NoError(t, err)
	assert.Equal(t, []byte("again"), data, "written where the path leads")

	require.NoError(t, os.Rename(dir, dir+".moved2"))
	require.NoError(t, os.Mkdir(dir, 0o777))
	err = st.PutBytes(ctx, blob, []byte("third"), store.PutOptions{})
	require.ErrorIs(t, err, core.ErrConflict, "a Put that syncs at once says so too")
	require.NoError(t, st.PutBytes(ctx, blob, []byte("third"), store.PutOptions{}))
	data, err = os.ReadFile(filepath.Join(dir, hexA))
	require.NoError(t, err)
	assert.Equal(t, []byte("third"), data)
}

// TestManyDirectories uses more directories than the driver keeps open,
// with plain and create-only Puts.
func TestManyDirectories(t *testing.T) {
	st := store.New(newDriver(t, t.TempDir()), "test", nil)
	ctx := t.Context()
	const n = 600
	name := func(i int) string { return fmt.Sprintf("d/%03d/%v", i%n, i >= n) }
	for i := range 2 * n {
		require.NoError(t, st.PutBytes(ctx, name(i), []byte{byte(i)}, store.PutOptions{DeferSync: true, CreateOnly: i >= n}))
	}
	require.NoError(t, st.Sync(ctx))
	for i := range 2 * n {
		got, err := st.GetBytes(ctx, name(i), 1)
		require.NoError(t, err)
		assert.Equal(t, []byte{byte(i)}, got)
	}
}
