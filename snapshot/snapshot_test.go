package snapshot_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/snapshot/repotest"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
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
	r, err := snapshot.Open(ctx, t.TempDir())
	require.NoError(t, err)
	defer r.Close()
	svc := coretest.NewKV()
	require.NoError(t, svc.Put(ctx, "a", "r", "/k", "v"))
	key := []byte("ci-signing-key")

	signed, err := snapshot.ExportState(ctx, r, svc, "a", "r", &snapshot.ExportOptions{SigningKey: key})
	require.NoError(t, err)
	require.NotEmpty(t, signed.Signature)

	verify := func(k []byte) *snapshot.ImportOptions {
		return &snapshot.ImportOptions{Manifest: manifest.DecodeOptions{HMACKey: k}}
	}
	_, err = snapshot.ImportState(ctx, r, coretest.NewKV(), "a", "r", signed.ID.String(), verify(key))
	require.NoError(t, err)
	_, err = snapshot.ImportState(ctx, r, coretest.NewKV(), "a", "r", signed.ID.String(), verify([]byte("wrong")))
	require.ErrorIs(t, err, core.ErrCorrupt)
	assert.NotContains(t, err.Error(), signed.Signature, "errors never show the signature")

	// The same state unsigned is the same snapshot id, already stored
	// signed; a snapshot of other state, unsigned, is refused when a
	// signature is required.
	require.NoError(t, svc.Put(ctx, "a", "r", "/k2", "v2"))
	unsigned, err := snapshot.ExportState(ctx, r, svc, "a", "r", nil)
	require.NoError(t, err)
	assert.Empty(t, unsigned.Signature)
	_, err = snapshot.ImportState(ctx, r, coretest.NewKV(), "a", "r", unsigned.ID.String(), verify(key))
	require.ErrorIs(t, err, core.ErrCorrupt)
}

// orderDriver records the operations that matter for durability.
type orderDriver struct {
	store.Driver
	mu  sync.Mutex
	ops []string
}

func (d *orderDriver) record(op string) {
	d.mu.Lock()
	d.ops = append(d.ops, op)
	d.mu.Unlock()
}

func (d *orderDriver) Put(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions) error {
	switch {
	case strings.HasSuffix(name, "/view.json"):
		d.record("view")
	case strings.HasSuffix(name, "/manifest.json"):
		d.record("manifest")
	}
	return d.Driver.Put(ctx, name, body, size, opts)
}

func (d *orderDriver) Sync(ctx context.Context) error {
	d.record("sync")
	return d.Driver.(store.Syncer).Sync(ctx)
}

func TestExportSyncsBlobsBeforeCommit(t *testing.T) {
	fs, err := filestore.New(t.TempDir(), nil)
	require.NoError(t, err)
	drv := &orderDriver{Driver: fs}
	r := snapshot.New(store.New(drv, "test", nil))
	defer r.Close()
	svc := coretest.NewObjectStore()
	_, _, err = coretest.Fill(t.Context(), svc, "a", "r", coretest.FillOptions{Objects: 20, Seed: 1})
	require.NoError(t, err)
	_, err = snapshot.Export(t.Context(), r, svc, "a", "r", nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"sync", "view", "manifest"}, drv.ops)
}
