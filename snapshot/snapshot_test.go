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
	"github.com/statebucket/statebucket/snapshot/repotest"
)

func TestFileRepository(t *testing.T) {
	repotest.Run(t, func(t *testing.T) *snapshot.Repo {
		r, err := snapshot.Open(t.Context(), filepath.Join(t.TempDir(), "repo"))
		require.NoError(t, err)
		return r
	}, nil)
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		url     string
		wantLoc string
		wantErr error
	}{
		{url: filepath.Join(dir, "plain"), wantLoc: "file://" + filepath.ToSlash(filepath.Join(dir, "plain"))},
		{url: "file://" + filepath.ToSlash(filepath.Join(dir, "viaurl")), wantLoc: "file://" + filepath.ToSlash(filepath.Join(dir, "viaurl"))},
		{url: "", wantErr: core.ErrInvalid},
		{url: "ftp://host/path", wantErr: core.ErrInvalid},
		{url: "file://otherhost/path", wantErr: core.ErrInvalid},
		{url: "file:///tmp/x?secret=1", wantErr: core.ErrInvalid},
	} {
		t.Run(tc.url, func(t *testing.T) {
			r, err := snapshot.Open(t.Context(), tc.url)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			defer r.Close()
			assert.Equal(t, tc.wantLoc, r.Location())
		})
	}
}

func TestOpenRedactsCredentials(t *testing.T) {
	_, err := snapshot.Open(t.Context(), "nosuch://AKIAEXAMPLE:topsecret@bucket/prefix?X-Amz-Signature=sig")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "topsecret")
}

func TestOpenRefusesAFileAsRoot(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(f, []byte("x"), 0o600))
	_, err := snapshot.Open(t.Context(), f)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "file")
}

func TestSignedSnapshots(t *testing.T) {
	ctx := t.Context()
	repo, err := snapshot.Open(ctx, t.TempDir())
	require.NoError(t, err)
	defer repo.Close()
	svc := coretest.NewKV()
	require.NoError(t, svc.Put(ctx, "a", "r", "/k", "v"))
	key := []byte("ci-signing-key")

	signed, err := snapshot.ExportState(ctx, repo, svc, "a", "r", &snapshot.ExportOptions{SigningKey: key})
	require.NoError(t, err)
	require.NotEmpty(t, signed.Signature)

	verify := func(k []byte, require bool) *snapshot.ImportOptions {
		return &snapshot.ImportOptions{Manifest: manifest.DecodeOptions{HMACKey: k, RequireSignature: require}}
	}
	_, err = snapshot.ImportState(ctx, repo, coretest.NewKV(), "a", "r", signed.ID, verify(key, true))
	require.NoError(t, err)
	_, err = snapshot.ImportState(ctx, repo, coretest.NewKV(), "a", "r", signed.ID, verify([]byte("wrong"), false))
	require.ErrorIs(t, err, core.ErrInvalid)
	assert.NotContains(t, err.Error(), signed.Signature, "errors never show the signature")

	// The same state unsigned is the same snapshot id, already stored
	// signed; a snapshot of other state, unsigned, is refused when a
	// signature is required.
	require.NoError(t, svc.Put(ctx, "a", "r", "/k2", "v2"))
	unsigned, err := snapshot.ExportState(ctx, repo, svc, "a", "r", nil)
	require.NoError(t, err)
	assert.Empty(t, unsigned.Signature)
	_, err = snapshot.ImportState(ctx, repo, coretest.NewKV(), "a", "r", unsigned.ID, verify(key, true))
	require.ErrorIs(t, err, core.ErrInvalid)
}
