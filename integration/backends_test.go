package integration_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/integration/testserver"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store"
)

// backend is a kind of repository that the reliability suite (crash,
// commit order, faults, load) runs on. Each test of the suite runs once
// per entry of [backends].
type backend struct {
	name string
	// newRepo returns the URL of a new, empty repository, which this
	// process can open once newRepo returns, and the environment a child
	// process needs to open it too.
	newRepo func(t *testing.T) (url string, env []string)
	// debris, if set, lists what interrupted writes left in the
	// repository at url that no listing of snapshots shows: temporary
	// files of a directory, incomplete multipart uploads of S3.
	debris func(t *testing.T, url string) []string
	// leftover, if set, says why the backend's debris outlives every
	// cleanup: the crash test then counts it rather than refusing it.
	leftover string
	// cutLeavesTemp says that an upload killed midway leaves a temporary
	// file for store.Cleaner: a directory's. (A GCS upload of the crash
	// test's sizes leaves nothing; only a composite upload, from 150 MiB,
	// leaves parts.)
	cutLeavesTemp bool
	// full runs the crash and load tests at full size (22 kills, 64
	// concurrent exports), as on the backends issue 10 names (directory,
	// MinIO, fake-gcs-server); gocloud runs them at a third of it, its
	// drivers' own suites covering the rest.
	full bool
}

// backends are the repositories the suite runs on; a backend whose test
// server is missing is skipped, or fails in CI, as its harness decides.
// A backend only this process can reach (gocloud's mem://) fits every
// test but the crash test, whose writers are other processes.
var backends = []backend{
	{name: "directory", newRepo: dirRepo, debris: dirDebris, cutLeavesTemp: true, full: true},
	{name: "minio", newRepo: serverRepo(func(t testing.TB) bucketServer { return testserver.S3(t) }), debris: s3Debris, full: true},
	{name: "gcs", newRepo: serverRepo(func(t testing.TB) bucketServer { return testserver.GCS(t) }), debris: gcsDebris, full: true},
	{name: "gocloud-file", newRepo: gocloudFileRepo, debris: gocloudFileDebris,
		leftover: "gocloudstore has no store.Cleaner: the temporary files of fileblob's killed writes stay"},
}

// scaled returns n on a full backend, and a third of it on the others.
func (b backend) scaled(n int) int {
	if b.full {
		return n
	}
	return n / 3
}

// eachBackend runs test once per backend, as a subtest named after it.
func eachBackend(t *testing.T, test func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { test(t, b) })
	}
}

// dirRepo is the newRepo of a local directory.
func dirRepo(t *testing.T) (string, []string) {
	return filepath.Join(t.TempDir(), "repo"), nil
}

// dirDebris lists the temporary files under the directory dir, those a
// Put killed half-way leaves.
func dirDebris(t *testing.T, dir string) []string {
	return filesUnder(t, dir, func(name string) bool { return strings.HasPrefix(name, ".tmp-") })
}

// filesUnder lists the files under dir whose names match; a missing dir
// holds none.
func filesUnder(t *testing.T, dir string, match func(name string) bool) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		switch {
		case errors.Is(err, fs.ErrNotExist) && p == dir:
			return nil
		case err == nil && !e.IsDir() && match(e.Name()):
			out = append(out, p)
		}
		return err
	})
	require.NoError(t, err)
	return out
}

// serverRepo returns the newRepo of a new bucket on the server srv
// returns; it sets the server's environment in this process.
func serverRepo(srv func(t testing.TB) bucketServer) func(t *testing.T) (string, []string) {
	return func(t *testing.T) (string, []string) {
		s := srv(t)
		s.SetEnv(t)
		return s.URL(s.NewBucket(t), "suite/repo"), s.Env()
	}
}

// gocloudFileRepo is the newRepo of a directory through gocloud.dev's
// fileblob.
func gocloudFileRepo(t *testing.T) (string, []string) {
	u := url.URL{Scheme: "gocloud+file", Path: filepath.Join(t.TempDir(), "repo")}
	return u.String(), nil
}

// gocloudFileDebris lists the temporary files of fileblob under the
// directory of the gocloud+file URL repoURL: <name>.<hex>.tmp beside the
// object they were to become.
func gocloudFileDebris(t *testing.T, repoURL string) []string {
	t.Helper()
	u, err := url.Parse(repoURL)
	require.NoError(t, err)
	return filesUnder(t, u.Path, func(name string) bool { return strings.HasSuffix(name, ".tmp") })
}

// s3Debris lists the incomplete multipart uploads under the repository
// at the s3:// URL repoURL.
func s3Debris(t *testing.T, repoURL string) []string {
	t.Helper()
	u, err := url.Parse(repoURL)
	require.NoError(t, err)
	out, err := testserver.S3(t).Client(t, nil).ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{
		Bucket: aws.String(u.Host),
		Prefix: aws.String(strings.TrimPrefix(u.Path, "/")),
	})
	require.NoError(t, err)
	var keys []string
	for _, up := range out.Uploads {
		keys = append(keys, aws.ToString(up.Key))
	}
	return keys
}

