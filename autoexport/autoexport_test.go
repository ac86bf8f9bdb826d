package autoexport_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/autoexport"
	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/snapshot"
)

const (
	acct   = "123456789012"
	region = "eu-west-1"
	bucket = "fixtures"
	// deadline bounds waits for something that must happen; it is a
	// failure deadline, never a timing assertion.
	deadline = 30 * time.Second
)

// gaugedStore is an ObjectStore that counts its exports, measures how
// many run at once, and calls hook inside each one.
type gaugedStore struct {
	*coretest.ObjectStore
	hook    func(ctx context.Context) error
	exports atomic.Int32
	active  atomic.Int32
	maxSeen atomic.Int32
}

func newGaugedStore(hook func(ctx context.Context) error) *gaugedStore {
	return &gaugedStore{ObjectStore: coretest.NewObjectStore(), hook: hook}
}

func (s *gaugedStore) SnapshotWithBlobs(ctx context.Context, accountID, region string, v core.BlobVisitor) (coretest.ObjectStoreView, error) {
	n := s.active.Add(1)
	defer s.active.Add(-1)
	for m := s.maxSeen.Load(); n > m && !s.maxSeen.CompareAndSwap(m, n); m = s.maxSeen.Load() {
	}
	s.exports.Add(1)
	if s.hook != nil {
		if err := s.hook(ctx); err != nil {
			return coretest.ObjectStoreView{}, err
		}
	}
	return s.ObjectStore.SnapshotWithBlobs(ctx, accountID, region, v)
}

func openRepo(t *testing.T) *snapshot.Repo {
	t.Helper()
	repo, err := snapshot.Open(t.Context(), t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { _ = repo.Close() })
	return repo
}

// results returns OnExport hooked to a channel large enough that no test
// fills it.
func results() (chan autoexport.Result, func(autoexport.Result)) {
	ch := make(chan autoexport.Result, 1024)
	return ch, func(r autoexport.Result) { ch <- r }
}

// start opens a repository, starts an Exporter of svc under opts whose
// OnExport feeds the returned channel, and creates the test bucket: the
// first change.
func start(t *testing.T, svc *gaugedStore, opts autoexport.Options) (*snapshot.Repo, *autoexport.Exporter[coretest.ObjectStoreView], chan autoexport.Result) {
	t.Helper()
	repo := openRepo(t)
	ch, onExport := results()
	opts.OnExport = onExport
	e, err := autoexport.New(repo, svc, &opts)
	require.NoError(t, err)
	require.NoError(t, svc.CreateBucket(t.Context(), acct, region, bucket, false))
	return repo, e, ch
}

func next(t *testing.T, ch <-chan autoexport.Result) autoexport.Result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(deadline):
		require.FailNow(t, "no export happened")
		return autoexport.Result{}
	}
}

func drain(ch chan autoexport.Result) []autoexport.Result {
	var rs []autoexport.Result
	for {
		select {
		case r := <-ch:
			rs = append(rs, r)
		default:
			return rs
		}
	}
}

func put(t *testing.T, svc *coretest.ObjectStore, key, data string) {
	t.Helper()
	_, err := svc.PutObject(context.Background(), acct, region, bucket, key, []byte(data))
	require.NoError(t, err)
}

