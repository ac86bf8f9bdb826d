package snapshot_test

import (
	"os"
	"path/filepath"
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

// openTemp opens a repository in a new temporary directory.
func openTemp(t *testing.T) *snapshot.Repo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	require.NoError(t, os.Mkdir(dir, 0o755))
	r, err := snapshot.Open(t.Context(), dir)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

// exportKV exports a KV service holding name=value in account a, region
// r, and returns the manifest.
func exportKV(t *testing.T, r *snapshot.Repo, name, value string) *manifest.Manifest {
	t.Helper()
	svc := coretest.NewKV()
	require.NoError(t, svc.Put(t.Context(), "a", "r", name, value))
	m, err := snapshot.ExportState(t.Context(), r, svc, "a", "r", nil)
	require.NoError(t, err)
	return m
}

func TestListKeepsValidSnapshotsWhenOneManifestIsInvalid(t *testing.T) {
	ctx := t.Context()
	r := openTemp(t)
	good := exportKV(t, r, "/k", "good")
	bad := exportKV(t, r, "/k", "bad")
	require.NoError(t, r.Store().PutBytes(ctx, repo.ManifestName(bad.ID), []byte(`{"format": "statebucket.manifest.v1"`), store.PutOptions{}))

	ms, err := r.List(ctx, snapshot.Filter{Service: "no-such-service"})
	require.ErrorIs(t, err, core.ErrCorrupt, "invalid manifests are listed whatever the filter")
	assert.Empty(t, ms)

	ms, err = r.List(ctx, snapshot.Filter{})
	require.ErrorIs(t, err, core.ErrCorrupt)
	assert.NotErrorIs(t, err, core.ErrInvalid, "bad data, not bad usage")
	require.Len(t, ms, 1, "the valid snapshot is still listed")
	assert.Equal(t, good.ID, ms[0].ID)
	var le *snapshot.ListError
	require.ErrorAs(t, err, &le)
	require.Len(t, le.Invalid, 1)
	assert.Equal(t, bad.ID, le.Invalid[0].ID)
	assert.ErrorIs(t, le.Invalid[0].Err, core.ErrCorrupt)
	assert.Contains(t, err.Error(), bad.ID.Hex(), "the message names the invalid manifest")

	got, err := r.Show(ctx, snapshot.Latest, snapshot.Filter{})
	require.NoError(t, err, "latest skips the invalid snapshot")
	assert.Equal(t, good.ID, got.ID)

	_, err = r.Show(ctx, bad.ID.String(), snapshot.Filter{})
	require.ErrorIs(t, err, core.ErrCorrupt)
	assert.NotErrorIs(t, err, core.ErrInvalid)
}

func TestManifestStoredUnderAnotherIDIsCorrupt(t *testing.T) {
	ctx := t.Context()
	r := openTemp(t)
	a := exportKV(t, r, "/k", "a")
	b := exportKV(t, r, "/k", "b")
	data, err := r.Store().GetBytes(ctx, repo.ManifestName(a.ID), 1<<20)
	require.NoError(t, err)
	require.NoError(t, r.Store().PutBytes(ctx, repo.ManifestName(b.ID), data, store.PutOptions{}))
	_, err = r.Show(ctx, b.ID.String(), snapshot.Filter{})
	require.ErrorIs(t, err, core.ErrCorrupt)
	assert.Contains(t, err.Error(), "stored under another id")
}

func TestCorruptTagIsBadData(t *testing.T) {
	ctx := t.Context()
	r := openTemp(t)
	m := exportKV(t, r, "/k", "v")
	for name, content := range map[string]string{
		"not-json":   `{"name": `,
		"other-name": `{"name": "x", "snapshot": "` + m.ID.String() + `", "updated": "2025-01-01T00:00:00Z"}`,
		"bad-digest": `{"name": "bad-digest", "snapshot": "sha256:XYZ", "updated": "2025-01-01T00:00:00Z"}`,
	} {
		require.NoError(t, r.Store().PutBytes(ctx, repo.TagName(name), []byte(content), store.PutOptions{}))
		_, err := r.Show(ctx, name, snapshot.Filter{})
		require.ErrorIs(t, err, core.ErrCorrupt, name)
		assert.NotErrorIs(t, err, core.ErrInvalid, name)
		assert.Contains(t, err.Error(), name)
	}
}

func TestRefThatMatchesNothing(t *testing.T) {
	ctx := t.Context()
	r := openTemp(t)
	m := exportKV(t, r, "/k", "v")
	missing, err := digest.FromHex("0000" + m.ID.Hex()[4:])
	require.NoError(t, err)
	if missing == m.ID {
		missing, err = digest.FromHex("1111" + m.ID.Hex()[4:])
		require.NoError(t, err)
	}
	for _, ref := range []string{"nosuchtag", "abcdef12", missing.String(), "x!"} {
		_, err := r.Show(ctx, ref, snapshot.Filter{})
		require.ErrorIs(t, err, core.ErrNotFound, ref)
		assert.Contains(t, err.Error(), `no snapshot matches ref "`+ref+`"`)

		got, err := r.Tag(ctx, "fixture", ref, nil)
		require.ErrorIs(t, err, core.ErrNotFound, ref)
		assert.Nil(t, got)
		assert.Contains(t, err.Error(), `no snapshot matches ref "`+ref+`"`)
	}
	_, err = r.Show(ctx, snapshot.Latest, snapshot.Filter{Service: "ec2"})
	require.ErrorIs(t, err, core.ErrNotFound)
	assert.Contains(t, err.Error(), `no snapshot matches ref "latest": no snapshot of service="ec2"`)

	got, err := r.Tag(ctx, "fixture", m.ID.Hex()[:8], nil)
	require.NoError(t, err)
	assert.Equal(t, m.ID, got.Manifest.ID, "Tag returns the snapshot it points at")
	_, err = r.Store().GetBytes(ctx, repo.TagName("fixture"), 1<<10)
	require.NoError(t, err)
}