// gcsDebris is the debris of a GCS repository: the parts of composite
// uploads.
func gcsDebris(t *testing.T, repoURL string) []string {
	t.Helper()
	u, err := url.Parse(repoURL)
	require.NoError(t, err)
	return testserver.GCS(t).ObjectNames(t, u.Host, strings.TrimPrefix(u.Path, "/")+"/tmp/")
}

// openWrapped opens the repository at rawURL as snapshot.Open does, with
// its driver wrapped by wrap, and the store options opts (nil: the
// defaults). It is closed when the test ends.
func openWrapped(t *testing.T, rawURL string, wrap func(store.Driver) store.Driver, opts *store.Options) *snapshot.Repo {
	t.Helper()
	st, err := store.Open(t.Context(), rawURL)
	require.NoError(t, err)
	r := snapshot.New(store.New(wrap(st.Driver()), st.Location(), opts))
	t.Cleanup(func() { r.Close() })
	return r
}

// tapEvent is a call to a driver that a [tapDriver] reports: once before
// the call reaches the driver, once after it returned (Done). A Put
// large enough reports a third time, "put-half", when its body is read
// past its middle.
type tapEvent struct {
	Op         string // "put", "put-half", "get", "get-range", "stat", "list", "delete", "sync"
	Name       string // object name, or list prefix
	Size       int64  // of a Put
	CreateOnly bool   // of a Put
	Done       bool
	Err        error // when Done
}

// tapDriver wraps a store.Driver and reports every call to on, which
// may block the call, or fail the test. It keeps the driver's optional
// abilities (Concurrency, Syncer, Cleaner): a Sync is reported only on a
// driver that syncs. It is safe for concurrent use if on is.
type tapDriver struct {
	store.Driver
	on func(tapEvent)
	// halfSize is the size from which a Put reports "put-half"; 0 means
	// never.
	halfSize int64
}

func (d *tapDriver) call(e tapEvent, do func() error) error {
	d.on(e)
	err := do()
	e.Done, e.Err = true, err
	d.on(e)
	return err
}

func (d *tapDriver) Put(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions) error {
	e := tapEvent{Op: "put", Name: name, Size: size, CreateOnly: opts.CreateOnly}
	if d.halfSize > 0 && size >= d.halfSize {
		body = &halfReader{ReaderAt: body, half: size / 2, reached: func() { d.on(tapEvent{Op: "put-half", Name: name, Size: size}) }}
	}
	return d.call(e, func() error { return d.Driver.Put(ctx, name, body, size, opts) })
}

func (d *tapDriver) Get(ctx context.Context, name string) (rc io.ReadCloser, err error) {
	err = d.call(tapEvent{Op: "get", Name: name}, func() error {
		rc, err = d.Driver.Get(ctx, name)
		return err
	})
	return rc, err
}

func (d *tapDriver) GetRange(ctx context.Context, name string, offset, length int64) (rc io.ReadCloser, err error) {
	err = d.call(tapEvent{Op: "get-range", Name: name}, func() error {
		rc, err = d.Driver.GetRange(ctx, name, offset, length)
		return err
	})
	return rc, err
}

func (d *tapDriver) Stat(ctx context.Context, name string) (info store.ObjectInfo, err error) {
	err = d.call(tapEvent{Op: "stat", Name: name}, func() error {
		info, err = d.Driver.Stat(ctx, name)
		return err
	})
	return info, err
}

func (d *tapDriver) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	return d.call(tapEvent{Op: "list", Name: prefix}, func() error { return d.Driver.List(ctx, prefix, fn) })
}

func (d *tapDriver) Delete(ctx context.Context, name string) error {
	return d.call(tapEvent{Op: "delete", Name: name}, func() error { return d.Driver.Delete(ctx, name) })
}

// Sync implements store.Syncer, syncing the driver if it is one.
func (d *tapDriver) Sync(ctx context.Context) error {
	s, ok := d.Driver.(store.Syncer)
	if !ok {
		return nil
	}
	return d.call(tapEvent{Op: "sync"}, func() error { return s.Sync(ctx) })
}

// MaxConcurrency implements store.Concurrency as the driver does (0: no
// preference).
func (d *tapDriver) MaxConcurrency() int {
	if c, ok := d.Driver.(store.Concurrency); ok {
		return c.MaxConcurrency()
	}
	return 0
}

// CleanStale implements store.Cleaner as the driver does (nothing to
// clean, if it is not one).
func (d *tapDriver) CleanStale(ctx context.Context, olderThan time.Duration) (int, error) {
	if c, ok := d.Driver.(store.Cleaner); ok {
		return c.CleanStale(ctx, olderThan)
	}
	return 0, nil
}

// halfReader calls reached, once, when a read goes past half.
type halfReader struct {
	io.ReaderAt
	half    int64
	reached func()
	once    sync.Once
}

func (r *halfReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > r.half {
		r.once.Do(r.reached)
	}
	return r.ReaderAt.ReadAt(p, off)
}
