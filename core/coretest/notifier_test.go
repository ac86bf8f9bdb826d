package coretest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNotifierStable(t *testing.T) {
	s, kv := NewObjectStore(), NewKV()
	assert.Same(t, s.Notifier(), s.Notifier())
	assert.Same(t, kv.Notifier(), kv.Notifier())
}

// Every successful mutation notifies once, with the state after it;
// failed mutations do not notify; cancel stops notifications.
func TestObjectStoreNotifies(t *testing.T) {
	ctx := t.Context()
	s := NewObjectStore()
	var got []string
	cancel := s.Notifier().Subscribe(func(_ context.Context, accountID, region string, view ObjectStoreView) {
		objects := 0
		for _, b := range view.Buckets {
			objects += len(b.Objects)
		}
		got = append(got, fmt.Sprintf("%s/%s buckets=%d objects=%d", accountID, region, len(view.Buckets), objects))
	})
	steps := []struct {
		name string
		do   func() error
		want string // empty: no notification
	}{
		{"create", func() error { return s.CreateBucket(ctx, acct, region, "b", true) }, "buckets=1 objects=0"},
		{"create again", func() error { return s.CreateBucket(ctx, acct, region, "b", true) }, ""},
		{"put", func() error { _, err := s.PutObject(ctx, acct, region, "b", "k", []byte("v")); return err }, "buckets=1 objects=1"},
		{"put missing bucket", func() error { _, err := s.PutObject(ctx, acct, region, "x", "k", nil); return err }, ""},
		{"delete", func() error { return s.DeleteObject(ctx, acct, region, "b", "k") }, "buckets=1 objects=1"},
		{"delete missing", func() error { return s.DeleteObject(ctx, acct, region, "b", "nope") }, ""},
		{"merge", func() error { return s.Merge(ctx, acct, region, ObjectStoreView{Buckets: []BucketView{{Name: "c"}}}) }, "buckets=2 objects=1"},
		{"restore", func() error { return s.Restore(ctx, acct, region, ObjectStoreView{}) }, "buckets=0 objects=0"},
		{"import blobs, then restore", func() error {
			view := ObjectStoreView{Buckets: []BucketView{{Name: "d", Clock: 1, Objects: []ObjectView{{Key: "k", Versions: []VersionView{dataVersion("d", "k", NullVersionID, 1, []byte("v"))}}}}}}
			source := NewMemorySource(map[string][]byte{BlobKey("d", "k", NullVersionID): []byte("v")})
			if err := s.RestoreWithBlobs(ctx, acct, region, view, source); err != nil {
				return err
			}
			if len(got) != 0 {
				return fmt.Errorf("RestoreWithBlobs notified %q: it must leave the visible state alone", got)
			}
			return s.Restore(ctx, acct, region, view)
		}, "buckets=1 objects=1"},
	}
	for _, step := range steps {
		got = nil
		err := step.do()
		if step.want == "" {
			require.Error(t, err, step.name)
			assert.Empty(t, got, step.name)
			continue
		}
		require.NoError(t, err, step.name)
		assert.Equal(t, []string{acct + "/" + region + " " + step.want}, got, step.name)
	}
	cancel()
	got = nil
	require.NoError(t, s.CreateBucket(ctx, acct, region, "e", false))
	assert.Empty(t, got)
	assert.Zero(t, s.Notifier().Len())
}

func TestKVNotifies(t *testing.T) {
	ctx := t.Context()
	kv := NewKV()
	var got []map[string]string
	defer kv.Notifier().Subscribe(func(_ context.Context, _, _ string, view KVView) {
		got = append(got, view.Parameters)
	})()
	require.NoError(t, kv.Put(ctx, acct, region, "a", "1"))
	require.Error(t, kv.Delete(ctx, acct, region, "nope"))
	require.NoError(t, kv.Delete(ctx, acct, region, "a"))
	require.NoError(t, kv.Merge(ctx, acct, region, KVView{Parameters: map[string]string{"b": "2"}}))
	assert.Equal(t, []map[string]string{{"a": "1"}, {}, {"b": "2"}}, got)
}

// A listener that reads the store back does not deadlock: listeners run
// after the lock is released.
func TestListenerReadsBack(t *testing.T) {
	ctx := t.Context()
	s := NewObjectStore()
	var reads atomic.Int32
	s.Notifier().Subscribe(func(ctx context.Context, accountID, region string, _ ObjectStoreView) {
		_, err := s.Snapshot(ctx, accountID, region)
		assert.NoError(t, err)
		_, err = s.SnapshotWithBlobs(ctx, accountID, region, &MemoryVisitor{})
		assert.NoError(t, err)
		s.Stats(accountID, region)
		_, _ = s.ListObjects(ctx, accountID, region, "b", "")
		reads.Add(1)
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.CreateBucket(ctx, acct, region, "b", true)
		_, _ = s.PutObject(ctx, acct, region, "b", "k", []byte("v"))
		_ = s.DeleteObject(ctx, acct, region, "b", "k")
		_ = s.Restore(ctx, acct, region, ObjectStoreView{})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock: a listener reading the store blocked the mutation")
	}
	assert.EqualValues(t, 4, reads.Load())
}

// Mutations, snapshots and subscriptions from many goroutines; run with
// -race.
func TestObjectStoreConcurrent(t *testing.T) {
	ctx := t.Context()
	s := NewObjectStore()
	require.NoError(t, s.CreateBucket(ctx, acct, region, "b", true))
	var notified atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				cancel := s.Notifier().Subscribe(func(context.Context, string, string, ObjectStoreView) { notified.Add(1) })
				key := fmt.Sprintf("g%d/k%d", g, i%5)
				_, err := s.PutObject(ctx, acct, region, "b", key, []byte(key))
				assert.NoError(t, err)
				_, err = s.GetObject(ctx, acct, region, "b", key)
				assert.NoError(t, err)
				_, err = s.SnapshotWithBlobs(ctx, acct, region, &MemoryVisitor{})
				assert.NoError(t, err)
				cancel()
			}
		})
	}
	wg.Wait()
	n, _ := s.Stats(acct, region)
	assert.Equal(t, 8*50, n)
	assert.Positive(t, notified.Load())
	assert.Zero(t, s.Notifier().Len())
	view := mustSnapshot(t, s, acct, region)
	assert.EqualValues(t, 8*50, view.Buckets[0].Clock)
}
