package snapshot_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
	"github.com/statebucket/statebucket/visitors"
)

// countDriver counts the calls that reach a driver, by operation and by
// the kind of object named: "put blob", "create blob" (create-only),
// "stat blob", "get blob", "list blobs/", "put head"… It passes syncs and
// conditional writes on.
type countDriver struct {
	store.Driver
	mu     sync.Mutex
	counts map[string]int
}

func (d *countDriver) add(op, name string) {
	kind := "other"
	switch {
	case strings.HasPrefix(name, "blobs/"):
		kind = "blob"
	case strings.HasPrefix(name, "heads/"):
		kind = "head"
	case strings.HasSuffix(name, "/manifest.json"):
		kind = "manifest"
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.counts[op+" "+kind]++
}

// reset returns the counts so far and starts again from zero.
func (d *countDriver) reset() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.counts
	d.counts = map[string]int{}
	return c
}

func (d *countDriver) Put(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions) error {
	if opts.CreateOnly {
		d.add("create", name)
	} else {
		d.add("put", name)
	}
	return d.Driver.Put(ctx, name, body, size, opts)
}

func (d *countDriver) PutIfMatch(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions, version string) error {
	d.add("put", name)
	return d.Driver.(store.ConditionalPutter).PutIfMatch(ctx, name, body, size, opts, version)
}

func (d *countDriver) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	d.add("get", name)
	return d.Driver.Get(ctx, name)
}

func (d *countDriver) GetRange(ctx context.Context, name string, off, n int64) (io.ReadCloser, error) {
	d.add("get", name)
	return d.Driver.GetRange(ctx, name, off, n)
}

func (d *countDriver) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	d.add("stat", name)
	return d.Driver.Stat(ctx, name)
}

func (d *countDriver) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	d.mu.Lock()
	d.counts["list "+prefix]++
	d.mu.Unlock()
	return d.Driver.List(ctx, prefix, fn)
}

func (d *countDriver) Delete(ctx context.Context, name string) error {
	d.add("delete", name)
	return d.Driver.Delete(ctx, name)
}

func (d *countDriver) Sync(ctx context.Context) error { return d.Driver.(store.Syncer).Sync(ctx) }

// countedRepo opens the repository in dir through a countDriver.
func countedRepo(t *testing.T, dir string) (*snapshot.Repo, *countDriver) {
	t.Helper()
	fs, err := filestore.New(dir, nil)
	require.NoError(t, err)
	drv := &countDriver{Driver: fs, counts: map[string]int{}}
	r := snapshot.New(store.New(drv, dir, nil))
	t.Cleanup(func() { r.Close() })
	return r, drv
}

// blobCalls returns the calls of counts on blobs.
func blobCalls(counts map[string]int) map[string]int {
	out := map[string]int{}
	for k, n := range counts {
		if strings.HasSuffix(k, " blob") || strings.HasPrefix(k, "list blobs") {
			out[k] = n
		}
	}
	return out
}

// requireWhole checks that the snapshot m of r holds all its blobs.
func requireWhole(t *testing.T, r *snapshot.Repo, m *manifest.Manifest) {
	t.Helper()
	_, err := r.Verify(t.Context(), m.ID.String(), &snapshot.VerifyOptions{ReadData: true})
	require.NoError(t, err)
}

// filled returns an object store filled with n objects from seed.
func filled(t *testing.T, n int, seed int64) *coretest.ObjectStore {
	t.Helper()
	svc := coretest.NewObjectStore()
	_, _, err := coretest.Fill(t.Context(), svc, "a", "r", coretest.FillOptions{Objects: n, Seed: seed})
	require.NoError(t, err)
	return svc
}

// An export makes the same calls whether the repository holds no other
// blob or thousands: it lists none of them.
func TestExportCostFollowsTheState(t *testing.T) {
	others := 5000
	if testing.Short() {
		others = 1000
	}
	var calls []map[string]int
	for _, m := range []int{0, others} {
		dir := t.TempDir()
		for i := range m {
			data := fmt.Appendf(nil, "unrelated blob %d", i)
			sum := sha256.Sum256(data)
			h := hex.EncodeToString(sum[:])
			path := filepath.Join(dir, "blobs", "sha256", h[:2], h)
			require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
			require.NoError(t, os.WriteFile(path, data, 0o644))
		}
		r, drv := countedRepo(t, dir)
		var st visitors.Stats
		m, err := snapshot.Export(t.Context(), r, filled(t, 60, 1), "a", "r", &snapshot.ExportOptions{Stats: &st})
		require.NoError(t, err)
		got := drv.reset()
		requireWhole(t, r, m)
		assert.Equal(t, len(m.Blobs), st.Blobs)
		for k := range got {
			assert.False(t, strings.HasPrefix(k, "list blobs"), "no listing of blobs: %s", k)
		}
		calls = append(calls, got)
	}
	assert.Equal(t, calls[0], calls[1], "the same calls with 0 and %d other blobs stored", others)
	assert.Zero(t, calls[0]["stat blob"], "new small blobs are written without a lookup")
}

