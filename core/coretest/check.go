package coretest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"

	"github.com/statebucket/statebucket/core"
)

// CheckRoundTrip checks that the plain stateful services src and dst (two
// instances of the same service, or one twice) move the state of accountID
// in region through a snapshot: two snapshots of the same state are
// identical, the view survives a JSON round trip byte-exact, Restore into
// dst followed by Snapshot yields src's view, Merge of the zero view (which
// must be a valid, empty view) and of src's view change nothing, and a
// Restore of dst's original view brings it back.
//
// It returns an error describing the first failure, or nil. On success dst
// is left in the state it had before the call. Like testing/fstest.TestFS,
// it takes no *testing.T, so any test or program can run it.
func CheckRoundTrip[V any](ctx context.Context, src, dst core.StatefulService[V], accountID, region string) error {
	c := &checker[V]{src: src, dst: dst, accountID: accountID, region: region}
	if err := c.checkPlain(ctx); err != nil {
		return fmt.Errorf("coretest: check round trip of %s: %w", src.ServiceName(), err)
	}
	return nil
}

// CheckBlobRoundTrip checks that the blob-backed services src and dst (two
// instances of the same service, or one twice) move the state of accountID
// in region, with its blobs, through a snapshot, restoring it as
// snapshot.Import does: RestoreWithBlobs, then Restore or Merge with the
// same view.
//
//   - SnapshotWithBlobs hands over no empty batch and no key twice, and two
//     snapshots of the same state are identical, view and blobs;
//   - the view survives a JSON round trip byte-exact;
//   - RestoreWithBlobs into dst fetches every exported key exactly once,
//     nothing else, and closes every reader; the Restore that follows
//     succeeds, and a snapshot of dst then yields src's view and blobs;
//   - Merge of the zero view (which must be a valid, empty view) changes
//     nothing, nor does RestoreWithBlobs followed by Merge of src's view
//     into dst holding src's state;
//   - a RestoreWithBlobs whose source fails on the key dst fetched last (in
//     Fetch; part-way through the reader; or, having served the blob with
//     one byte flipped, in place of io.EOF, as a source that verifies
//     digests does) fails with an error that errors.Is and errors.As match
//     to the source's error, and leaves dst's visible state as it was. This
//     is checked with dst holding src's state, then again with dst back in
//     its original state, if that differs.
//
// It accepts both shapes of RestoreWithBlobs that core.BlobBackedService
// describes: one that leaves the visible state alone, and one that also
// replaces it with the view, as the Rust original's own S3 and EBS mocks
// do.
//
// It returns an error describing the first failure, or nil. On success dst
// is left in the state it had before the call. Like testing/fstest.TestFS,
// it takes no *testing.T, so any test or program can run it.
func CheckBlobRoundTrip[V any](ctx context.Context, src, dst core.BlobBackedService[V], accountID, region string) error {
	c := &checker[V]{src: src, dst: dst, accountID: accountID, region: region, blobDst: dst}
	if err := c.checkBlobs(ctx); err != nil {
		return fmt.Errorf("coretest: check blob round trip of %s: %w", src.ServiceName(), err)
	}
	return nil
}

// checker runs the checks. blobDst is dst when the services are
// blob-backed, nil otherwise.
type checker[V any] struct {
	src, dst          core.StatefulService[V]
	blobDst           core.BlobBackedService[V]
	accountID, region string
	before            capture[V] // dst's state at the start
}

func (c *checker[V]) checkPlain(ctx context.Context) error {
	if _, _, _, err := c.roundTrip(ctx); err != nil {
		return err
	}
	return c.restoreAndCompare(ctx, "dst's original view", c.before.view, c.before)
}

func (c *checker[V]) checkBlobs(ctx context.Context) error {
	want, view, order, err := c.roundTrip(ctx)
	if err != nil {
		return err
	}
	if err := c.checkFailures(ctx, view, want, want, order); err != nil {
		return err
	}
	if err := c.restoreAndCompare(ctx, "dst's original view", c.before.view, c.before); err != nil {
		return err
	}
	if c.before.diff(want) == nil {
		return nil
	}
	return c.checkFailures(ctx, view, want, c.before, order)
}

