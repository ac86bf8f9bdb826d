package sources_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/sources"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
)

// getDriver wraps a driver, counting Gets per name and the bytes read
// through them. hook, if set, sees every opened object (n counts the Gets
// of name, from 1) and returns what Get returns instead.
type getDriver struct {
	store.Driver
	hook func(ctx context.Context, name string, n int, rc io.ReadCloser) (io.ReadCloser, error)

	mu   sync.Mutex
	gets map[string]int
	read atomic.Int64
}

func (d *getDriver) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	d.mu.Lock()
	d.gets[name]++
	n := d.gets[name]
	d.mu.Unlock()
	rc, err := d.Driver.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	rc = &countedReader{ReadCloser: rc, n: &d.read}
	if d.hook != nil {
		return d.hook(ctx, name, n, rc)
	}
	return rc, nil
}

// getsOf returns how many times name was opened.
func (d *getDriver) getsOf(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.gets[name]
}

type countedReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (r *countedReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n.Add(int64(n))
	return n, err
}

// fixture is a repository holding the blobs of a manifest.
type fixture struct {
	st   *store.Store
	drv  *getDriver
	m    *manifest.Manifest
	data map[string][]byte // by key
	tmp  string            // for Options.TempDir

	entries []manifest.Entry // added, for the manifest
}

const threshold = 1 << 10 // Options.MemoryThreshold: larger blobs spill

// newRepo returns a fixture over an empty repository; add blobs, then
// call finish.
func newRepo(t *testing.T) *fixture {
	t.Helper()
	fs, err := filestore.New(t.TempDir(), nil)
	require.NoError(t, err)
	f := &fixture{drv: &getDriver{Driver: fs, gets: map[string]int{}}, data: map[string][]byte{}, tmp: t.TempDir()}
	f.st = store.New(f.drv, "test", &store.Options{Backoff: -1})
	t.Cleanup(func() { f.st.Close() })
	return f
}

// add stores data as the blob of key.
func (f *fixture) add(t *testing.T, key string, data []byte) {
	t.Helper()
	d := digest.FromBytes(data)
	require.NoError(t, repo.New(f.st, nil).PutBlob(t.Context(), d, bytes.NewReader(data), int64(len(data))))
	f.data[key] = data
	f.entries = append(f.entries, manifest.Entry{Key: key, Digest: d, Size: int64(len(data))})
}

// finish makes the manifest of the blobs added.
func (f *fixture) finish(t *testing.T) {
	t.Helper()
	var err error
	f.m, err = manifest.New("s3", "123456789012", "eu-west-1", manifest.Object{Digest: digest.FromSum(make([]byte, 32))}, f.entries)
	require.NoError(t, err)
}

// newFixture stores n blobs of distinct content, of sizes around the
// memory threshold, under hostile keys, and returns their manifest.
func newFixture(t *testing.T, n int) *fixture {
	t.Helper()
	f := newRepo(t)
	for i := range n {
		data := make([]byte, (i*499)%(3*threshold))
		for j := range data {
			data[j] = byte(i + j*13)
		}
		data = append(data, byte(i)) // distinct, never empty
		f.add(t, fmt.Sprintf("bucket/key %02d\x00v\xff", i), data)
	}
	f.finish(t)
	return f
}

// name returns the name of the blob of key.
func (f *fixture) name(key string) string {
	e, _ := f.m.Lookup(key)
	return repo.BlobName(e.Digest)
}

// replace stores data under the blob name of key, unverified.
func (f *fixture) replace(t *testing.T, key string, data []byte) {
	t.Helper()
	require.NoError(t, f.st.PutBytes(t.Context(), f.name(key), data, store.PutOptions{}))
}

// source returns a Source over the fixture, with its temporary files in
// f.tmp, closed at the end of the test.
func (f *fixture) source(t *testing.T, opts sources.Options) *sources.Source {
	t.Helper()
	opts.MemoryThreshold = threshold
	opts.TempDir = f.tmp
	s := sources.New(repo.New(f.st, nil), f.m, &opts)
	t.Cleanup(func() { s.Close() })
	return s
}

// keys returns the manifest's keys in manifest order.
func (f *fixture) keys() []string {
	keys := make([]string, len(f.m.Blobs))
	for i, e := range f.m.Blobs {
		keys[i] = e.Key
	}
	return keys
}

