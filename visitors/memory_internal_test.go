package visitors

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
)

// TestSpoolsInMappedMemory exports blobs read without random access,
// which are spooled: their spools hold mapped pieces of the visitor's
// Memory, not the heap, and Wait frees that memory; a Copy of them into
// another repository does the same, freeing it as it returns.
func TestSpoolsInMappedMemory(t *testing.T) {
	newRepo := func() *repo.Repo {
		d, err := filestore.New(t.TempDir(), nil)
		require.NoError(t, err)
		r := repo.New(store.New(d, "test", nil), nil)
		t.Cleanup(func() { r.Close() })
		return r
	}
	ctx := t.Context()
	from := newRepo()
	v := New(from, nil)
	batch := make([]core.BlobExportEntry, 4)
	for i := range batch {
		data := bytes.Repeat([]byte{byte(i)}, 300<<10)
		batch[i] = core.BlobExportEntry{Key: fmt.Sprint("k", i), Reader: io.NopCloser(bytes.NewReader(data)), Size: int64(len(data))}
	}
	require.NoError(t, v.Visit(ctx, batch))
	require.NoError(t, v.Wait())
	now, ever := v.memory.Slabs()
	assert.Positive(t, ever, "the spools took pieces of mapped memory")
	assert.Zero(t, now, "Wait freed them")
	entries := v.Entries()
	require.Len(t, entries, 4)

	c := New(newRepo(), nil)
	require.NoError(t, c.Copy(ctx, from, entries))
	now, ever = c.memory.Slabs()
	assert.Positive(t, ever, "the copy's spools took pieces of mapped memory")
	assert.Zero(t, now, "Copy freed them")
	for _, e := range entries {
		got, err := c.r.StatBlob(ctx, e.Digest)
		require.NoError(t, err)
		assert.Equal(t, e.Size, got)
	}
}