// A second export of unchanged state finds its parent in the head of its
// scope: no blob is written, created or looked up, and the manifest,
// read as the parent, is not read again at the commit.
func TestReExportMakesNoBlobCalls(t *testing.T) {
	r, drv := countedRepo(t, t.TempDir())
	svc := filled(t, 60, 2)
	first, err := snapshot.Export(t.Context(), r, svc, "a", "r", nil)
	require.NoError(t, err)
	drv.reset()
	var st visitors.Stats
	again, err := snapshot.Export(t.Context(), r, svc, "a", "r", &snapshot.ExportOptions{Stats: &st})
	require.NoError(t, err)
	assert.Equal(t, first.ID, again.ID)
	calls := drv.reset()
	assert.Equal(t, 1, calls["get manifest"], "the parent's manifest is read once")
	assert.Empty(t, blobCalls(calls))
	assert.Zero(t, st.Uploaded)
	assert.Equal(t, len(first.Blobs), st.Skipped)
}

// exportTwice exports svc into a fresh repository as (account a, region
// r), and then the same blobs plus one as account "b" (another scope,
// with no head yet), with opts, and returns the second export's calls on
// blobs and stats.
func exportTwice(t *testing.T, prepare func(r *snapshot.Repo, first *manifest.Manifest), opts *snapshot.ExportOptions, firstOpts *snapshot.ExportOptions) (map[string]int, visitors.Stats, *snapshot.Repo, *manifest.Manifest) {
	t.Helper()
	ctx := t.Context()
	r, drv := countedRepo(t, t.TempDir())
	svc := bucketStore(t, map[string]string{"k1": "one", "k2": "two", "k3": "three"})
	first, err := snapshot.Export(ctx, r, svc, "a", "r", firstOpts)
	require.NoError(t, err)
	if prepare != nil {
		prepare(r, first)
	}
	require.NoError(t, svc.CreateBucket(ctx, "b", "r", "b", false))
	for k, v := range map[string]string{"k1": "one", "k2": "two", "k3": "three", "k4": "four"} {
		_, err := svc.PutObject(ctx, "b", "r", "b", k, []byte(v))
		require.NoError(t, err)
	}
	drv.reset()
	var st visitors.Stats
	if opts == nil {
		opts = &snapshot.ExportOptions{}
	}
	opts.Stats = &st
	m, err := snapshot.Export(ctx, r, svc, "b", "r", opts)
	require.NoError(t, err)
	calls := blobCalls(drv.reset())
	requireWhole(t, r, m)
	return calls, st, r, m
}