// roundTrip performs the checks both services share. It returns src's
// snapshot, its view decoded from JSON and the order in which dst fetched
// the blobs, and leaves dst holding src's state.
func (c *checker[V]) roundTrip(ctx context.Context) (want capture[V], view V, order []string, err error) {
	if s, d := c.src.ServiceName(), c.dst.ServiceName(); s != d {
		return want, view, nil, fmt.Errorf("src is service %q, dst is %q", s, d)
	}
	for _, svc := range []core.StatefulService[V]{c.src, c.dst} {
		if first := svc.Notifier(); svc.Notifier() != first {
			return want, view, nil, errors.New("Notifier returns a different notifier on each call")
		}
	}
	if c.before, err = c.snapshot(ctx, c.dst); err != nil {
		return want, view, nil, fmt.Errorf("snapshot dst: %w", err)
	}
	if want, err = c.snapshot(ctx, c.src); err != nil {
		return want, view, nil, fmt.Errorf("snapshot src: %w", err)
	}
	again, err := c.snapshot(ctx, c.src)
	if err != nil {
		return want, view, nil, fmt.Errorf("snapshot src again: %w", err)
	}
	if err := again.diff(want); err != nil {
		return want, view, nil, fmt.Errorf("two snapshots of the same state differ: %w", err)
	}
	if err := json.Unmarshal(want.json, &view); err != nil {
		return want, view, nil, fmt.Errorf("decode view: %w", err)
	}
	decoded, err := newCapture(view, want.blobs)
	if err != nil {
		return want, view, nil, err
	}
	if err := decoded.diff(want); err != nil {
		return want, view, nil, fmt.Errorf("view does not survive a JSON round trip: %w", err)
	}
	if order, err = c.restore(ctx, view, want.blobs, false); err != nil {
		return want, view, nil, fmt.Errorf("restore src's view into dst: %w", err)
	}
	if err := c.expectDst(ctx, "after restoring src's view", want); err != nil {
		return want, view, nil, err
	}
	var empty V
	if err := c.checkMerge(ctx, "the zero view", empty, nil, want); err != nil {
		return want, view, order, err
	}
	return want, view, order, c.checkMerge(ctx, "src's view", view, want.blobs, want)
}

// snapshot returns the snapshot of svc, with its blobs if the services
// are blob-backed. It checks that no batch is empty and no key exported
// twice.
func (c *checker[V]) snapshot(ctx context.Context, svc core.StatefulService[V]) (capture[V], error) {
	if c.blobDst == nil {
		view, err := svc.Snapshot(ctx, c.accountID, c.region)
		if err != nil {
			return capture[V]{}, err
		}
		return newCapture(view, nil)
	}
	visitor := &MemoryVisitor{}
	view, err := svc.(core.BlobBackedService[V]).SnapshotWithBlobs(ctx, c.accountID, c.region, visitor)
	if err != nil {
		return capture[V]{}, err
	}
	for i, n := range visitor.BatchSizes() {
		if n == 0 {
			return capture[V]{}, fmt.Errorf("batch %d handed to the visitor is empty", i)
		}
	}
	seen := make(map[string]bool)
	for _, key := range visitor.Keys() {
		if seen[key] {
			return capture[V]{}, fmt.Errorf("blob %q exported twice", key)
		}
		seen[key] = true
	}
	return newCapture(view, visitor.Blobs())
}

// restore restores view into dst with Restore or, if merge, Merge. When
// the services are blob-backed and blobs is not nil, RestoreWithBlobs from
// a source serving blobs comes first; restore then returns the order in
// which dst fetched the blobs, and checks that every key of blobs was
// fetched exactly once, nothing else, and that every reader was closed.
func (c *checker[V]) restore(ctx context.Context, view V, blobs map[string][]byte, merge bool) ([]string, error) {
	apply, name := c.dst.Restore, "Restore"
	if merge {
		apply, name = c.dst.Merge, "Merge"
	}
	if c.blobDst == nil || blobs == nil {
		return nil, apply(ctx, c.accountID, c.region, view)
	}
	source := &checkSource{inner: NewMemorySource(blobs)}
	if err := c.blobDst.RestoreWithBlobs(ctx, c.accountID, c.region, view, source); err != nil {
		return nil, fmt.Errorf("RestoreWithBlobs: %w", err)
	}
	order := source.inner.Fetched()
	count := make(map[string]int, len(order))
	for _, key := range order {
		count[key]++
		if _, ok := blobs[key]; !ok {
			return nil, fmt.Errorf("RestoreWithBlobs fetched blob %q, which the snapshot did not export", key)
		}
		if count[key] == 2 {
			return nil, fmt.Errorf("RestoreWithBlobs fetched blob %q more than once", key)
		}
	}
	for _, key := range sortedKeys(blobs) {
		if count[key] == 0 {
			return nil, fmt.Errorf("RestoreWithBlobs never fetched exported blob %q", key)
		}
	}
	if err := source.checkClosed(); err != nil {
		return nil, fmt.Errorf("RestoreWithBlobs: %w", err)
	}
	if err := apply(ctx, c.accountID, c.region, view); err != nil {
		return nil, fmt.Errorf("%s after RestoreWithBlobs: %w", name, err)
	}
	return order, nil
}

