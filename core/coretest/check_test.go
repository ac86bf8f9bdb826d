package coretest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
)

func TestCheckBlobRoundTripObjectStore(t *testing.T) {
	tests := []struct {
		name       string
		fill       FillOptions
		batchSize  int
		knownSizes bool
		dstState   bool // dst holds other state at the start
	}{
		{"hostile unknown sizes", FillOptions{Objects: 300, Size: 2048, Seed: 1, Hostile: true}, 0, false, false},
		{"hostile known sizes", FillOptions{Objects: 300, Size: 2048, Seed: 2, Hostile: true}, 0, true, false},
		{"batches of one", FillOptions{Objects: 20, Seed: 3, Hostile: true}, 1, false, true},
		{"dst not empty", FillOptions{Objects: 50, Seed: 4}, 7, true, true},
		{"large blobs", FillOptions{Objects: 8, Size: 1 << 20, Seed: 5}, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			src := filledStore(t, tt.fill)
			dst := NewObjectStore()
			for _, s := range []*ObjectStore{src, dst} {
				s.BatchSize, s.KnownSizes = tt.batchSize, tt.knownSizes
			}
			if tt.dstState {
				_, _, err := Fill(ctx, dst, acct, region, FillOptions{Objects: 10, Seed: 99, Hostile: true})
				require.NoError(t, err)
			}
			before := mustJSON(t, mustSnapshot(t, dst, acct, region))
			require.NoError(t, CheckBlobRoundTrip(ctx, src, dst, acct, region))
			assert.Equal(t, before, mustJSON(t, mustSnapshot(t, dst, acct, region)), "dst ends as it began")
		})
	}
	t.Run("empty", func(t *testing.T) {
		require.NoError(t, CheckBlobRoundTrip(t.Context(), NewObjectStore(), NewObjectStore(), acct, region))
	})
	t.Run("shaped like the original's S3 mock", func(t *testing.T) {
		// RestoreWithBlobs imports the blobs, then replaces the state
		// itself; the Restore that follows replaces it again.
		dst := &brokenStore{ObjectStore: NewObjectStore()}
		dst.restoreWithBlobs = func(ctx context.Context, a, r string, view ObjectStoreView, source core.BlobSource) error {
			if err := dst.ObjectStore.RestoreWithBlobs(ctx, a, r, view, source); err != nil {
				return err
			}
			return dst.ObjectStore.Restore(ctx, a, r, view)
		}
		src := filledStore(t, FillOptions{Objects: 30, Seed: 11, Hostile: true})
		require.NoError(t, CheckBlobRoundTrip(t.Context(), src, dst, acct, region))
	})
	t.Run("one store twice", func(t *testing.T) {
		s := filledStore(t, FillOptions{Objects: 30, Seed: 6, Hostile: true})
		require.NoError(t, CheckBlobRoundTrip(t.Context(), s, s, acct, region))
	})
}

// brokenStore is an ObjectStore with one method replaced by a broken one,
// to prove that the checks fail.
type brokenStore struct {
	*ObjectStore
	snapshotWithBlobs func(ctx context.Context, accountID, region string, visitor core.BlobVisitor) (ObjectStoreView, error)
	restoreWithBlobs  func(ctx context.Context, accountID, region string, view ObjectStoreView, source core.BlobSource) error
	merge             func(ctx context.Context, accountID, region string, view ObjectStoreView) error
	notifier          func() *core.StateChangeNotifier[ObjectStoreView]
}

func (b *brokenStore) SnapshotWithBlobs(ctx context.Context, accountID, region string, visitor core.BlobVisitor) (ObjectStoreView, error) {
	if b.snapshotWithBlobs != nil {
		return b.snapshotWithBlobs(ctx, accountID, region, visitor)
	}
	return b.ObjectStore.SnapshotWithBlobs(ctx, accountID, region, visitor)
}

