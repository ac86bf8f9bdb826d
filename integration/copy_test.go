package integration_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/integration/testserver"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store"
)

// openDir opens a repository in a new directory.
func openDir(t *testing.T) *snapshot.Repo {
	t.Helper()
	r, err := snapshot.Open(t.Context(), filepath.Join(t.TempDir(), "repo"))
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

// stored returns the bytes of the manifest and view of snapshot m in r.
func stored(t *testing.T, r *snapshot.Repo, m *manifest.Manifest) (manifestBytes, view []byte) {
	t.Helper()
	manifestBytes, err := r.Store().GetBytes(t.Context(), repo.ManifestName(m.ID), 1<<30)
	require.NoError(t, err)
	view, err = r.Store().GetBytes(t.Context(), repo.ViewName(m.ID), 1<<30)
	require.NoError(t, err)
	return manifestBytes, view
}

// TestCopyFileToS3ToFile copies a signed, tagged snapshot with hostile
// keys and a multipart-sized blob from a directory to MinIO and on to
// another directory: the last holds it byte-exact, and copying again
// transfers no blob.
func TestCopyFileToS3ToFile(t *testing.T) {
	srv := testserver.S3(t)
	srv.SetEnv(t)
	ctx := t.Context()

	svc := coretest.NewObjectStore()
	_, _, err := coretest.Fill(ctx, svc, acct, region, coretest.FillOptions{Objects: 300, Size: 64 << 10, Seed: 11, Hostile: true})
	require.NoError(t, err)
	large := bytes.Repeat([]byte("0123456789abcdef"), 20<<20/16)
	_, err = svc.PutObject(ctx, acct, region, "coretest-plain", "large", large)
	require.NoError(t, err)
	key := []byte("ci signing key")
	first := openDir(t)
	m, err := snapshot.Export(ctx, first, svc, acct, region, &snapshot.ExportOptions{Tag: "fixture", SigningKey: key})
	require.NoError(t, err)

	bucket, err := snapshot.Open(ctx, srv.URL(srv.NewBucket(t), "fixtures"))
	require.NoError(t, err)
	defer bucket.Close()
	last := openDir(t)
	hops := []struct{ from, to *snapshot.Repo }{{first, bucket}, {bucket, last}}
	verify := &snapshot.CopyOptions{Manifest: manifest.DecodeOptions{HMACKey: key}}
	for _, hop := range hops {
		rep, err := snapshot.Copy(ctx, hop.from, hop.to, []string{"fixture"}, verify)
		require.NoError(t, err)
		require.Len(t, rep.Snapshots, 1)
		assert.False(t, rep.Snapshots[0].Existed)
		assert.Positive(t, rep.Transferred)
		assert.Equal(t, len(m.Blobs), rep.Transferred+rep.Skipped)
		assert.Equal(t, []snapshot.CopiedTag{{Name: "fixture", Snapshot: m.ID}}, rep.Tags)
	}

	wantManifest, wantView := stored(t, first, m)
	for _, r := range []*snapshot.Repo{bucket, last} {
		gotManifest, gotView := stored(t, r, m)
		assert.Equal(t, wantManifest, gotManifest, "manifest bytes in %s", r.Location())
		assert.Equal(t, wantView, gotView, "view bytes in %s", r.Location())
	}
	dst := coretest.NewObjectStore()
	_, err = snapshot.Import(ctx, last, dst, acct, region, "fixture", &snapshot.ImportOptions{Manifest: verify.Manifest})
	require.NoError(t, err)
	require.NoError(t, sameState(t, svc, dst))
	_, err = last.Verify(ctx, "fixture", &snapshot.VerifyOptions{ReadData: true})
	require.NoError(t, err)

	for _, hop := range hops {
		rep, err := snapshot.Copy(ctx, hop.from, hop.to, []string{m.ID.String()}, nil)
		require.NoError(t, err)
		assert.True(t, rep.Snapshots[0].Existed)
		assert.Zero(t, rep.Transferred, "a second copy transfers no blob")
	}
}

// TestCopyStreamsDamagedBlobsNowhere copies a snapshot whose large
// blob, streamed rather than spooled, is damaged on the source (altered,
// truncated, one byte longer), from a directory to MinIO and from MinIO
// to a directory: each copy fails with a mismatch naming the key, and
// the target holds neither the blob nor the snapshot.
func TestCopyStreamsDamagedBlobsNowhere(t *testing.T) {
	srv := testserver.S3(t)
	srv.SetEnv(t)
	ctx := t.Context()
	svc := coretest.NewObjectStore()
	large := bytes.Repeat([]byte("0123456789abcdef"), 6<<20/16)
	require.NoError(t, svc.CreateBucket(ctx, acct, region, "coretest-plain", false))
	_, err := svc.PutObject(ctx, acct, region, "coretest-plain", "large", large)
	require.NoError(t, err)
	for _, tc := range []struct {
		name    string
		edit    func([]byte) []byte
		wantErr error
	}{
		{"altered", func(b []byte) []byte { b = bytes.Clone(b); b[len(b)-1] ^= 1; return b }, core.ErrChecksumMismatch},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }, core.ErrSizeMismatch},
		{"longer", func(b []byte) []byte { return append(bytes.Clone(b), 'x') }, core.ErrSizeMismatch},
	} {
		for _, up := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/to S3 %t", tc.name, up), func(t *testing.T) {
				dir := openDir(t)
				bucket, err := snapshot.Open(ctx, srv.URL(srv.NewBucket(t), "r"))
				require.NoError(t, err)
				defer bucket.Close()
				from, to := bucket, dir
				if up {
					from, to = dir, bucket
				}
				m, err := snapshot.Export(ctx, from, svc, acct, region, nil)
				require.NoError(t, err)
				var blob manifest.Entry
				for _, e := range m.Blobs {
					if e.Size == int64(len(large)) {
						blob = e
					}
				}
				require.NotEmpty(t, blob.Key)
				name := repo.BlobName(blob.Digest)
				require.NoError(t, from.Store().PutBytes(ctx, name, tc.edit(large), store.PutOptions{}))

				_, err = snapshot.Copy(ctx, from, to, []string{m.ID.String()}, nil)
				require.ErrorIs(t, err, tc.wantErr)
				var mm *repo.MismatchError
				require.ErrorAs(t, err, &mm)
				assert.Equal(t, blob.Key, mm.Key)
				_, err = to.Store().Stat(ctx, name)
				require.ErrorIs(t, err, core.ErrNotFound, "the damaged blob was stored")
				ms, err := to.List(ctx, snapshot.Filter{})
				require.NoError(t, err)
				assert.Empty(t, ms, "a snapshot was committed")
			})
		}
	}
}

