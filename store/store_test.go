package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
)

// stubDriver answers each method with the function set for it; calling
// any other method panics through the nil embedded Driver.
type stubDriver struct {
	store.Driver
	put  func() error
	get  func(name string) (io.ReadCloser, error)
	stat func(name string) (store.ObjectInfo, error)
	list func(fn func(store.ObjectInfo) error) error
}

func (d *stubDriver) Put(context.Context, string, io.ReaderAt, int64, store.PutOptions) error {
	return d.put()
}

func (d *stubDriver) Get(_ context.Context, name string) (io.ReadCloser, error) {
	return d.get(name)
}

func (d *stubDriver) Stat(_ context.Context, name string) (store.ObjectInfo, error) {
	return d.stat(name)
}

func (d *stubDriver) List(_ context.Context, _ string, fn func(store.ObjectInfo) error) error {
	return d.list(fn)
}

const tag = "tags/t.json"

func TestErrorWrapsOnce(t *testing.T) {
	boom := errors.New("boom")
	inner := &store.Error{Op: "get", Name: "x", Location: "elsewhere", Err: boom}
	for _, driverErr := range []error{boom, inner, fmt.Errorf("context: %w", inner)} {
		st := store.New(&stubDriver{get: func(string) (io.ReadCloser, error) { return nil, driverErr }}, "loc", nil)
		_, err := st.Get(t.Context(), tag)
		require.ErrorIs(t, err, boom)
		var se *store.Error
		require.ErrorAs(t, err, &se)
		if driverErr == boom {
			assert.Equal(t, &store.Error{Op: "get", Name: tag, Location: "loc", Err: boom}, se)
			assert.Equal(t, `store: get "tags/t.json" in loc: boom`, err.Error())
		} else {
			assert.Equal(t, driverErr, err, "an error holding a *store.Error is returned as it is")
		}
	}
}

func TestReadErrorsAreWrapped(t *testing.T) {
	boom := errors.New("boom")
	st := store.New(&stubDriver{get: func(string) (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(strings.NewReader("ab"), iotestErrReader{boom})), nil
	}}, "loc", nil)
	rc, err := st.Get(t.Context(), tag)
	require.NoError(t, err)
	defer rc.Close()
	_, err = io.ReadAll(rc)
	require.ErrorIs(t, err, boom)
	var se *store.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "read", se.Op)
	assert.Equal(t, tag, se.Name)
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

func TestGetBytesLimit(t *testing.T) {
	st := store.New(&stubDriver{get: func(string) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader("12345")), nil
	}}, "loc", nil)
	data, err := st.GetBytes(t.Context(), tag, 5)
	require.NoError(t, err)
	assert.Equal(t, []byte("12345"), data)
	_, err = st.GetBytes(t.Context(), tag, 4)
	require.ErrorIs(t, err, core.ErrInvalid)
	var se *store.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "get", se.Op)
}

func TestExists(t *testing.T) {
	missingBucket := fmt.Errorf("%w: %w", core.ErrBucketNotFound, core.ErrNotFound)
	for _, c := range []struct {
		driverErr error
		want      bool
		wantErr   error
	}{
		{nil, true, nil},
		{core.ErrNotFound, false, nil},
		{fmt.Errorf("wrapped: %w", core.ErrNotFound), false, nil},
		{missingBucket, false, core.ErrBucketNotFound},
		{core.ErrPermission, false, core.ErrPermission},
	} {
		st := store.New(&stubDriver{stat: func(name string) (store.ObjectInfo, error) {
			return store.ObjectInfo{Name: name}, c.driverErr
		}}, "loc", nil)
		ok, err := st.Exists(t.Context(), tag)
		assert.Equal(t, c.want, ok, "%v", c.driverErr)
		if c.wantErr == nil {
			assert.NoError(t, err)
		} else {
			assert.ErrorIs(t, err, c.wantErr)
		}
	}
}