func (b *brokenStore) RestoreWithBlobs(ctx context.Context, accountID, region string, view ObjectStoreView, source core.BlobSource) error {
	if b.restoreWithBlobs != nil {
		return b.restoreWithBlobs(ctx, accountID, region, view, source)
	}
	return b.ObjectStore.RestoreWithBlobs(ctx, accountID, region, view, source)
}

func (b *brokenStore) Merge(ctx context.Context, accountID, region string, view ObjectStoreView) error {
	if b.merge != nil {
		return b.merge(ctx, accountID, region, view)
	}
	return b.ObjectStore.Merge(ctx, accountID, region, view)
}

func (b *brokenStore) Notifier() *core.StateChangeNotifier[ObjectStoreView] {
	if b.notifier != nil {
		return b.notifier()
	}
	return b.ObjectStore.Notifier()
}

// visitorFunc adapts a function to core.BlobVisitor without closing
// anything itself.
type visitorFunc func(ctx context.Context, batch []core.BlobExportEntry) error

func (f visitorFunc) Visit(ctx context.Context, batch []core.BlobExportEntry) error {
	return f(ctx, batch)
}

// sourceWrapper passes Fetch through wrap.
type sourceWrapper struct {
	inner core.BlobSource
	wrap  func(key string, rc io.ReadCloser) io.ReadCloser
}

func (s sourceWrapper) Fetch(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := s.inner.Fetch(ctx, key)
	if err != nil {
		return nil, err
	}
	return s.wrap(key, rc), nil
}

type noClose struct{ io.Reader }

func (noClose) Close() error { return nil }

// recordingSource reads every blob it serves whole and keeps a copy.
type recordingSource struct {
	inner core.BlobSource
	got   map[string][]byte
}

func (s *recordingSource) Fetch(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := s.inner.Fetch(ctx, key)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil {
		return nil, err
	}
	s.got[key] = data
	return io.NopCloser(bytes.NewReader(data)), nil
}

// keepFetched returns view without the versions whose blobs are not in
// fetched, and without objects left with no version.
func keepFetched(view ObjectStoreView, fetched map[string][]byte) ObjectStoreView {
	out := ObjectStoreView{}
	for _, b := range view.Buckets {
		nb := b
		nb.Objects = nil
		for _, o := range b.Objects {
			no := ObjectView{Key: o.Key}
			for _, v := range o.Versions {
				if _, ok := fetched[string(v.Blob)]; ok || v.DeleteMarker {
					no.Versions = append(no.Versions, v)
				}
			}
			if len(no.Versions) > 0 {
				nb.Objects = append(nb.Objects, no)
			}
		}
		out.Buckets = append(out.Buckets, nb)
	}
	return out
}

