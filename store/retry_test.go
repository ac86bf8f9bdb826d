package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
)

func TestIsTransient(t *testing.T) {
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	for _, err := range []error{
		core.ErrTransient,
		fmt.Errorf("s3store: 503 SlowDown: %w", core.ErrTransient),
		io.ErrUnexpectedEOF,
		fmt.Errorf("body: %w", io.ErrUnexpectedEOF),
		reset,
		syscall.EPIPE,
		syscall.ECONNABORTED,
		timeout,
	} {
		assert.True(t, store.IsTransient(err), "%v", err)
	}
	for _, err := range []error{
		nil,
		errors.New("boom"),
		io.EOF,
		context.Canceled,
		context.DeadlineExceeded,
		fmt.Errorf("%w: %w", context.DeadlineExceeded, core.ErrTransient),
		core.ErrNotFound,
		fmt.Errorf("%w: %w", core.ErrNotFound, core.ErrTransient),
		fmt.Errorf("short body: %w: %w", core.ErrSizeMismatch, io.ErrUnexpectedEOF),
		fmt.Errorf("%w: %w", core.ErrChecksumMismatch, reset),
		core.ErrExists,
		core.ErrPermission,
		core.ErrBucketNotFound,
		&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)},
	} {
		assert.False(t, store.IsTransient(err), "%v", err)
	}
}

// flakyDriver fails the calls of each operation with the errors queued
// for it, in order, and then calls Driver.
type flakyDriver struct {
	store.Driver
	errs  map[string][]error
	calls map[string]int
}

func newFlaky(drv store.Driver, errs map[string][]error) *flakyDriver {
	return &flakyDriver{Driver: drv, errs: errs, calls: map[string]int{}}
}

func (d *flakyDriver) next(op string) error {
	d.calls[op]++
	if len(d.errs[op]) == 0 {
		return nil
	}
	err := d.errs[op][0]
	d.errs[op] = d.errs[op][1:]
	return err
}

func (d *flakyDriver) Put(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions) error {
	err := d.next("put")
	if err == errLost { // the Put lands, its answer is lost
		if err := d.Driver.Put(ctx, name, body, size, opts); err != nil {
			return err
		}
		return errLost
	}
	if err != nil {
		return err
	}
	return d.Driver.Put(ctx, name, body, size, opts)
}

func (d *flakyDriver) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	if err := d.next("stat"); err != nil {
		return store.ObjectInfo{}, err
	}
	return d.Driver.Stat(ctx, name)
}

func (d *flakyDriver) Delete(ctx context.Context, name string) error {
	err := d.next("delete")
	if err == errLost {
		if err := d.Driver.Delete(ctx, name); err != nil {
			return err
		}
		return errLost
	}
	if err != nil {
		return err
	}
	return d.Driver.Delete(ctx, name)
}

func (d *flakyDriver) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	err := d.next("list")
	if err == errLost { // fails after the first object
		first := true
		lerr := d.Driver.List(ctx, prefix, func(info store.ObjectInfo) error {
			if !first {
				return errLost
			}
			first = false
			return fn(info)
		})
		return lerr
	}
	if err != nil {
		return err
	}
	return d.Driver.List(ctx, prefix, fn)
}

// errLost is a transient failure that happens after the call took effect.
var errLost = fmt.Errorf("answer lost: %w", core.ErrTransient)

var errThrottled = fmt.Errorf("throttled: %w", core.ErrTransient)