// fetch fetches key and requires the fixture's bytes.
func (f *fixture) fetch(t *testing.T, ctx context.Context, s *sources.Source, key string) {
	t.Helper()
	rc, err := s.Fetch(ctx, key)
	require.NoError(t, err, "fetch %q", key)
	got, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	require.True(t, bytes.Equal(f.data[key], got), "bytes of %q", key)
}

// requireNoTempFiles fails if f.tmp holds any file.
func (f *fixture) requireNoTempFiles(t *testing.T) {
	t.Helper()
	entries, err := os.ReadDir(f.tmp)
	require.NoError(t, err)
	require.Empty(t, entries, "spool files left behind")
}

func TestFetchOrders(t *testing.T) {
	const n = 24
	inOrder := make([]int, n)
	reverse := make([]int, n)
	shuffled := make([]int, n)
	for i := range n {
		inOrder[i], reverse[i], shuffled[i] = i, n-1-i, (i*7)%n
	}
	for _, tc := range []struct {
		name     string
		order    []int
		prefetch int
		hits     int
	}{
		{"in order", inOrder, 0, n - 1},
		{"in order, prefetch 2", inOrder, 2, n - 1},
		{"in order, no prefetch", inOrder, -1, 0},
		{"reverse", reverse, 0, 0},
		{"reverse, no prefetch", reverse, -1, 0},
		{"shuffled", shuffled, 0, -1},
		{"shuffled, prefetch 1", shuffled, 1, -1},
		{"shuffled, no prefetch", shuffled, -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, n)
			s := f.source(t, sources.Options{Prefetch: tc.prefetch})
			keys := f.keys()
			var total int64
			for _, i := range tc.order {
				f.fetch(t, t.Context(), s, keys[i])
				total += int64(len(f.data[keys[i]]))
			}
			require.NoError(t, s.Close())
			f.requireNoTempFiles(t)
			st := s.Stats()
			assert.Equal(t, n, st.Fetched)
			assert.Equal(t, total, st.Bytes)
			if tc.hits >= 0 {
				assert.Equal(t, tc.hits, st.PrefetchHits)
			}
			if tc.prefetch < 0 {
				for _, key := range keys {
					assert.Equal(t, 1, f.drv.getsOf(f.name(key)), "Gets of %q", key)
				}
			}
			requireBudgetFree(t, f.st.Budget())
		})
	}
}

func requireBudgetFree(t *testing.T, b *store.Budget) {
	t.Helper()
	require.True(t, b.TryAcquireBytes(b.MaxBytes()), "budget bytes still held")
	b.ReleaseBytes(b.MaxBytes())
}

func TestFetchUnknownKey(t *testing.T) {
	f := newFixture(t, 3)
	s := f.source(t, sources.Options{})
	_, err := s.Fetch(t.Context(), "no such\x00key")
	require.ErrorIs(t, err, core.ErrNotFound)
	assert.Contains(t, err.Error(), `"no such\x00key"`)
	assert.Contains(t, err.Error(), f.m.ID.String())
}

func TestFetchMismatch(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 100)
	flipped := bytes.Clone(data)
	flipped[50] ^= 1
	digestOf := func(b []byte) string { return digest.FromBytes(b).String() }
	large := make([]byte, 1<<20)
	for _, tc := range []struct {
		name             string
		size             int // recorded; the recorded bytes are size 7s
		stored           []byte
		wantErr          error
		expected, actual string
	}{
		{"flipped byte", 100, flipped, core.ErrChecksumMismatch, digestOf(data), digestOf(flipped)},
		{"shorter", 100, data[:60], core.ErrSizeMismatch, "100 bytes", "60 bytes"},
		{"empty instead", 100, nil, core.ErrSizeMismatch, "100 bytes", "0 bytes"},
		{"one byte longer", 100, append(bytes.Clone(data), 7), core.ErrSizeMismatch, "100 bytes", "more than 100 bytes"},
		{"much longer, in memory", 100, large, core.ErrSizeMismatch, "100 bytes", "more than 100 bytes"},
		{"much longer, spilled", 3 * threshold, large, core.ErrSizeMismatch, "3072 bytes", "more than 3072 bytes"},
		{"bytes for an empty entry", 0, large, core.ErrSizeMismatch, "0 bytes", "more than 0 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const key = "k\x00v"
			f := newRepo(t)
			f.add(t, key, bytes.Repeat([]byte{7}, tc.size))
			f.finish(t)
			f.replace(t, key, tc.stored)
			s := f.source(t, sources.Options{Prefetch: -1})
			_, err := s.Fetch(t.Context(), key)
			require.ErrorIs(t, err, tc.wantErr)
			var me *repo.MismatchError
			require.ErrorAs(t, err, &me)
			assert.Equal(t, &repo.MismatchError{Key: key, Expected: tc.expected, Actual: tc.actual, Err: tc.wantErr}, me)
			assert.Contains(t, err.Error(), `"k\x00v"`)
			assert.Equal(t, 1, f.drv.getsOf(f.name(key)), "a mismatch is not downloaded again")
			assert.LessOrEqual(t, f.drv.read.Load(), int64(tc.size+1), "bytes read from the store")
			require.NoError(t, s.Close())
			f.requireNoTempFiles(t)
			requireBudgetFree(t, f.st.Budget())
		})
	}
}

