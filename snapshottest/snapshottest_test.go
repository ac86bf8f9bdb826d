package snapshottest_test

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/snapshottest"
	"github.com/statebucket/statebucket/store"
)

func TestMain(m *testing.M) { snapshottest.Main(m) }

const acct, region = "123456789012", "eu-west-1"

// remote counts the calls that reach the drivers of counted+<scheme>://
// repositories: the test's view of what a restore asks the remote.
var remote counter

type counter struct {
	mu        sync.Mutex
	calls     int
	blobReads int
}

func (c *counter) add(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if _, ok := repo.ParseBlobName(name); ok {
		c.blobReads++
	}
}

// reset returns the counts so far and starts again from zero.
func (c *counter) reset() (calls, blobReads int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	calls, blobReads = c.calls, c.blobReads
	c.calls, c.blobReads = 0, 0
	return calls, blobReads
}

// countingDriver counts the calls to a driver; only reads touch blobs in
// a restore.
type countingDriver struct{ store.Driver }

func (d countingDriver) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	remote.add(name)
	return d.Driver.Get(ctx, name)
}

func (d countingDriver) GetRange(ctx context.Context, name string, off, n int64) (io.ReadCloser, error) {
	remote.add(name)
	return d.Driver.GetRange(ctx, name, off, n)
}

func (d countingDriver) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	remote.add(name)
	return d.Driver.Stat(ctx, name)
}

func (d countingDriver) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	remote.add(prefix)
	return d.Driver.List(ctx, prefix, fn)
}

func init() {
	for _, scheme := range []string{"s3", "file"} {
		store.Register("counted+"+scheme, func(ctx context.Context, u *url.URL) (store.Driver, error) {
			inner := *u
			inner.Scheme = scheme
			st, err := store.Open(ctx, inner.String())
			if err != nil {
				return nil, err
			}
			return countingDriver{st.Driver()}, nil
		})
	}
}

// counted returns repoURL read through a countingDriver.
func counted(repoURL string) string {
	if !strings.Contains(repoURL, "://") {
		repoURL = "file://" + filepath.ToSlash(repoURL)
	}
	return "counted+" + repoURL
}

// publish exports a filled object store into the repository at repoURL
// under tag fixture and returns the manifest.
func publish(t *testing.T, repoURL string, objects int) *manifest.Manifest {
	t.Helper()
	r, err := snapshot.Open(t.Context(), repoURL)
	require.NoError(t, err)
	defer r.Close()
	svc := coretest.NewObjectStore()
	_, _, err = coretest.Fill(t.Context(), svc, acct, region, coretest.FillOptions{Objects: objects, Size: 16 << 10, Seed: int64(objects), Hostile: true})
	require.NoError(t, err)
	m, err := snapshot.Export(t.Context(), r, svc, acct, region, &snapshot.ExportOptions{Tag: "fixture"})
	require.NoError(t, err)
	return m
}

func distinctBlobs(m *manifest.Manifest) int {
	seen := map[digest.Digest]bool{}
	for _, e := range m.Blobs {
		seen[e.Digest] = true
	}
	return len(seen)
}

// requireHolds requires got to hold the state m is a snapshot of: a dry
// run of its export, whose id covers the view and every blob's key and
// digest, yields m's id.
func requireHolds(t *testing.T, m *manifest.Manifest, got *coretest.ObjectStore) {
	t.Helper()
	dry, err := snapshot.Export(t.Context(), nil, got, acct, region, &snapshot.ExportOptions{DryRun: true})
	require.NoError(t, err)
	require.Equal(t, m.ID, dry.ID, "the state differs from snapshot %s", m.ID)
}