// burst puts n objects from several goroutines, some keys many times.
func burst(t *testing.T, svc *coretest.ObjectStore, n int) {
	t.Helper()
	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				_, err := svc.PutObject(context.Background(), acct, region, bucket, fmt.Sprintf("k%03d", i%97), []byte(fmt.Sprintf("put %d by %d", i, w)))
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// requireExported imports the snapshot m names into a fresh store and
// asserts that it holds svc's current state, view and blobs.
func requireExported(t *testing.T, repo *snapshot.Repo, r autoexport.Result, svc *coretest.ObjectStore) {
	t.Helper()
	require.NoError(t, r.Err)
	require.NotNil(t, r.Manifest)
	fresh := coretest.NewObjectStore()
	_, err := snapshot.Import(t.Context(), repo, fresh, r.AccountID, r.Region, r.Manifest.ID.String(), nil)
	require.NoError(t, err)
	wantView, wantBlobs := snapshotAll(t, svc, r.AccountID, r.Region)
	gotView, gotBlobs := snapshotAll(t, fresh, r.AccountID, r.Region)
	require.Equal(t, wantView, gotView, "views differ")
	require.Len(t, gotBlobs, len(wantBlobs))
	for k, b := range wantBlobs {
		require.True(t, bytes.Equal(b, gotBlobs[k]), "blob %q differs", k)
	}
}

func snapshotAll(t *testing.T, svc *coretest.ObjectStore, accountID, region string) (coretest.ObjectStoreView, map[string][]byte) {
	t.Helper()
	v := &coretest.MemoryVisitor{}
	view, err := svc.SnapshotWithBlobs(t.Context(), accountID, region, v)
	require.NoError(t, err)
	return view, v.Blobs()
}

// A burst of 1,000 mutations under a debounce that never expires exports
// once, on Flush or on Close, and that export is the final state.
func TestBurstExportsOnce(t *testing.T) {
	for _, finish := range []string{"flush", "close"} {
		t.Run(finish, func(t *testing.T) {
			ctx := t.Context()
			svc := newGaugedStore(nil)
			repo, e, ch := start(t, svc, autoexport.Options{Debounce: time.Hour, MaxDelay: time.Hour})
			burst(t, svc.ObjectStore, 1000)

			if finish == "flush" {
				require.NoError(t, e.Flush(ctx))
			}
			require.NoError(t, e.Close(ctx))
			rs := drain(ch)
			require.Len(t, rs, 1)
			assert.EqualValues(t, 1, svc.exports.Load())
			requireExported(t, repo, rs[0], svc.ObjectStore)
			assert.NoError(t, e.Err())
		})
	}
}

// The debounce and the interval export on their own once a change comes,
// and again after the next change.
func TestPoliciesExportOnTheirOwn(t *testing.T) {
	for name, policy := range map[string]autoexport.Options{
		"debounce": {Debounce: time.Millisecond},
		"interval": {Interval: time.Millisecond},
	} {
		t.Run(name, func(t *testing.T) {
			svc := newGaugedStore(nil)
			repo, e, ch := start(t, svc, policy)
			put(t, svc.ObjectStore, "a", "1")
			requireExported(t, repo, waitFor(t, repo, ch, svc.ObjectStore), svc.ObjectStore)

			put(t, svc.ObjectStore, "a", "2")
			requireExported(t, repo, waitFor(t, repo, ch, svc.ObjectStore), svc.ObjectStore)
			require.NoError(t, e.Close(t.Context()))
		})
	}
}

// waitFor returns the first export of svc's current state: a debounce
// may expire between two mutations of one step, exporting a state in
// between. The export of the same state has the same id, so a manual
// export names the one to wait for.
func waitFor(t *testing.T, repo *snapshot.Repo, ch <-chan autoexport.Result, svc *coretest.ObjectStore) autoexport.Result {
	t.Helper()
	want, err := snapshot.Export(t.Context(), repo, svc, acct, region, nil)
	require.NoError(t, err)
	for {
		r := next(t, ch)
		require.NoError(t, r.Err)
		if r.Manifest.ID == want.ID {
			return r
		}
	}
}

// MaxDelay exports a constant stream of changes that never lets the
// debounce expire.
func TestMaxDelayExportsAConstantStream(t *testing.T) {
	ctx := t.Context()
	svc := newGaugedStore(nil)
	repo, e, ch := start(t, svc, autoexport.Options{Debounce: time.Hour, MaxDelay: time.Millisecond})

	stop, stopped := make(chan struct{}), make(chan error)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				close(stopped)
				return
			default:
			}
			if _, err := svc.PutObject(ctx, acct, region, bucket, "k", []byte(fmt.Sprint(i))); err != nil {
				stopped <- err
				return
			}
		}
	}()
	r := next(t, ch)
	close(stop)
	require.NoError(t, <-stopped)
	require.NoError(t, r.Err)
	put(t, svc.ObjectStore, "k", "last")

	require.NoError(t, e.Close(ctx))
	rs := drain(ch)
	require.NotEmpty(t, rs, "Close exports the last change")
	requireExported(t, repo, rs[len(rs)-1], svc.ObjectStore)
}