// newDir returns a driver over a new directory.
func newDir(t *testing.T) store.Driver {
	t.Helper()
	drv, err := filestore.New(t.TempDir(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { drv.Close() })
	return drv
}

// flakyStore returns a Store over a driver that fails as errs say,
// retrying at most retries times without waiting.
func flakyStore(t *testing.T, retries int, errs map[string][]error) (*store.Store, *flakyDriver) {
	t.Helper()
	drv := newFlaky(newDir(t), errs)
	return store.New(drv, "test", &store.Options{Retries: retries, Backoff: -1}), drv
}

func TestRetries(t *testing.T) {
	ctx := t.Context()
	t.Run("PutUntilItLands", func(t *testing.T) {
		st, drv := flakyStore(t, 2, map[string][]error{"put": {errThrottled, errThrottled}})
		require.NoError(t, st.PutBytes(ctx, tag, []byte("x"), store.PutOptions{}))
		assert.Equal(t, 3, drv.calls["put"])
	})
	t.Run("PutGivesUp", func(t *testing.T) {
		st, drv := flakyStore(t, 2, map[string][]error{"put": {errThrottled, errThrottled, errThrottled, errThrottled}})
		err := st.PutBytes(ctx, tag, []byte("x"), store.PutOptions{})
		require.ErrorIs(t, err, errThrottled)
		assert.Contains(t, err.Error(), "gave up after 3 attempts")
		assert.Equal(t, 3, drv.calls["put"])
	})
	t.Run("NoRetries", func(t *testing.T) {
		st, drv := flakyStore(t, -1, map[string][]error{"put": {errThrottled}})
		require.ErrorIs(t, st.PutBytes(ctx, tag, []byte("x"), store.PutOptions{}), errThrottled)
		assert.Equal(t, 1, drv.calls["put"])
	})
	t.Run("PermanentFailure", func(t *testing.T) {
		denied := fmt.Errorf("403: %w", core.ErrPermission)
		st, drv := flakyStore(t, 2, map[string][]error{"put": {denied}})
		require.ErrorIs(t, st.PutBytes(ctx, tag, []byte("x"), store.PutOptions{}), core.ErrPermission)
		assert.Equal(t, 1, drv.calls["put"])
	})
	t.Run("CreateOnlyLostCompletion", func(t *testing.T) {
		st, drv := flakyStore(t, 2, map[string][]error{"put": {errLost}})
		err := st.PutBytes(ctx, tag, []byte("x"), store.PutOptions{CreateOnly: true})
		require.ErrorIs(t, err, core.ErrExists)
		assert.Contains(t, err.Error(), "on attempt 2 of a create-only write")
		assert.Equal(t, 2, drv.calls["put"])
		got, err := st.GetBytes(ctx, tag, 10)
		require.NoError(t, err)
		assert.Equal(t, []byte("x"), got)
	})
	t.Run("ShortBodyIsNotRetried", func(t *testing.T) {
		st, drv := flakyStore(t, 2, nil)
		err := st.Put(ctx, tag, strings.NewReader("short"), 10, store.PutOptions{})
		require.ErrorIs(t, err, core.ErrSizeMismatch)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		assert.Equal(t, 1, drv.calls["put"])
	})
	t.Run("StatAndDelete", func(t *testing.T) {
		st, drv := flakyStore(t, 2, map[string][]error{"stat": {errThrottled}, "delete": {errLost}})
		require.NoError(t, st.PutBytes(ctx, tag, []byte("x"), store.PutOptions{}))
		_, err := st.Stat(ctx, tag)
		require.NoError(t, err)
		assert.Equal(t, 2, drv.calls["stat"])
		require.NoError(t, st.Delete(ctx, tag), "a retried Delete that finds the object gone succeeds")
		assert.Equal(t, 2, drv.calls["delete"])
		require.ErrorIs(t, st.Delete(ctx, tag), core.ErrNotFound, "a first attempt that finds it gone fails")
	})
	t.Run("ListBeforeAnyObject", func(t *testing.T) {
		st, drv := flakyStore(t, 2, map[string][]error{"list": {errThrottled}})
		require.NoError(t, st.PutBytes(ctx, tag, []byte("x"), store.PutOptions{}))
		require.Equal(t, []string{tag}, listNames(t, st))
		assert.Equal(t, 2, drv.calls["list"])
	})
	t.Run("ListAfterAnObject", func(t *testing.T) {
		st, drv := flakyStore(t, 2, map[string][]error{"list": {errLost}})
		for _, name := range []string{"a", "b"} {
			require.NoError(t, st.PutBytes(ctx, name, []byte("x"), store.PutOptions{}))
		}
		err := st.List(ctx, "", func(store.ObjectInfo) error { return nil })
		require.ErrorIs(t, err, errLost, "a listing that called fn is not tried again")
		assert.Equal(t, 1, drv.calls["list"])
	})
	t.Run("ContextEndsWhileWaiting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		calls := 0
		st := store.New(&stubDriver{put: func() error {
			calls++
			cancel() // while the Store waits to try again
			return errThrottled
		}}, "test", &store.Options{Backoff: store.DefaultMaxBackoff})
		err := st.PutBytes(ctx, tag, []byte("x"), store.PutOptions{})
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorIs(t, err, errThrottled, "the last attempt's failure is kept")
		assert.Equal(t, 1, calls)
	})
}

