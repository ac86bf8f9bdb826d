package core_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
)

func TestNotifierOrderAndCancel(t *testing.T) {
	var n core.StateChangeNotifier[int] // the zero value is ready
	var got []string
	c1 := n.Subscribe(func(_ context.Context, acct, region string, v int) { got = append(got, fmt.Sprint("a", v)) })
	n.Subscribe(func(_ context.Context, acct, region string, v int) { got = append(got, fmt.Sprint("b", v)) })
	require.Equal(t, 2, n.Len())
	n.Notify(t.Context(), "acct", "region", 1)
	c1()
	c1() // harmless twice
	n.Notify(t.Context(), "acct", "region", 2)
	assert.Equal(t, []string{"a1", "b1", "b2"}, got)
	assert.Equal(t, 1, n.Len())
}

func TestNotifierSubscribeDuringNotify(t *testing.T) {
	var n core.StateChangeNotifier[int]
	calls := 0
	n.Subscribe(func(context.Context, string, string, int) {
		calls++
		n.Subscribe(func(context.Context, string, string, int) { calls += 100 })
	})
	n.Notify(t.Context(), "a", "r", 0) // the new listener waits for the next call
	assert.Equal(t, 1, calls)
	n.Notify(t.Context(), "a", "r", 0)
	assert.Equal(t, 102, calls)
}

func TestNotifierConcurrent(t *testing.T) {
	var n core.StateChangeNotifier[int]
	var mu sync.Mutex
	seen := map[int]bool{}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			cancel := n.Subscribe(func(_ context.Context, _, _ string, v int) {
				if v == i {
					mu.Lock()
					seen[i] = true
					mu.Unlock()
				}
			})
			n.Notify(t.Context(), "a", "r", i) // reaches its own listener
			cancel()
		})
	}
	wg.Wait()
	assert.Zero(t, n.Len())
	assert.Len(t, seen, 8, "a listener missed the notification that followed its subscription")
}

// stub is a StatefulService that counts snapshots.
type stub struct {
	notifier  core.StateChangeNotifier[string]
	snapshots int
	err       error
}

func (s *stub) ServiceName() string                                   { return "stub" }
func (s *stub) Notifier() *core.StateChangeNotifier[string]           { return &s.notifier }
func (s *stub) Restore(context.Context, string, string, string) error { return nil }
func (s *stub) Merge(context.Context, string, string, string) error   { return nil }
func (s *stub) Snapshot(_ context.Context, acct, region string) (string, error) {
	s.snapshots++
	return acct + "/" + region, s.err
}

func TestNotifyStateChanged(t *testing.T) {
	s := &stub{}
	require.NoError(t, core.NotifyStateChanged[string](t.Context(), s, "a", "r"))
	assert.Zero(t, s.snapshots, "no listener: no snapshot taken")

	var seen string
	s.Notifier().Subscribe(func(_ context.Context, _, _ string, v string) { seen = v })
	require.NoError(t, core.NotifyStateChanged[string](t.Context(), s, "a", "r"))
	assert.Equal(t, "a/r", seen)

	s.err = errors.New("boom")
	require.ErrorIs(t, core.NotifyStateChanged[string](t.Context(), s, "a", "r"), s.err)
}

func TestStateViewError(t *testing.T) {
	cause := fmt.Errorf("wrapped: %w", core.ErrChecksumMismatch)
	err := fmt.Errorf("restore: %w", core.NewBlobError("s3", "b/k\x00v1", cause))
	require.ErrorIs(t, err, core.ErrChecksumMismatch, "errors.Is reaches the cause")
	var ve *core.StateViewError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, core.KindBlob, ve.Kind)
	assert.Equal(t, `s3: state view: blob "b/k\x00v1": wrapped: checksum mismatch`, ve.Error(), "the key is quoted so NUL stays visible")
	assert.NotErrorIs(t, err, core.ErrInvalid)

	inv := core.NewViewError(core.KindInvalid, "", fs.ErrInvalid)
	assert.ErrorIs(t, inv, core.ErrInvalid, "KindInvalid matches ErrInvalid")
	assert.ErrorIs(t, inv, fs.ErrInvalid)
	assert.Equal(t, "state view: invalid: invalid argument", inv.Error())
	assert.Equal(t, "serialize", core.KindSerialize.String())
	assert.Equal(t, "ViewErrorKind(9)", core.ViewErrorKind(9).String())
}