// The parents of an export: an explicit ref, the snapshot its tag points
// at, each spares the blobs it records every call.
func TestExportParents(t *testing.T) {
	oneNew := map[string]int{"create blob": 1}
	t.Run("none", func(t *testing.T) {
		calls, st, _, _ := exportTwice(t, nil, nil, nil)
		assert.Equal(t, map[string]int{"create blob": 4, "stat blob": 3}, calls, "stored blobs are refused and checked")
		assert.Equal(t, 1, st.Uploaded)
		assert.Equal(t, 3, st.Skipped)
	})
	t.Run("explicit id", func(t *testing.T) {
		opts := &snapshot.ExportOptions{}
		calls, st, _, _ := exportTwice(t, func(_ *snapshot.Repo, m *manifest.Manifest) { opts.Parent = m.ID.Short() }, opts, nil)
		assert.Equal(t, oneNew, calls)
		assert.Equal(t, visitors.Stats{Blobs: 4, Bytes: 15, Uploaded: 1, UploadedBytes: 4, Skipped: 3}, st)
	})
	t.Run("explicit tag", func(t *testing.T) {
		calls, _, _, _ := exportTwice(t, func(r *snapshot.Repo, m *manifest.Manifest) {
			_, err := r.Tag(t.Context(), "v1", m.ID.String(), nil)
			require.NoError(t, err)
		}, &snapshot.ExportOptions{Parent: "v1"}, nil)
		assert.Equal(t, oneNew, calls)
	})
	t.Run("explicit latest", func(t *testing.T) {
		// "latest" is the newest snapshot of the export's own scope.
		r := openTemp(t)
		svc := bucketStore(t, map[string]string{"k": "v"})
		_, err := snapshot.Export(t.Context(), r, svc, "a", "r", &snapshot.ExportOptions{Parent: "latest"})
		require.ErrorIs(t, err, core.ErrNotFound, "no snapshot of the scope yet")
		first, err := snapshot.Export(t.Context(), r, svc, "a", "r", nil)
		require.NoError(t, err)
		var st visitors.Stats
		again, err := snapshot.Export(t.Context(), r, svc, "a", "r", &snapshot.ExportOptions{Parent: "latest", Stats: &st})
		require.NoError(t, err)
		assert.Equal(t, first.ID, again.ID)
		assert.Equal(t, 1, st.Skipped)
	})
	t.Run("tag", func(t *testing.T) {
		calls, _, r, m := exportTwice(t, nil, &snapshot.ExportOptions{Tag: "ci"}, &snapshot.ExportOptions{Tag: "ci"})
		assert.Equal(t, oneNew, calls)
		got, err := r.Show(t.Context(), "ci", snapshot.Filter{})
		require.NoError(t, err)
		assert.Equal(t, m.ID, got.ID, "the tag moved to the new snapshot")
	})
	t.Run("unknown ref", func(t *testing.T) {
		r := openTemp(t)
		_, err := snapshot.Export(t.Context(), r, bucketStore(t, map[string]string{"k": "v"}), "a", "r", &snapshot.ExportOptions{Parent: "no-such-tag"})
		require.ErrorIs(t, err, core.ErrNotFound)
		assert.Contains(t, err.Error(), `"no-such-tag"`)
		ms, err := r.List(t.Context(), snapshot.Filter{})
		require.NoError(t, err)
		assert.Empty(t, ms, "nothing committed")
	})
	t.Run("dry run reads no parent", func(t *testing.T) {
		m, err := snapshot.Export(t.Context(), nil, bucketStore(t, map[string]string{"k": "v"}), "a", "r", &snapshot.ExportOptions{DryRun: true, Parent: "no-such-tag"})
		require.NoError(t, err)
		assert.Len(t, m.Blobs, 1)
	})
}

// A head is a hint: one pointing at a removed snapshot, or damaged, means
// no parent, and the export is whole all the same.
func TestExportHeadHints(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, r *snapshot.Repo, first *manifest.Manifest)
	}{
		{"removed snapshot", func(t *testing.T, r *snapshot.Repo, first *manifest.Manifest) {
			_, err := r.Remove(ctx, []string{first.ID.String()}, nil)
			require.NoError(t, err)
		}},
		{"garbled", func(t *testing.T, r *snapshot.Repo, _ *manifest.Manifest) {
			require.NoError(t, r.Store().PutBytes(ctx, repo.HeadName("s3", "a", "r"), []byte("{garbage"), store.PutOptions{}))
		}},
		{"another scope's head", func(t *testing.T, r *snapshot.Repo, _ *manifest.Manifest) {
			other, err := r.Store().GetBytes(ctx, repo.HeadName("s3", "a", "r"), 1<<10)
			require.NoError(t, err)
			require.NoError(t, r.Store().PutBytes(ctx, repo.HeadName("s3", "a", "r"),
				[]byte(strings.Replace(string(other), `"account": "a"`, `"account": "x"`, 1)), store.PutOptions{}))
		}},
		{"a forged id", func(t *testing.T, r *snapshot.Repo, first *manifest.Manifest) {
			layer := repo.New(r.Store(), nil)
			forged := manifestOf(t, "forged view")
			require.NoError(t, layer.WriteHead(ctx, first.Service, first.Account, first.Region, forged.ID))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, drv := countedRepo(t, t.TempDir())
			svc := bucketStore(t, map[string]string{"k1": "one", "k2": "two"})
			first, err := snapshot.Export(ctx, r, svc, "a", "r", nil)
			require.NoError(t, err)
			require.Equal(t, "s3", first.Service, "the scope the head names")
			tc.damage(t, r, first)
			drv.reset()
			var st visitors.Stats
			m, err := snapshot.Export(ctx, r, svc, "a", "r", &snapshot.ExportOptions{Stats: &st})
			require.NoError(t, err)
			assert.Equal(t, map[string]int{"create blob": 2, "stat blob": 2}, blobCalls(drv.reset()), "no parent: every blob is checked")
			requireWhole(t, r, m)
			drv.reset()
			assert.Equal(t, 0, st.Uploaded)
			assert.Equal(t, 2, st.Skipped)

			// The export made itself the head again: the next one has a
			// parent.
			_, err = snapshot.Export(ctx, r, svc, "a", "r", nil)
			require.NoError(t, err)
			assert.Empty(t, blobCalls(drv.reset()))
		})
	}
}