func TestFetchMissingBlobIsNotRetried(t *testing.T) {
	f := newFixture(t, 3)
	key := f.keys()[1]
	require.NoError(t, f.st.Delete(t.Context(), f.name(key)))
	for _, prefetch := range []int{-1, 0} {
		s := f.source(t, sources.Options{Prefetch: prefetch})
		gets := f.drv.getsOf(f.name(key))
		if prefetch == 0 {
			f.fetch(t, t.Context(), s, f.keys()[0]) // key is downloaded ahead
		}
		_, err := s.Fetch(t.Context(), key)
		require.ErrorIs(t, err, core.ErrNotFound)
		assert.Contains(t, err.Error(), fmt.Sprintf("%q", key))
		assert.Equal(t, gets+1, f.drv.getsOf(f.name(key)), "prefetch %d: Gets of a missing blob", prefetch)
		require.NoError(t, s.Close())
	}
}

// failingReader serves half of r, then fails with err.
func failingReader(rc io.ReadCloser, size int64, err error) io.ReadCloser {
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(rc, size/2), iotest.ErrReader(err)), rc}
}

// TestFetchSurvivesTransientErrors fails the first Get of every blob, or
// its reading half-way: the store opens it again, or resumes it with a
// ranged read, and the service receives the exact bytes.
func TestFetchSurvivesTransientErrors(t *testing.T) {
	const n = 6
	for _, tc := range []struct {
		name string
		// fail returns what the Get of the blob of a given size returns
		// when it fails.
		fail func(rc io.ReadCloser, size int64) (io.ReadCloser, error)
		gets int // per blob
	}{
		{"Get fails", func(rc io.ReadCloser, _ int64) (io.ReadCloser, error) {
			rc.Close()
			return nil, fmt.Errorf("connection reset: %w", core.ErrTransient)
		}, 2},
		{"read fails half-way", func(rc io.ReadCloser, size int64) (io.ReadCloser, error) {
			return failingReader(rc, size, io.ErrUnexpectedEOF), nil
		}, 1},
	} {
		for _, prefetch := range []int{-1, 0} {
			t.Run(fmt.Sprintf("%s, prefetch %d", tc.name, prefetch), func(t *testing.T) {
				f := newFixture(t, n)
				sizes := map[string]int64{}
				for _, e := range f.m.Blobs {
					sizes[f.name(e.Key)] = e.Size
				}
				f.drv.hook = func(_ context.Context, name string, n int, rc io.ReadCloser) (io.ReadCloser, error) {
					if n == 1 {
						return tc.fail(rc, sizes[name])
					}
					return rc, nil
				}
				s := f.source(t, sources.Options{Prefetch: prefetch})
				for _, key := range f.keys() {
					f.fetch(t, t.Context(), s, key)
				}
				require.NoError(t, s.Close())
				for _, key := range f.keys() {
					assert.Equal(t, tc.gets, f.drv.getsOf(f.name(key)), "Gets of %q", key)
				}
				f.requireNoTempFiles(t)
			})
		}
	}
}