// restoreAndCompare restores view (with want's blobs) into dst and checks
// that dst's snapshot is then want.
func (c *checker[V]) restoreAndCompare(ctx context.Context, what string, view V, want capture[V]) error {
	if _, err := c.restore(ctx, view, want.blobs, false); err != nil {
		return fmt.Errorf("restore %s into dst: %w", what, err)
	}
	return c.expectDst(ctx, "after restoring "+what, want)
}

// checkMerge merges view, whose blobs are blobs, into dst, which holds
// want, and checks that nothing changed.
func (c *checker[V]) checkMerge(ctx context.Context, what string, view V, blobs map[string][]byte, want capture[V]) error {
	if _, err := c.restore(ctx, view, blobs, true); err != nil {
		return fmt.Errorf("merge %s into dst: %w", what, err)
	}
	return c.expectDst(ctx, "after merging "+what, want)
}

// expectDst checks that dst's snapshot is want.
func (c *checker[V]) expectDst(ctx context.Context, when string, want capture[V]) error {
	got, err := c.snapshot(ctx, c.dst)
	if err != nil {
		return fmt.Errorf("%s: snapshot dst: %w", when, err)
	}
	if err := got.diff(want); err != nil {
		return fmt.Errorf("%s: dst's state is not the expected one: %w", when, err)
	}
	return nil
}

// checkFailures imports view into dst, which holds baseline, from sources
// that fail on a blob of src's snapshot want, and checks that each
// RestoreWithBlobs fails as it should and leaves baseline visible. order is
// the order in which dst fetched the blobs in a successful restore.
func (c *checker[V]) checkFailures(ctx context.Context, view V, want, baseline capture[V], order []string) error {
	if len(order) == 0 {
		return nil
	}
	last := order[len(order)-1]
	faults := []fault{{mode: failFetch, key: last}, {mode: failRead, key: last}}
	for _, key := range slices.Backward(order) {
		if len(want.blobs[key]) > 0 {
			faults = append(faults, fault{mode: flipByte, key: key})
			break
		}
	}
	for _, f := range faults {
		injected := &injectedError{key: f.key}
		if f.mode == flipByte {
			injected.err = core.ErrChecksumMismatch
		}
		source := &checkSource{inner: NewMemorySource(want.blobs), fault: f, injected: injected}
		err := c.blobDst.RestoreWithBlobs(ctx, c.accountID, c.region, view, source)
		if err == nil {
			return fmt.Errorf("RestoreWithBlobs from %s succeeded", f)
		}
		var target *injectedError
		if !errors.Is(err, injected) || !errors.As(err, &target) {
			return fmt.Errorf("RestoreWithBlobs from %s returned an error that errors.Is or errors.As does not match to the source's error: %v", f, err)
		}
		if err := source.checkClosed(); err != nil {
			return fmt.Errorf("RestoreWithBlobs from %s: %w", f, err)
		}
		if err := c.expectDst(ctx, "after a failed RestoreWithBlobs from "+f.String(), baseline); err != nil {
			return err
		}
	}
	return nil
}

// injectedError is the error with which the sources of
// CheckBlobRoundTrip fail on purpose, unwrapping to err (nil, or
// core.ErrChecksumMismatch where a verifying source would detect the
// fault). A service's RestoreWithBlobs must return it wrapped, so that
// errors.Is and errors.As reach it.
type injectedError struct {
	key string
	err error
}

