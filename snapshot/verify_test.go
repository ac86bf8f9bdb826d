package snapshot_test

import (
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store"
)

// exportRepeated exports an object store whose objects hold three
// distinct contents under eight keys.
func exportRepeated(t *testing.T, r *snapshot.Repo) *manifest.Manifest {
	t.Helper()
	ctx := t.Context()
	svc := coretest.NewObjectStore()
	require.NoError(t, svc.CreateBucket(ctx, "a", "r", "b", false))
	for i, body := range []string{"one", "two", "one", "three", "one", "two", "three", "one"} {
		_, err := svc.PutObject(ctx, "a", "r", "b", string(rune('a'+i)), []byte(body))
		require.NoError(t, err)
	}
	m, err := snapshot.Export(ctx, r, svc, "a", "r", nil)
	require.NoError(t, err)
	require.Len(t, m.Blobs, 8)
	return m
}

func TestVerifyProgressCountsDistinctBlobs(t *testing.T) {
	r := openTemp(t)
	m := exportRepeated(t, r)
	for _, readData := range []bool{false, true} {
		var started, total int
		var totalBytes int64
		var done, doneBytes atomic.Int64
		rep, err := r.Verify(t.Context(), m.ID.String(), &snapshot.VerifyOptions{
			ReadData: readData,
			OnStart: func(blobs int, bytes int64) {
				started++
				total, totalBytes = blobs, bytes
				assert.Zero(t, done.Load(), "OnStart comes before any blob")
			},
			OnBlob: func(size int64) { done.Add(1); doneBytes.Add(size) },
		})
		require.NoError(t, err)
		assert.Equal(t, 1, started)
		assert.Equal(t, 3, total, "three distinct contents")
		assert.Equal(t, int64(len("one")+len("two")+len("three")), totalBytes)
		assert.Equal(t, int64(total), done.Load(), "progress reaches its total (read data: %t)", readData)
		assert.Equal(t, totalBytes, doneBytes.Load())
		assert.Equal(t, 8, rep.Blobs)
		assert.Equal(t, 3, rep.UniqueBlobs)
		assert.Equal(t, totalBytes, rep.Bytes)
	}
}

func TestVerifyProblemsNameKeyDigestAndKind(t *testing.T) {
	ctx := t.Context()
	r := openTemp(t)
	m := exportRepeated(t, r)
	// The first entry, in manifest order, holding content.
	first := func(content string) manifest.Entry {
		for _, e := range m.Blobs {
			if e.Digest == digest.FromBytes([]byte(content)) {
				return e
			}
		}
		require.FailNow(t, "no entry holds "+content)
		return manifest.Entry{}
	}
	one, two, three := first("one"), first("two"), first("three")
	st := r.Store()
	require.NoError(t, st.Delete(ctx, repo.BlobName(one.Digest)))
	require.NoError(t, st.PutBytes(ctx, repo.BlobName(two.Digest), []byte("tw"), store.PutOptions{}))
	require.NoError(t, st.PutBytes(ctx, repo.BlobName(three.Digest), []byte("THREE"), store.PutOptions{}))
	require.NoError(t, st.Delete(ctx, repo.ViewName(m.ID)))

	for _, tc := range []struct {
		readData  bool
		threeKind snapshot.ProblemKind // a same-size change is only seen by reading
	}{{false, ""}, {true, snapshot.ProblemChecksumMismatch}} {
		rep, err := r.Verify(ctx, m.ID.String(), &snapshot.VerifyOptions{ReadData: tc.readData})
		require.Error(t, err)
		require.NotNil(t, rep)
		want := []snapshot.Problem{
			{View: true, Digest: m.View.Digest, Kind: snapshot.ProblemMissing},
			{Key: one.Key, Digest: one.Digest, Kind: snapshot.ProblemMissing},
			{Key: two.Key, Digest: two.Digest, Kind: snapshot.ProblemSizeMismatch},
		}
		if tc.threeKind != "" {
			want = append(want, snapshot.Problem{Key: three.Key, Digest: three.Digest, Kind: tc.threeKind})
		}
		require.Len(t, rep.Problems, len(want), "read data: %t: %v", tc.readData, rep.Problems)
		for i, p := range rep.Problems {
			require.Error(t, p.Err)
			p.Err = nil
			assert.Equal(t, want[i], p, "read data: %t", tc.readData)
		}
		assert.ErrorIs(t, rep.Problems[1].Err, core.ErrNotFound)
		assert.ErrorIs(t, rep.Problems[2].Err, core.ErrSizeMismatch)
		assert.Contains(t, err.Error(), "the view")
	}
}