// TestFetchGivesUpAfterRetries fails every Get: the store tries each
// 1+Retries times, and the error names the key.
func TestFetchGivesUpAfterRetries(t *testing.T) {
	boom := fmt.Errorf("connection reset: %w", core.ErrTransient)
	for _, tc := range []struct {
		retries int
		gets    int
	}{
		{0, store.DefaultRetries + 1},
		{1, 2},
		{-1, 1},
	} {
		t.Run(fmt.Sprint("retries ", tc.retries), func(t *testing.T) {
			f := newFixture(t, 2)
			f.st = store.New(f.drv, "test", &store.Options{Retries: tc.retries, Backoff: -1})
			f.drv.hook = func(_ context.Context, _ string, _ int, rc io.ReadCloser) (io.ReadCloser, error) {
				rc.Close()
				return nil, boom
			}
			s := f.source(t, sources.Options{Prefetch: -1})
			key := f.keys()[0]
			_, err := s.Fetch(t.Context(), key)
			require.ErrorIs(t, err, boom)
			assert.Contains(t, err.Error(), fmt.Sprintf("%q", key))
			assert.Equal(t, tc.gets, f.drv.getsOf(f.name(key)))
		})
	}
}

// blockingHook makes the Gets chosen by block wait for their context to
// end; entered receives the name of each such Get once it waits.
func blockingHook(block func(name string, n int) bool, entered chan<- string) func(context.Context, string, int, io.ReadCloser) (io.ReadCloser, error) {
	return func(ctx context.Context, name string, n int, rc io.ReadCloser) (io.ReadCloser, error) {
		if !block(name, n) {
			return rc, nil
		}
		defer rc.Close()
		entered <- name
		<-ctx.Done()
		return nil, ctx.Err()
	}
}

func TestFetchCancelled(t *testing.T) {
	t.Run("already cancelled", func(t *testing.T) {
		f := newFixture(t, 3)
		s := f.source(t, sources.Options{Prefetch: -1})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := s.Fetch(ctx, f.keys()[0])
		require.ErrorIs(t, err, context.Canceled)
		assert.Zero(t, f.drv.getsOf(f.name(f.keys()[0])))
	})

	t.Run("during its download", func(t *testing.T) {
		f := newFixture(t, 3)
		entered := make(chan string, 1)
		f.drv.hook = blockingHook(func(string, int) bool { return true }, entered)
		s := f.source(t, sources.Options{Prefetch: -1})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() {
			_, err := s.Fetch(ctx, f.keys()[0])
			done <- err
		}()
		<-entered
		cancel()
		err := <-done
		require.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, 1, f.drv.getsOf(f.name(f.keys()[0])), "a cancelled download is not tried again")
		require.NoError(t, s.Close())
		f.requireNoTempFiles(t)
	})

	t.Run("waiting for a download ahead", func(t *testing.T) {
		f := newFixture(t, 3)
		keys := f.keys()
		blocked := f.name(keys[1])
		entered := make(chan string, 4)
		f.drv.hook = blockingHook(func(name string, _ int) bool { return name == blocked }, entered)
		s := f.source(t, sources.Options{})
		f.fetch(t, t.Context(), s, keys[0]) // starts the download of keys[1]
		<-entered
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() {
			_, err := s.Fetch(ctx, keys[1])
			done <- err
		}()
		cancel()
		err := <-done
		require.ErrorIs(t, err, context.Canceled)
		assert.Contains(t, err.Error(), fmt.Sprintf("%q", keys[1]))
		require.NoError(t, s.Close())
		f.requireNoTempFiles(t)
		requireBudgetFree(t, f.st.Budget())
	})
}

func TestFetchOutlivesEarlierContext(t *testing.T) {
	// A service may give each Fetch its own context, which ends when the
	// blob is read. A download ahead started under an earlier one must not
	// fail a later Fetch.
	f := newFixture(t, 2)
	keys := f.keys()
	blocked := f.name(keys[1])
	entered := make(chan string, 1)
	f.drv.hook = blockingHook(func(name string, n int) bool { return name == blocked && n == 1 }, entered)
	s := f.source(t, sources.Options{})

	ctx, cancel := context.WithCancel(t.Context())
	f.fetch(t, ctx, s, keys[0]) // starts the download of keys[1] under ctx
	<-entered
	cancel()
	f.fetch(t, t.Context(), s, keys[1])
	assert.Equal(t, 2, f.drv.getsOf(blocked), "the cancelled download ahead is done again")
	assert.Zero(t, s.Stats().PrefetchHits, "a blob downloaded again is no prefetch hit")
}