// The restore from MinIO fills the cache the first time, downloads no
// blob the second time, and with a full id does not ask MinIO at all.
func TestRestoreFromMinIOWithACache(t *testing.T) {
	minio := snapshottest.MinIO(t)
	m := publish(t, minio.URL, 150)
	repoURL := counted(minio.URL)
	cache := filepath.Join(t.TempDir(), "cache")
	remote.reset()

	var rep snapshottest.Report
	opts := &snapshottest.Options{CacheDir: cache, Report: &rep}
	cold := coretest.NewObjectStore()
	got := snapshottest.RestoreWith(t, cold, repoURL, "fixture", acct, region, opts)
	assert.Equal(t, m.ID, got.ID)
	requireHolds(t, m, cold)
	_, blobReads := remote.reset()
	assert.Equal(t, distinctBlobs(m), blobReads, "a cold cache downloads each distinct blob once")
	require.NotNil(t, rep.Copy)
	assert.Equal(t, distinctBlobs(m), rep.Copy.Transferred)
	assert.Equal(t, cache, rep.Cache)

	warm := coretest.NewObjectStore()
	snapshottest.RestoreWith(t, warm, repoURL, "fixture", acct, region, opts)
	requireHolds(t, m, warm)
	calls, blobReads := remote.reset()
	assert.Zero(t, blobReads, "a warm cache downloads no blob")
	assert.Positive(t, calls, "the tag is read from the repository")
	assert.Zero(t, rep.Copy.Transferred)
	assert.True(t, rep.Copy.Snapshots[0].Existed)

	byID := coretest.NewObjectStore()
	snapshottest.RestoreWith(t, byID, repoURL, m.ID.String(), acct, region, opts)
	requireHolds(t, m, byID)
	calls, _ = remote.reset()
	assert.Zero(t, calls, "a full id in the cache needs nothing from the repository")
	assert.Nil(t, rep.Copy)

	off := coretest.NewObjectStore()
	snapshottest.RestoreWith(t, off, repoURL, snapshot.Latest, acct, region, &snapshottest.Options{CacheDir: snapshottest.CacheOff, Report: &rep})
	requireHolds(t, m, off)
	_, blobReads = remote.reset()
	assert.GreaterOrEqual(t, blobReads, distinctBlobs(m), "without a cache every blob is downloaded")
	assert.Empty(t, rep.Cache)
}

// The cache directory comes from STATEBUCKET_CACHE_DIR, or the user's
// cache directory; "" or "off" turn it off.
func TestCacheDirFromTheEnvironment(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "remote")
	publish(t, dir, 10)
	userCache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", userCache)
	t.Setenv("HOME", userCache)
	envDir := filepath.Join(t.TempDir(), "env-cache")
	for _, tc := range []struct {
		env  *string
		want string
	}{
		{nil, filepath.Join(userCache, "statebucket")},
		{ptr(envDir), envDir},
		{ptr("off"), ""},
		{ptr(""), ""},
	} {
		name := "unset"
		if tc.env != nil {
			name = fmt.Sprintf("%q", *tc.env)
		}
		t.Run(name, func(t *testing.T) {
			t.Setenv(snapshottest.EnvCacheDir, "")
			if tc.env == nil {
				unsetenv(t, snapshottest.EnvCacheDir)
			} else {
				t.Setenv(snapshottest.EnvCacheDir, *tc.env)
			}
			var rep snapshottest.Report
			snapshottest.RestoreWith(t, coretest.NewObjectStore(), counted(dir), "fixture", acct, region, &snapshottest.Options{Report: &rep})
			assert.Equal(t, tc.want, rep.Cache)
		})
	}
}

func ptr(s string) *string { return &s }

// unsetenv unsets key for the rest of the test; t.Setenv(key, …) must
// have been called first, to restore it after.
func unsetenv(t *testing.T, key string) {
	t.Helper()
	require.NoError(t, os.Unsetenv(key))
}

// A local directory is restored from directly: it needs no cache.
func TestLocalRepositoryNeedsNoCache(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "local")
	m := publish(t, dir, 20)
	var rep snapshottest.Report
	got := coretest.NewObjectStore()
	snapshottest.RestoreWith(t, got, dir, "fixture", acct, region, &snapshottest.Options{CacheDir: t.TempDir(), Report: &rep})
	requireHolds(t, m, got)
	assert.Empty(t, rep.Cache)
	assert.Nil(t, rep.Copy)
}