func TestPutChecksBeforeTheDriver(t *testing.T) {
	st := store.New(&stubDriver{put: func() error {
		t.Error("the driver was called")
		return nil
	}}, "loc", nil)
	err := st.Put(t.Context(), tag, strings.NewReader(""), -1, store.PutOptions{})
	require.ErrorIs(t, err, core.ErrInvalid)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, st.PutBytes(ctx, tag, nil, store.PutOptions{}), context.Canceled)
	_, err = st.Get(ctx, tag)
	require.ErrorIs(t, err, context.Canceled)
	_, err = st.Stat(ctx, tag)
	require.ErrorIs(t, err, context.Canceled)
}

func TestListFiltersNames(t *testing.T) {
	st := store.New(&stubDriver{list: func(fn func(store.ObjectInfo) error) error {
		for _, name := range []string{tag, "tags/.tmp-x", "a b", "tags/", "README", "../x"} {
			if err := fn(store.ObjectInfo{Name: name}); err != nil {
				return err
			}
		}
		return nil
	}}, "loc", nil)
	var names []string
	require.NoError(t, st.List(t.Context(), "", func(info store.ObjectInfo) error {
		names = append(names, info.Name)
		return nil
	}))
	assert.Equal(t, []string{tag, "README"}, names)

	errStop := errors.New("stop")
	err := st.List(t.Context(), "", func(store.ObjectInfo) error { return errStop })
	assert.Same(t, errStop, err, "fn's error comes back unwrapped")
}

func TestListWrapsDriverErrors(t *testing.T) {
	st := store.New(&stubDriver{list: func(func(store.ObjectInfo) error) error {
		return core.ErrPermission
	}}, "loc", nil)
	err := st.List(t.Context(), "tags/", func(store.ObjectInfo) error { return nil })
	require.ErrorIs(t, err, core.ErrPermission)
	var se *store.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "list", se.Op)
	assert.Equal(t, "tags/", se.Name)
}

func TestAccessors(t *testing.T) {
	drv := &stubDriver{}
	st := store.New(drv, "s3://bucket/prefix", nil)
	assert.Same(t, drv, st.Driver())
	assert.Equal(t, "s3://bucket/prefix", st.Location())
}

// busyDriver counts the calls in progress, a reader counting until it
// returns io.EOF or is closed, and records the most at once.
type busyDriver struct {
	mu            sync.Mutex
	busy, maxBusy int
}

func (d *busyDriver) enter() {
	d.mu.Lock()
	d.busy++
	d.maxBusy = max(d.maxBusy, d.busy)
	d.mu.Unlock()
	runtime.Gosched() // let others try to enter
}

func (d *busyDriver) leave() {
	d.mu.Lock()
	d.busy--
	d.mu.Unlock()
}

func (d *busyDriver) call() error {
	d.enter()
	d.leave()
	return nil
}

func (d *busyDriver) Put(context.Context, string, io.ReaderAt, int64, store.PutOptions) error {
	return d.call()
}

func (d *busyDriver) Get(context.Context, string) (io.ReadCloser, error) {
	d.enter()
	return &busyReader{r: strings.NewReader("data"), leave: d.leave}, nil
}

func (d *busyDriver) GetRange(ctx context.Context, name string, _, _ int64) (io.ReadCloser, error) {
	return d.Get(ctx, name)
}

func (d *busyDriver) Stat(_ context.Context, name string) (store.ObjectInfo, error) {
	return store.ObjectInfo{Name: name}, d.call()
}

func (d *busyDriver) List(_ context.Context, _ string, fn func(store.ObjectInfo) error) error {
	d.enter()
	defer d.leave()
	return fn(store.ObjectInfo{Name: tag})
}

func (d *busyDriver) Delete(context.Context, string) error { return d.call() }

func (d *busyDriver) Sync(context.Context) error { return d.call() }

func (d *busyDriver) Close() error { return nil }

type busyReader struct {
	r     io.Reader
	leave func()
	once  sync.Once
}

func (r *busyReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err == io.EOF {
		r.once.Do(r.leave)
	}
	return n, err
}

func (r *busyReader) Close() error {
	r.once.Do(r.leave)
	return nil
}