func TestCloseWaitsForDownloadsAhead(t *testing.T) {
	const n = 8
	f := newFixture(t, n)
	keys := f.keys()
	first := f.name(keys[0])
	var started, ended atomic.Int32
	entered := make(chan string, n)
	block := blockingHook(func(name string, _ int) bool { return name != first }, entered)
	f.drv.hook = func(ctx context.Context, name string, n int, rc io.ReadCloser) (io.ReadCloser, error) {
		started.Add(1)
		defer ended.Add(1)
		return block(ctx, name, n, rc)
	}
	s := f.source(t, sources.Options{})
	f.fetch(t, t.Context(), s, keys[0])
	<-entered
	require.NoError(t, s.Close())
	assert.Equal(t, started.Load(), ended.Load(), "downloads still running after Close")
	f.requireNoTempFiles(t)
	requireBudgetFree(t, f.st.Budget())
}

func TestCloseRemovesSpooledBlobs(t *testing.T) {
	f := newFixture(t, 8)
	keys := f.keys()
	var large string // a key whose blob spills to a file
	for _, e := range f.m.Blobs[1:] {
		if e.Size > threshold {
			large = e.Key
			break
		}
	}
	require.NotEmpty(t, large)
	s := f.source(t, sources.Options{})
	f.fetch(t, t.Context(), s, keys[0])
	rc, err := s.Fetch(t.Context(), large)
	require.NoError(t, err)
	files, err := os.ReadDir(f.tmp)
	require.NoError(t, err)
	// The large blob is held in a spill file that has no name (O_TMPFILE,
	// or unlinked as soon as it is created), so a killed import leaves
	// nothing behind in the temporary directory.
	assert.Empty(t, files, "a spill file has a name while in use")
	require.NoError(t, s.Close())
	got, err := io.ReadAll(rc)
	require.NoError(t, err)
	assert.Equal(t, f.data[large], got, "a reader handed out outlives Close")
	require.NoError(t, rc.Close())
	f.requireNoTempFiles(t)
	requireBudgetFree(t, f.st.Budget())
}

// TestPrefetchPastSlowDownload checks that by default the window of
// small blobs downloaded ahead reaches past the store's request limit:
// while one download hangs, the others go on with the blobs after it,
// as a bare loop's workers would, rather than wait for the service to
// fetch the slow one.
func TestPrefetchPastSlowDownload(t *testing.T) {
	const n, requests = 12, 2
	f := newRepo(t)
	f.st = store.New(f.drv, "test", &store.Options{Budget: store.NewBudget(requests, 1<<20), Backoff: -1})
	for i := range n {
		f.add(t, fmt.Sprintf("small/%02d", i), bytes.Repeat([]byte{byte(i)}, 100+i))
	}
	f.finish(t)
	keys := f.keys()
	slow := f.name(keys[1])
	release := make(chan struct{})
	started := make(chan string, n)
	f.drv.hook = func(ctx context.Context, name string, _ int, rc io.ReadCloser) (io.ReadCloser, error) {
		if name == slow {
			select {
			case <-release:
			case <-ctx.Done():
				rc.Close()
				return nil, ctx.Err()
			}
		}
		started <- name
		return rc, nil
	}
	s := f.source(t, sources.Options{})
	f.fetch(t, t.Context(), s, keys[0])

	// The window after blob 0 holds 4 × requests entries: blobs 1 to 8.
	want := map[string]bool{}
	for _, key := range keys[2 : 1+4*requests] {
		want[f.name(key)] = true
	}
	deadline := time.After(time.Minute) // a failure, long after any run could end
	for len(want) > 0 {
		select {
		case name := <-started:
			delete(want, name)
		case <-deadline:
			t.Fatalf("%d blobs after the slow one were not downloaded while it hung", len(want))
		}
	}
	close(release)
	for _, key := range keys[1:] {
		f.fetch(t, t.Context(), s, key)
	}
	require.NoError(t, s.Close())
	assert.Equal(t, n-1, s.Stats().PrefetchHits)
}