// A mutation while an export is in progress returns at once, and the next
// Flush exports it.
func TestListenerNeverBlocks(t *testing.T) {
	ctx := t.Context()
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	svc := newGaugedStore(func(context.Context) error {
		once.Do(func() {
			close(entered)
			<-release
		})
		return nil
	})
	repo, e, ch := start(t, svc, autoexport.Options{})
	put(t, svc.ObjectStore, "a", "1")

	flushed := make(chan error, 1)
	go func() { flushed <- e.Flush(ctx) }()
	waitClosed(t, entered, "export started")

	mutated := make(chan error, 1)
	go func() {
		_, err := svc.PutObject(ctx, acct, region, bucket, "b", []byte("2"))
		mutated <- err
	}()
	select {
	case err := <-mutated:
		require.NoError(t, err)
	case <-time.After(deadline):
		require.FailNow(t, "a mutation blocked while an export was in progress")
	}
	select {
	case <-flushed:
		require.FailNow(t, "Flush returned while its export was held")
	default:
	}
	close(release)
	require.NoError(t, <-flushed)

	require.NoError(t, e.Flush(ctx), "the mutation made during the export is still dirty")
	assert.EqualValues(t, 2, svc.exports.Load())
	rs := drain(ch)
	require.Len(t, rs, 2)
	requireExported(t, repo, rs[1], svc.ObjectStore)
	require.NoError(t, e.Close(ctx))
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(deadline):
		require.FailNow(t, "timed out waiting: "+what)
	}
}

