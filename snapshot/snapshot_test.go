package snapshot_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
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