func TestCheckBlobRoundTripCatchesBrokenServices(t *testing.T) {
	tests := []struct {
		name string
		src  func(b *brokenStore) // breaks src, if set
		dst  func(b *brokenStore) // breaks dst, if set
		want string
	}{
		{"drops a blob", func(b *brokenStore) {
			b.snapshotWithBlobs = func(ctx context.Context, a, r string, visitor core.BlobVisitor) (ObjectStoreView, error) {
				return b.ObjectStore.SnapshotWithBlobs(ctx, a, r, visitorFunc(func(ctx context.Context, batch []core.BlobExportEntry) error {
					last := batch[len(batch)-1]
					_ = last.Reader.Close()
					return visitor.Visit(ctx, batch[:len(batch)-1])
				}))
			}
		}, nil, "not found"},
		{"sends an empty batch", func(b *brokenStore) {
			b.snapshotWithBlobs = func(ctx context.Context, a, r string, visitor core.BlobVisitor) (ObjectStoreView, error) {
				if err := visitor.Visit(ctx, nil); err != nil {
					return ObjectStoreView{}, err
				}
				return b.ObjectStore.SnapshotWithBlobs(ctx, a, r, visitor)
			}
		}, nil, "batch 0 handed to the visitor is empty"},
		{"exports a blob twice", func(b *brokenStore) {
			b.snapshotWithBlobs = func(ctx context.Context, a, r string, visitor core.BlobVisitor) (ObjectStoreView, error) {
				return b.ObjectStore.SnapshotWithBlobs(ctx, a, r, visitorFunc(func(ctx context.Context, batch []core.BlobExportEntry) error {
					// The visitor's errors are swallowed.
					_ = visitor.Visit(ctx, batch[:1])
					_ = visitor.Visit(ctx, batch)
					return nil
				}))
			}
		}, nil, "exported twice"},
		{"snapshots are not deterministic", func(b *brokenStore) {
			calls := 0
			b.snapshotWithBlobs = func(ctx context.Context, a, r string, visitor core.BlobVisitor) (ObjectStoreView, error) {
				view, err := b.ObjectStore.SnapshotWithBlobs(ctx, a, r, visitor)
				calls++
				view.Buckets[0].Clock += uint64(calls)
				return view, err
			}
		}, nil, "two snapshots of the same state differ"},
		{"notifier not stable", nil, func(b *brokenStore) {
			b.notifier = func() *core.StateChangeNotifier[ObjectStoreView] {
				return new(core.StateChangeNotifier[ObjectStoreView])
			}
		}, "Notifier returns a different notifier"},
		{"fetches twice", nil, func(b *brokenStore) {
			b.restoreWithBlobs = func(ctx context.Context, a, r string, view ObjectStoreView, source core.BlobSource) error {
				return b.ObjectStore.RestoreWithBlobs(ctx, a, r, view, sourceWrapper{source, func(key string, rc io.ReadCloser) io.ReadCloser {
					_ = rc.Close()
					again, err := source.Fetch(ctx, key)
					require.NoError(t, err)
					return again
				}})
			}
		}, "more than once"},
		{"leaks readers", nil, func(b *brokenStore) {
			b.restoreWithBlobs = func(ctx context.Context, a, r string, view ObjectStoreView, source core.BlobSource) error {
				return b.ObjectStore.RestoreWithBlobs(ctx, a, r, view, sourceWrapper{source, func(_ string, rc io.ReadCloser) io.ReadCloser {
					return noClose{rc}
				}})
			}
		}, "never closed"},
		{"clears state before fetching", nil, func(b *brokenStore) {
			b.restoreWithBlobs = func(ctx context.Context, a, r string, view ObjectStoreView, source core.BlobSource) error {
				// Clearing for the zero view would be a broken Merge,
				// caught by another check.
				if len(view.Buckets) > 0 {
					if err := b.ObjectStore.Restore(ctx, a, r, ObjectStoreView{}); err != nil {
						return err
					}
				}
				return b.ObjectStore.RestoreWithBlobs(ctx, a, r, view, source)
			}
		}, "after a failed RestoreWithBlobs from a source whose Fetch fails"},
		{"keeps what it fetched before an error", nil, func(b *brokenStore) {
			b.restoreWithBlobs = func(ctx context.Context, a, r string, view ObjectStoreView, source core.BlobSource) error {
				rec := &recordingSource{inner: source, got: map[string][]byte{}}
				err := b.ObjectStore.RestoreWithBlobs(ctx, a, r, view, rec)
				if err != nil {
					kept := keepFetched(view, rec.got)
					_ = b.ObjectStore.RestoreWithBlobs(ctx, a, r, kept, NewMemorySource(rec.got))
					_ = b.ObjectStore.Restore(ctx, a, r, kept)
				}
				return err
			}
		}, "dst's state is not the expected one"},
		{"loses the error chain", nil, func(b *brokenStore) {
			b.restoreWithBlobs = func(ctx context.Context, a, r string, view ObjectStoreView, source core.BlobSource) error {
				if err := b.ObjectStore.RestoreWithBlobs(ctx, a, r, view, source); err != nil {
					return fmt.Errorf("restore failed: %v", err)
				}
				return nil
			}
		}, "errors.Is or errors.As does not match"},
		{"stops reading at the recorded size", nil, func(b *brokenStore) {
			b.restoreWithBlobs = func(ctx context.Context, a, r string, view ObjectStoreView, source core.BlobSource) error {
				sizes := map[string]int64{}
				for _, bv := range view.Buckets {
					for _, o := range bv.Objects {
						for _, v := range o.Versions {
							sizes[string(v.Blob)] = v.Size
						}
					}
				}
				// The reader ends at the recorded size, so the service
				// never sees the verdict the source gives in place of
				// io.EOF.
				return b.ObjectStore.RestoreWithBlobs(ctx, a, r, view, sourceWrapper{source, func(key string, rc io.ReadCloser) io.ReadCloser {
					return struct {
						io.Reader
						io.Closer
					}{io.LimitReader(rc, sizes[key]), rc}
				}})
			}
		}, "then a checksum mismatch in place of io.EOF succeeded"},
		{"does not import the blobs", nil, func(b *brokenStore) {
			b.restoreWithBlobs = func(ctx context.Context, a, r string, view ObjectStoreView, source core.BlobSource) error {
				return NewObjectStore().RestoreWithBlobs(ctx, a, r, view, source)
			}
		}, "Restore after RestoreWithBlobs: "},
		{"merge deletes", nil, func(b *brokenStore) {
			b.merge = b.ObjectStore.Restore
		}, "after merging the zero view"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &brokenStore{ObjectStore: filledStore(t, FillOptions{Objects: 40, Seed: 8, Hostile: true})}
			dst := &brokenStore{ObjectStore: NewObjectStore()}
			if tt.src != nil {
				tt.src(src)
			}
			if tt.dst != nil {
				tt.dst(dst)
			}
			err := CheckBlobRoundTrip(t.Context(), src, dst, acct, region)
			require.Error(t, err)
			t.Log(err)
			assert.Contains(t, err.Error(), tt.want)
			assert.Contains(t, err.Error(), "coretest: check blob round trip of s3: ")
		})
	}
}