// TestBudgetCoversEveryCall runs every operation from many goroutines on
// a Store whose budget allows two requests: never more than two calls, or
// readers not yet closed or read to their end, are in progress at once.
func TestBudgetCoversEveryCall(t *testing.T) {
	const limit = 2
	drv := &busyDriver{}
	st := store.New(drv, "loc", &store.Options{Budget: store.NewBudget(limit, 0)})
	ctx := t.Context()
	ops := []func() error{
		func() error { return st.PutBytes(ctx, tag, []byte("x"), store.PutOptions{}) },
		func() error { return second(st.Stat(ctx, tag)) },
		func() error { return second(st.Exists(ctx, tag)) },
		func() error { return st.Delete(ctx, tag) },
		func() error { return st.Sync(ctx) },
		func() error { return st.List(ctx, "", func(store.ObjectInfo) error { return nil }) },
		func() error { return second(st.GetBytes(ctx, tag, 10)) },
		func() error { // closed before its end
			rc, err := st.Get(ctx, tag)
			if err != nil {
				return err
			}
			return rc.Close()
		},
		func() error { // read to its end, then closed
			rc, err := st.GetRange(ctx, tag, 1, 2)
			if err != nil {
				return err
			}
			if _, err := io.ReadAll(rc); err != nil {
				return err
			}
			return rc.Close()
		},
	}
	var g errgroup.Group
	for i := range 20 * len(ops) {
		g.Go(ops[i%len(ops)])
	}
	require.NoError(t, g.Wait())
	assert.Equal(t, 0, drv.busy)
	assert.LessOrEqual(t, drv.maxBusy, limit)
	assert.Positive(t, drv.maxBusy)
}

// second returns the error of a two-result call.
func second[T any](_ T, err error) error { return err }

// casDriver is a stubDriver that compares and swaps, and cleans up
// debris, with the functions set for them.
type casDriver struct {
	*stubDriver
	putIfMatch func(version string) error
	clean      func() (int, error)
}

func (d *casDriver) PutIfMatch(_ context.Context, _ string, _ io.ReaderAt, _ int64, _ store.PutOptions, version string) error {
	return d.putIfMatch(version)
}

func (d *casDriver) CleanStale(context.Context, time.Duration) (int, error) {
	return d.clean()
}

func TestPutIfMatch(t *testing.T) {
	ctx := t.Context()
	body := strings.NewReader("x")

	// A driver without the ability says so, and cleans nothing.
	plain := store.New(&stubDriver{}, "loc", nil)
	err := plain.PutIfMatch(ctx, tag, body, 1, store.PutOptions{}, "v1")
	require.ErrorIs(t, err, errors.ErrUnsupported)
	assert.Contains(t, err.Error(), tag)
	n, err := plain.CleanStale(ctx, time.Hour)
	require.NoError(t, err)
	assert.Zero(t, n)

	// A conflict on a retry after a lost answer says that it may be one's
	// own write; a conflict on the first attempt is passed on as it is.
	var attempts []string
	drv := &casDriver{stubDriver: &stubDriver{}, putIfMatch: func(v string) error {
		attempts = append(attempts, v)
		if len(attempts) == 1 {
			return fmt.Errorf("lost answer: %w", core.ErrTransient)
		}
		return fmt.Errorf("changed: %w", core.ErrConflict)
	}, clean: func() (int, error) { return 0, errors.New("boom") }}
	st := store.New(drv, "loc", &store.Options{Backoff: -1})
	err = st.PutIfMatch(ctx, tag, body, 1, store.PutOptions{}, "v1")
	require.ErrorIs(t, err, core.ErrConflict)
	assert.Contains(t, err.Error(), "on attempt 2 of a conditional write")
	assert.Equal(t, []string{"v1", "v1"}, attempts)
	attempts = attempts[:1]
	err = st.PutIfMatch(ctx, tag, body, 1, store.PutOptions{}, "v2")
	require.ErrorIs(t, err, core.ErrConflict)
	assert.NotContains(t, err.Error(), "attempt")

	for _, bad := range []struct {
		opts    store.PutOptions
		version string
	}{{store.PutOptions{}, ""}, {store.PutOptions{CreateOnly: true}, "v1"}} {
		err = st.PutIfMatch(ctx, tag, body, 1, bad.opts, bad.version)
		require.ErrorIs(t, err, core.ErrInvalid)
	}

	_, err = st.CleanStale(ctx, time.Hour)
	var se *store.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "clean", se.Op)
}