// A service without blobs restores through the same call.
func TestRestoreStatefulService(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "kv")
	r, err := snapshot.Open(ctx, dir)
	require.NoError(t, err)
	defer r.Close()
	kv := coretest.NewKV()
	require.NoError(t, kv.Put(ctx, acct, region, "/app/flag", "on"))
	_, err = snapshot.ExportState(ctx, r, kv, acct, region, &snapshot.ExportOptions{Tag: "params"})
	require.NoError(t, err)

	got := coretest.NewKV()
	snapshottest.RestoreWith(t, got, counted(dir), "params", acct, region, &snapshottest.Options{CacheDir: t.TempDir()})
	v, err := got.Get(ctx, acct, region, "/app/flag")
	require.NoError(t, err)
	assert.Equal(t, "on", v)
}

// fatalTB records the failure of a test helper instead of failing the
// test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// failure runs restore with a fatalTB and returns the message it failed
// with, or "".
func failure(t *testing.T, restore func(tb testing.TB)) string {
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		restore(f)
	}()
	<-done
	return f.msg
}

// A failed restore stops the test with a message naming the repository
// (without its credentials), the ref and the cause.
func TestRestoreFailureMessage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "remote")
	m := publish(t, dir, 30)
	cache := filepath.Join(t.TempDir(), "cache")
	opts := &snapshottest.Options{CacheDir: cache}

	msg := failure(t, func(tb testing.TB) {
		snapshottest.RestoreWith(tb, coretest.NewObjectStore(), counted(dir), "no-such-tag", acct, region, opts)
	})
	assert.Contains(t, msg, `restore "no-such-tag" from counted+file://`)
	assert.Contains(t, msg, "into s3 "+acct+"/"+region)
	assert.Contains(t, msg, `no tag "no-such-tag"`)

	msg = failure(t, func(tb testing.TB) {
		snapshottest.Restore(tb, coretest.NewObjectStore(), "s3://AKIAEXAMPLE:topsecret@bucket/repo", "fixture", acct, region)
	})
	assert.Contains(t, msg, "credentials in a repository URL are not supported")
	assert.NotContains(t, msg, "topsecret")

	// A damaged blob fails the copy into the cache, naming the key, and
	// the cache keeps no manifest of the snapshot.
	var bad manifest.Entry
	for _, e := range m.Blobs {
		if e.Size > bad.Size {
			bad = e
		}
	}
	r, err := snapshot.Open(t.Context(), dir)
	require.NoError(t, err)
	defer r.Close()
	name := repo.BlobName(bad.Digest)
	data, err := r.Store().GetBytes(t.Context(), name, 1<<20)
	require.NoError(t, err)
	data[0] ^= 1
	require.NoError(t, r.Store().PutBytes(t.Context(), name, data, store.PutOptions{}))
	svc := coretest.NewObjectStore()
	msg = failure(t, func(tb testing.TB) {
		snapshottest.RestoreWith(tb, svc, counted(dir), "fixture", acct, region, opts)
	})
	assert.Contains(t, msg, "copy into the blob cache "+cache)
	assert.Contains(t, msg, fmt.Sprintf("%q", bad.Key))
	assert.Contains(t, msg, core.ErrChecksumMismatch.Error())
	c, err := snapshot.Open(t.Context(), cache)
	require.NoError(t, err)
	defer c.Close()
	ms, err := c.List(t.Context(), snapshot.Filter{})
	require.NoError(t, err)
	assert.Empty(t, ms, "the cache holds no manifest of the damaged snapshot")
	view, err := svc.Snapshot(t.Context(), acct, region)
	require.NoError(t, err)
	empty, err := coretest.NewObjectStore().Snapshot(t.Context(), acct, region)
	require.NoError(t, err)
	assert.Equal(t, empty, view, "the service was left alone")
}