func listNames(t *testing.T, st *store.Store) []string {
	t.Helper()
	var names []string
	require.NoError(t, st.List(t.Context(), "", func(info store.ObjectInfo) error {
		names = append(names, info.Name)
		return nil
	}))
	return names
}

// TestReadsResume reads objects and ranges whose reads break off every 64
// bytes: each resumes where it broke, and the bytes are exact.
func TestReadsResume(t *testing.T) {
	data := []byte(strings.Repeat("0123456789", 100))
	for _, tc := range []struct {
		name           string
		offset, length int64
	}{
		{"Get", 0, -1},
		{"Range", 100, 500},
		{"RangePastEnd", 900, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			drv := &breakingDriver{Driver: newDir(t), every: 64, err: io.ErrUnexpectedEOF}
			st := store.New(drv, "test", &store.Options{Retries: 1, Backoff: -1})
			require.NoError(t, st.PutBytes(t.Context(), tag, data, store.PutOptions{}))
			var rc io.ReadCloser
			var err error
			want := data
			if tc.length < 0 {
				rc, err = st.Get(t.Context(), tag)
			} else {
				rc, err = st.GetRange(t.Context(), tag, tc.offset, tc.length)
				want = data[tc.offset:min(tc.offset+tc.length, int64(len(data)))]
			}
			require.NoError(t, err)
			got, err := io.ReadAll(rc)
			require.NoError(t, err)
			require.NoError(t, rc.Close())
			assert.True(t, bytes.Equal(want, got), "read %d bytes that differ", len(got))
			assert.Equal(t, (len(want)+63)/64, drv.opened, "opened once per 64 bytes")
		})
	}
}

func TestReadGivesUp(t *testing.T) {
	drv := &breakingDriver{Driver: newDir(t), every: 64, err: io.ErrUnexpectedEOF, failOpen: fmt.Errorf("reset: %w", core.ErrTransient)}
	st := store.New(drv, "test", &store.Options{Retries: 2, Backoff: -1})
	require.NoError(t, st.PutBytes(t.Context(), tag, make([]byte, 1000), store.PutOptions{}))
	rc, err := st.Get(t.Context(), tag)
	require.NoError(t, err)
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	assert.Equal(t, int64(64), n)
	require.ErrorIs(t, err, drv.failOpen)
	var se *store.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "read", se.Op)
	assert.Equal(t, tag, se.Name)
	assert.Contains(t, err.Error(), "gave up at byte 64 after 3 attempts in a row without progress")
	_, err = rc.Read(make([]byte, 1))
	require.Error(t, err, "a reader that gave up stays failed")
}

// breakingDriver serves reads that fail with err after every bytes, and
// fails every re-opening with failOpen if set.
type breakingDriver struct {
	store.Driver
	every    int
	err      error
	failOpen error
	opened   int
}

func (d *breakingDriver) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	return d.GetRange(ctx, name, 0, 1<<62)
}

func (d *breakingDriver) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if d.opened > 0 && d.failOpen != nil {
		return nil, d.failOpen
	}
	d.opened++
	rc, err := d.Driver.GetRange(ctx, name, offset, length)
	if err != nil {
		return nil, err
	}
	return &breakingReader{ReadCloser: rc, left: d.every, err: d.err}, nil
}

// breakingReader fails with err once it has read left bytes, unless it
// ends first.
type breakingReader struct {
	io.ReadCloser
	left int
	err  error
}

func (r *breakingReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, r.err
	}
	n, err := r.ReadCloser.Read(p[:min(len(p), r.left)])
	r.left -= n
	return n, err
}