// A check failure caused by a service error still matches that error.
func TestCheckBlobRoundTripWrapsServiceErrors(t *testing.T) {
	src := &brokenStore{ObjectStore: NewObjectStore()}
	src.snapshotWithBlobs = func(context.Context, string, string, core.BlobVisitor) (ObjectStoreView, error) {
		return ObjectStoreView{}, core.ErrPermission
	}
	err := CheckBlobRoundTrip(t.Context(), src, NewObjectStore(), acct, region)
	require.ErrorIs(t, err, core.ErrPermission)
	assert.Contains(t, err.Error(), "snapshot src")
}

func TestCheckRoundTripObjectStore(t *testing.T) {
	// Without a blob source, an ObjectStore restores only blobs it holds:
	// the plain check passes when src and dst are the same store, and
	// fails, naming the missing blob, when dst is another.
	s := filledStore(t, FillOptions{Objects: 20, Seed: 9, Hostile: true})
	require.NoError(t, CheckRoundTrip[ObjectStoreView](t.Context(), s, s, acct, region))
	err := CheckRoundTrip[ObjectStoreView](t.Context(), s, NewObjectStore(), acct, region)
	require.ErrorIs(t, err, core.ErrNotFound)
	assert.Contains(t, err.Error(), "restore src's view into dst")
}

func TestCheckRoundTripCatchesMissingMerge(t *testing.T) {
	src := &brokenStore{ObjectStore: filledStore(t, FillOptions{Objects: 5, Seed: 10})}
	src.merge = func(context.Context, string, string, ObjectStoreView) error { return core.ErrInvalid }
	err := CheckRoundTrip[ObjectStoreView](t.Context(), src, src, acct, region)
	require.ErrorIs(t, err, core.ErrInvalid)
	assert.Contains(t, err.Error(), "merge the zero view into dst")
}