func (e *injectedError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("coretest: failure injected into blob %q: %v", e.key, e.err)
	}
	return fmt.Sprintf("coretest: failure injected into blob %q", e.key)
}

func (e *injectedError) Unwrap() error { return e.err }

// capture is a snapshot: the view, its JSON, and its blobs (nil for a
// plain service).
type capture[V any] struct {
	view  V
	json  []byte
	blobs map[string][]byte
}

func newCapture[V any](view V, blobs map[string][]byte) (capture[V], error) {
	data, err := json.Marshal(view)
	if err != nil {
		return capture[V]{}, fmt.Errorf("encode view: %w", err)
	}
	return capture[V]{view: view, json: data, blobs: blobs}, nil
}

// diff describes the first difference between got and want, or returns nil.
func (got capture[V]) diff(want capture[V]) error {
	if i := firstDiff(got.json, want.json); i >= 0 {
		return fmt.Errorf("views differ at byte %d: got %s, want %s", i, excerpt(got.json, i), excerpt(want.json, i))
	}
	for _, key := range sortedKeys(want.blobs) {
		if _, ok := got.blobs[key]; !ok {
			return fmt.Errorf("blob %q missing", key)
		}
	}
	for _, key := range sortedKeys(got.blobs) {
		g, w := got.blobs[key], want.blobs[key]
		if _, ok := want.blobs[key]; !ok {
			return fmt.Errorf("unexpected blob %q", key)
		}
		if !bytes.Equal(g, w) {
			return fmt.Errorf("blob %q differs from byte %d: got %d bytes, want %d", key, firstDiff(g, w), len(g), len(w))
		}
	}
	return nil
}

// firstDiff returns the index of the first byte where a and b differ, or
// -1 if they are equal.
func firstDiff(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) == len(b) {
		return -1
	}
	return n
}

// excerpt quotes up to 40 bytes of data on either side of i.
func excerpt(data []byte, i int) string {
	lo, hi := max(0, i-40), min(len(data), i+40)
	return fmt.Sprintf("…%q…", data[lo:hi])
}

type faultMode int

const (
	failFetch faultMode = iota // Fetch returns the injected error
	failRead                   // the reader fails half-way with it
	flipByte                   // the reader serves the blob with one byte flipped, then the error in place of io.EOF
)

// fault is what a checkSource does wrong, and on which key.
type fault struct {
	mode faultMode
	key  string
}

func (f fault) String() string {
	switch f.mode {
	case failFetch:
		return fmt.Sprintf("a source whose Fetch fails on blob %q", f.key)
	case failRead:
		return fmt.Sprintf("a source whose reader fails part-way through blob %q", f.key)
	}
	return fmt.Sprintf("a source serving blob %q with one byte flipped, then a checksum mismatch in place of io.EOF", f.key)
}

// checkSource serves inner's blobs, applies fault (if injected is set) and
// counts the readers it hands out that are not closed.
type checkSource struct {
	inner    *MemorySource
	fault    fault
	injected *injectedError
	open     atomic.Int64
}

func (s *checkSource) Fetch(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := s.inner.Fetch(ctx, key)
	if err != nil || s.injected == nil || key != s.fault.key {
		return s.track(rc), err
	}
	data, err := io.ReadAll(rc)
	_ = rc.Close() // a MemorySource reader: nothing to report
	if s.fault.mode == failFetch {
		return nil, s.injected
	}
	if err != nil {
		return nil, err
	}
	if s.fault.mode == failRead {
		data = data[:len(data)/2]
	} else {
		data[len(data)/2] ^= 0x01
	}
	return s.track(io.NopCloser(io.MultiReader(bytes.NewReader(data), errReader{s.injected}))), nil
}

func (s *checkSource) track(rc io.ReadCloser) io.ReadCloser {
	if rc == nil {
		return nil
	}
	s.open.Add(1)
	return &trackedReader{ReadCloser: rc, source: s}
}

func (s *checkSource) checkClosed() error {
	if n := s.open.Load(); n != 0 {
		return fmt.Errorf("%d readers returned by Fetch were never closed", n)
	}
	return nil
}

type trackedReader struct {
	io.ReadCloser
	source *checkSource
	closed atomic.Bool
}

func (r *trackedReader) Close() error {
	if r.closed.CompareAndSwap(false, true) {
		r.source.open.Add(-1)
	}
	return r.ReadCloser.Close()
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
