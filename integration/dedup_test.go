package integration_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/visitors"
)

// On every backend, deduplication works without a parent: a blob stored
// already refuses its create-only write, and counts as stored; a larger
// one is found by its lookup. With the head of the scope as parent, a
// re-export uploads nothing either.
func TestDeduplicationOnEveryBackend(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		url, _ := b.newRepo(t)
		r, err := snapshot.Open(ctx, url)
		require.NoError(t, err)
		defer r.Close()
		layer := repo.New(r.Store(), nil)

		data := []byte("created once")
		d := digest.FromBytes(data)
		require.NoError(t, layer.CreateBlob(ctx, d, bytes.NewReader(data), int64(len(data))))
		require.ErrorIs(t, layer.CreateBlob(ctx, d, bytes.NewReader(data), int64(len(data))), core.ErrExists)

		svc := coretest.NewObjectStore()
		require.NoError(t, svc.CreateBucket(ctx, "a", "r", "b", false))
		for k, v := range map[string]string{"small": "small bytes", "large": strings.Repeat("large bytes ", 200), "same": "created once"} {
			_, err := svc.PutObject(ctx, "a", "r", "b", k, []byte(v))
			require.NoError(t, err)
		}
		opts := func(st *visitors.Stats) *snapshot.ExportOptions {
			return &snapshot.ExportOptions{Stats: st, Visitor: visitors.Options{CreateOnlyMax: 1 << 10}}
		}
		var first visitors.Stats
		m, err := snapshot.Export(ctx, r, svc, "a", "r", opts(&first))
		require.NoError(t, err)
		assert.Equal(t, visitors.Stats{Blobs: 3, Bytes: m.TotalSize() - m.View.Size, Uploaded: 2, UploadedBytes: int64(len("small bytes") + 2400), Skipped: 1}, first,
			"the blob created before is found stored")

		// No parent: every blob is found stored, by a refused create-only
		// write or a lookup.
		scope, ok := repo.ParseHeadName(repo.HeadName(m.Service, m.Account, m.Region))
		require.True(t, ok)
		require.NoError(t, layer.DeleteHead(ctx, scope))
		var second visitors.Stats
		again, err := snapshot.Export(ctx, r, svc, "a", "r", opts(&second))
		require.NoError(t, err)
		assert.Equal(t, m.ID, again.ID)
		assert.Zero(t, second.Uploaded)
		assert.Equal(t, 3, second.Skipped)

		// The head is back: it is the parent of the next export.
		h, err := layer.ReadHead(ctx, m.Service, m.Account, m.Region)
		require.NoError(t, err)
		assert.Equal(t, m.ID, h.Snapshot)
		var third visitors.Stats
		_, err = snapshot.Export(ctx, r, svc, "a", "r", opts(&third))
		require.NoError(t, err)
		assert.Zero(t, third.Uploaded)
		assert.Equal(t, 3, third.Skipped)

		_, err = r.Verify(ctx, m.ID.String(), &snapshot.VerifyOptions{ReadData: true})
		require.NoError(t, err)
	})
}