// TestCLICopyToS3 pushes a fixture to MinIO with the CLI, as a CI job
// does, with the credentials in the environment.
func TestCLICopyToS3(t *testing.T) {
	srv := testserver.S3(t)
	bin := filepath.Join(t.TempDir(), "statebucket")
	build := exec.Command("go", "build", "-o", bin, "../cmd/statebucket")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))
	local := filepath.Join(t.TempDir(), "local")
	bucketURL := srv.URL(srv.NewBucket(t), "ci")

	statebucket := func(args ...string) []byte {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), bin, args...)
		cmd.Env = append(os.Environ(), srv.Env()...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, stderr.String())
		return out
	}
	statebucket("--repo", local, "demo", "--objects", "100")
	statebucket("--repo", local, "tag", "fixture", "latest")
	for i := range 2 {
		var res struct {
			Snapshots []struct {
				ID      string `json:"id"`
				Existed bool   `json:"existed"`
			} `json:"snapshots"`
			Transferred int `json:"transferred_blobs"`
		}
		require.NoError(t, json.Unmarshal(statebucket("--json", "copy", "--from", local, "--to", bucketURL, "fixture"), &res))
		require.Len(t, res.Snapshots, 1)
		assert.Equal(t, i == 1, res.Snapshots[0].Existed)
		if i == 1 {
			assert.Zero(t, res.Transferred)
		}
	}
	out = statebucket("--repo", bucketURL, "verify", "--read-data", "fixture")
	assert.Contains(t, string(out), "is whole")
}
