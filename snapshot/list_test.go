package snapshot_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store"
)

// openTemp opens a repository in a new temporary directory.
func openTemp(t *testing.T) *snapshot.Repo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	require.NoError(t, os.Mkdir(dir, 0o755))
	repo, err := snapshot.Open(t.Context(), dir)
	require.NoError(t, err)
	t.Cleanup(func() { repo.Close() })
	return repo
}

// exportKV exports a KV service holding name=value in account a, region
// r, and returns the manifest.
func exportKV(t *testing.T, repo *snapshot.Repo, name, value string) *manifest.Manifest {
	t.Helper()
	svc := coretest.NewKV()
	require.NoError(t, svc.Put(t.Context(), "a", "r", name, value))
	m, err := snapshot.ExportState(t.Context(), repo, svc, "a", "r", nil)
	require.NoError(t, err)
	return m
}

func TestListKeepsValidSnapshotsWhenOneManifestIsInvalid(t *testing.T) {
	ctx := t.Context()
	repo := openTemp(t)
	good := exportKV(t, repo, "/k", "good")
	bad := exportKV(t, repo, "/k", "bad")
	require.NoError(t, repo.Store().PutBytes(ctx, store.ManifestName(bad.HexID()), []byte(`{"format": "statebucket.manifest.v1"`), store.PutOptions{}))

	ms, err := repo.List(ctx, snapshot.Filter{Service: "no-such-service"})
	require.ErrorIs(t, err, core.ErrCorrupt, "invalid manifests are listed whatever the filter")
	assert.Empty(t, ms)

	ms, err = repo.List(ctx, snapshot.Filter{})
	require.ErrorIs(t, err, core.ErrCorrupt)
	assert.NotErrorIs(t, err, core.ErrInvalid, "bad data, not bad usage")
	require.Len(t, ms, 1, "the valid snapshot is still listed")
	assert.Equal(t, good.ID, ms[0].ID)
	var le *snapshot.ListError
	require.ErrorAs(t, err, &le)
	require.Len(t, le.Invalid, 1)
	assert.Equal(t, bad.ID, le.Invalid[0].ID)
	assert.ErrorIs(t, le.Invalid[0].Err, core.ErrCorrupt)
	assert.Contains(t, err.Error(), bad.HexID(), "the message names the invalid manifest")

	got, err := repo.Show(ctx, snapshot.Latest, snapshot.Filter{})
	require.NoError(t, err, "latest skips the invalid snapshot")
	assert.Equal(t, good.ID, got.ID)

	_, err = repo.Show(ctx, bad.ID, snapshot.Filter{})
	require.ErrorIs(t, err, core.ErrCorrupt)
	assert.NotErrorIs(t, err, core.ErrInvalid)
}

func TestManifestStoredUnderAnotherIDIsCorrupt(t *testing.T) {
	ctx := t.Context()
	repo := openTemp(t)
	a := exportKV(t, repo, "/k", "a")
	b := exportKV(t, repo, "/k", "b")
	data, err := repo.Store().GetBytes(ctx, store.ManifestName(a.HexID()), 1<<20)
	require.NoError(t, err)
	require.NoError(t, repo.Store().PutBytes(ctx, store.ManifestName(b.HexID()), data, store.PutOptions{}))
	_, err = repo.Show(ctx, b.ID, snapshot.Filter{})
	require.ErrorIs(t, err, core.ErrCorrupt)
	assert.Contains(t, err.Error(), "stored under another id")
}

func TestCorruptTagIsBadData(t *testing.T) {
	ctx := t.Context()
	repo := openTemp(t)
	m := exportKV(t, repo, "/k", "v")
	for name, content := range map[string]string{
		"not-json":   `{"name": `,
		"other-name": `{"name": "x", "snapshot": "` + m.ID + `", "updated": "2025-01-01T00:00:00Z"}`,
		"bad-digest": `{"name": "bad-digest", "snapshot": "sha256:XYZ", "updated": "2025-01-01T00:00:00Z"}`,
	} {
		require.NoError(t, repo.Store().PutBytes(ctx, store.TagName(name), []byte(content), store.PutOptions{}))
		_, err := repo.Show(ctx, name, snapshot.Filter{})
		require.ErrorIs(t, err, core.ErrCorrupt, name)
		assert.NotErrorIs(t, err, core.ErrInvalid, name)
		assert.Contains(t, err.Error(), name)
	}
}

func TestRefThatMatchesNothing(t *testing.T) {
	ctx := t.Context()
	repo := openTemp(t)
	m := exportKV(t, repo, "/k", "v")
	missing := "0000" + m.HexID()[4:]
	if missing == m.HexID() {
		missing = "1111" + m.HexID()[4:]
	}
	for _, ref := range []string{"nosuchtag", "abcdef12", "sha256:" + missing, "x!"} {
		_, err := repo.Show(ctx, ref, snapshot.Filter{})
		require.ErrorIs(t, err, core.ErrNotFound, ref)
		assert.Contains(t, err.Error(), `no snapshot matches ref "`+ref+`"`)

		got, err := repo.Tag(ctx, "fixture", ref)
		require.ErrorIs(t, err, core.ErrNotFound, ref)
		assert.Nil(t, got)
		assert.Contains(t, err.Error(), `no snapshot matches ref "`+ref+`"`)
	}
	_, err := repo.Show(ctx, snapshot.Latest, snapshot.Filter{Service: "ec2"})
	require.ErrorIs(t, err, core.ErrNotFound)
	assert.Contains(t, err.Error(), `no snapshot matches ref "latest": no snapshot of service="ec2"`)

	got, err := repo.Tag(ctx, "fixture", m.HexID()[:8])
	require.NoError(t, err)
	assert.Equal(t, m.ID, got.ID, "Tag returns the snapshot it points at")
	_, err = repo.Store().GetBytes(ctx, store.TagName("fixture"), 1<<10)
	require.NoError(t, err)
}