// Exports never overlap: not with the worker, not with concurrent Flush
// calls.
func TestNoConcurrentExports(t *testing.T) {
	ctx := t.Context()
	svc := newGaugedStore(nil)
	repo, e, ch := start(t, svc, autoexport.Options{Debounce: time.Millisecond, Interval: time.Millisecond})

	var wg sync.WaitGroup
	errs := make(chan error, 4*20)
	for w := range 4 {
		wg.Go(func() {
			for i := range 20 {
				if _, err := svc.PutObject(ctx, acct, region, bucket, fmt.Sprintf("w%d", w), []byte(fmt.Sprint(i))); err != nil {
					errs <- err
					return
				}
				errs <- e.Flush(ctx)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, e.Close(ctx))
	assert.EqualValues(t, 1, svc.maxSeen.Load(), "two exports ran at once")
	rs := drain(ch)
	require.NotEmpty(t, rs)
	requireExported(t, repo, rs[len(rs)-1], svc.ObjectStore)
}

// Close exports the last change and unsubscribes; a second Close does
// nothing.
func TestCloseFlushesAndUnsubscribes(t *testing.T) {
	ctx := t.Context()
	svc := newGaugedStore(nil)
	repo, e, ch := start(t, svc, autoexport.Options{Debounce: time.Hour})
	assert.Equal(t, 1, svc.Notifier().Len())
	put(t, svc.ObjectStore, "a", "last")

	require.NoError(t, e.Close(ctx))
	assert.Zero(t, svc.Notifier().Len())
	rs := drain(ch)
	require.Len(t, rs, 1)
	requireExported(t, repo, rs[0], svc.ObjectStore)

	put(t, svc.ObjectStore, "a", "after close")
	require.NoError(t, e.Close(ctx))
	require.NoError(t, e.Flush(ctx))
	assert.Empty(t, drain(ch), "changes after Close are not exported")
	assert.EqualValues(t, 1, svc.exports.Load())
}

// Close with a context that ends cancels the export in progress and
// returns.
func TestCloseCancelsARunningExport(t *testing.T) {
	ctx := t.Context()
	entered := make(chan struct{})
	var once sync.Once
	svc := newGaugedStore(func(ctx context.Context) error {
		once.Do(func() { close(entered) })
		<-ctx.Done()
		return context.Cause(ctx)
	})
	_, e, ch := start(t, svc, autoexport.Options{Debounce: time.Millisecond})
	waitClosed(t, entered, "the worker's export started")

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, e.Close(cctx), context.Canceled)
	r := next(t, ch)
	require.ErrorIs(t, r.Err, context.Canceled)
	assert.Nil(t, r.Manifest)
	require.ErrorIs(t, e.Err(), context.Canceled)
}

// A failed export reaches OnExport, Flush and Err; the pair stays dirty,
// and the next Flush that succeeds clears the error.
func TestErrorsSurface(t *testing.T) {
	ctx := t.Context()
	injected := errors.New("injected failure")
	var failing atomic.Bool
	failing.Store(true)
	svc := newGaugedStore(func(context.Context) error {
		if failing.Load() {
			return injected
		}
		return nil
	})
	repo, e, ch := start(t, svc, autoexport.Options{})

	require.ErrorIs(t, e.Flush(ctx), injected)
	r := next(t, ch)
	require.ErrorIs(t, r.Err, injected)
	assert.Nil(t, r.Manifest)
	assert.Equal(t, [2]string{acct, region}, [2]string{r.AccountID, r.Region})
	require.ErrorIs(t, e.Err(), injected)

	failing.Store(false)
	require.NoError(t, e.Flush(ctx))
	requireExported(t, repo, next(t, ch), svc.ObjectStore)
	require.NoError(t, e.Err())
	require.NoError(t, e.Close(ctx))
	assert.Empty(t, drain(ch))
}

// A service without blobs goes through ExportState; every changed pair
// is exported, in account and region order, under the tag the Tag option
// names.
func TestPlainServiceAndTags(t *testing.T) {
	ctx := t.Context()
	repo := openRepo(t)
	svc := coretest.NewKV()
	ch, onExport := results()
	e, err := autoexport.New(repo, svc, &autoexport.Options{
		Tag:      func(accountID, region string) string { return accountID + "-" + region },
		OnExport: onExport,
	})
	require.NoError(t, err)
	require.NoError(t, svc.Put(ctx, "b", "r2", "/x", "1"))
	require.NoError(t, svc.Put(ctx, "a", "r1", "/y", "2"))
	require.NoError(t, svc.Put(ctx, "b", "r2", "/x", "3"))
	require.NoError(t, e.Close(ctx))

	rs := drain(ch)
	require.Len(t, rs, 2)
	for i, want := range [][2]string{{"a", "r1"}, {"b", "r2"}} {
		r := rs[i]
		require.NoError(t, r.Err)
		assert.Equal(t, want, [2]string{r.AccountID, r.Region})
		fresh := coretest.NewKV()
		m, err := snapshot.ImportState(ctx, repo, fresh, r.AccountID, r.Region, r.AccountID+"-"+r.Region, nil)
		require.NoError(t, err)
		assert.Equal(t, r.Manifest.ID, m.ID)
		wantView, err := svc.Snapshot(ctx, r.AccountID, r.Region)
		require.NoError(t, err)
		gotView, err := fresh.Snapshot(ctx, r.AccountID, r.Region)
		require.NoError(t, err)
		assert.Equal(t, wantView, gotView)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	repo := openRepo(t)
	svc := coretest.NewKV()
	for name, opts := range map[string]*autoexport.Options{
		"negative debounce":          {Debounce: -time.Second},
		"negative interval":          {Interval: -time.Second},
		"negative max delay":         {Debounce: time.Second, MaxDelay: -time.Second},
		"max delay without debounce": {MaxDelay: time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := autoexport.New(repo, svc, opts)
			require.ErrorIs(t, err, core.ErrInvalid)
		})
	}
	_, err := autoexport.New[coretest.KVView](nil, svc, nil)
	require.ErrorIs(t, err, core.ErrInvalid)
	assert.Zero(t, svc.Notifier().Len(), "a refused Exporter does not subscribe")
}