// With a signing key, a parent not signed with it is not used: an export
// does not trust an unsigned manifest's word that its blobs are stored.
func TestSignedExportIgnoresUnsignedParent(t *testing.T) {
	key := []byte("ci-signing-key")
	calls, st, r, m := exportTwice(t, nil, &snapshot.ExportOptions{SigningKey: key, Tag: "t"}, &snapshot.ExportOptions{Tag: "t"})
	assert.Equal(t, map[string]int{"create blob": 4, "stat blob": 3}, calls, "no parent")
	assert.Equal(t, 1, st.Uploaded)
	require.NoError(t, m.VerifySignature(key))
	_, err := r.Verify(t.Context(), m.ID.String(), &snapshot.VerifyOptions{ReadData: true, Manifest: manifest.DecodeOptions{HMACKey: key}})
	require.NoError(t, err)

	// A parent signed with the key is used.
	calls, _, _, _ = exportTwice(t, nil, &snapshot.ExportOptions{SigningKey: key, Tag: "t"}, &snapshot.ExportOptions{SigningKey: key, Tag: "t"})
	assert.Equal(t, map[string]int{"create blob": 1}, calls)
}

// gc removes the heads whose snapshot is gone, and keeps the others.
func TestGCRemovesStaleHeads(t *testing.T) {
	ctx := t.Context()
	r := openTemp(t)
	kept, err := snapshot.Export(ctx, r, bucketStore(t, map[string]string{"k": "kept"}), "a", "r", nil)
	require.NoError(t, err)
	svc := coretest.NewObjectStore()
	require.NoError(t, svc.CreateBucket(ctx, "gone", "r", "b", false))
	_, err = svc.PutObject(ctx, "gone", "r", "b", "k", []byte("gone"))
	require.NoError(t, err)
	gone, err := snapshot.Export(ctx, r, svc, "gone", "r", nil)
	require.NoError(t, err)
	_, err = r.Remove(ctx, []string{gone.ID.String()}, nil)
	require.NoError(t, err)
	layer := repo.New(r.Store(), nil)

	dry, err := r.GC(ctx, &snapshot.GCOptions{DryRun: true})
	require.NoError(t, err)
	assert.Equal(t, 1, dry.Heads)
	heads, err := layer.ListHeads(ctx)
	require.NoError(t, err)
	assert.Len(t, heads, 2, "a dry run removes nothing")

	rep, err := r.GC(ctx, nil)
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Heads)
	heads, err = layer.ListHeads(ctx)
	require.NoError(t, err)
	require.Len(t, heads, 1)
	h, err := layer.ReadHeadScope(ctx, heads[0])
	require.NoError(t, err)
	assert.Equal(t, kept.ID, h.Snapshot)
}

// A copy deduplicates against the target's head of the scope and the
// target's copy of the tags it copies, and makes its snapshot the head.
func TestCopyUsesTargetParents(t *testing.T) {
	ctx := t.Context()
	from := openTemp(t)
	to, drv := countedRepo(t, t.TempDir())
	svc := filled(t, 40, 3)
	first, err := snapshot.Export(ctx, from, svc, "a", "r", &snapshot.ExportOptions{Tag: "ci"})
	require.NoError(t, err)
	_, err = snapshot.Copy(ctx, from, to, []string{"ci"}, nil)
	require.NoError(t, err)
	_, err = svc.PutObject(ctx, "a", "r", "coretest-plain", "brand-new", []byte("brand new bytes"))
	require.NoError(t, err)
	second, err := snapshot.Export(ctx, from, svc, "a", "r", &snapshot.ExportOptions{Tag: "ci"})
	require.NoError(t, err)
	require.NotEqual(t, first.ID, second.ID)

	drv.reset()
	rep, err := snapshot.Copy(ctx, from, to, []string{"ci"}, nil)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"create blob": 1}, blobCalls(drv.reset()), "only the new blob is written")
	assert.Equal(t, 1, rep.Transferred)
	requireWhole(t, to, second)
	h, err := repo.New(to.Store(), nil).ReadHead(ctx, second.Service, second.Account, second.Region)
	require.NoError(t, err)
	assert.Equal(t, second.ID, h.Snapshot)
}
