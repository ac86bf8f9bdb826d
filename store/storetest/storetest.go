// Package storetest is the conformance suite that every [store.Driver]
// passes. A driver's whole test file is a call to [RunDriverTests]:
//
//	func TestConformance(t *testing.T) {
//		storetest.RunDriverTests(t, func(t *testing.T) store.Driver {
//			drv, err := filestore.New(t.TempDir(), nil)
//			require.NoError(t, err)
//			return drv
//		})
//	}
//
// The suite makes no assumption about where a driver keeps its objects, so
// it serves local, S3, GCS and gocloud.dev drivers alike, and it gives
// names no meaning: any valid object name (see [store.ValidName]) must
// round-trip. Optional
// abilities, such as [store.Concurrency], [store.Syncer] and
// [store.ConditionalPutter], are found by
// type assertion, and their tests skipped when a driver lacks them.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
)

// location is the repository location the suite gives [store.New].
const location = "test"

// RunDriverTests runs the conformance suite, one subtest per property.
// newDriver returns a new driver over an empty repository of its own each
// time it is called; the suite closes it when the subtest ends, and
// newDriver registers any other cleanup with t.Cleanup.
//
// Besides what [store.Driver] documents, the suite holds drivers to this:
//   - a Put whose content does not have the digest PutOptions.SHA256 fails
//     with an error matching core.ErrChecksumMismatch, and one whose body
//     holds fewer than size bytes fails with an error matching
//     io.ErrUnexpectedEOF; either way nothing is stored, and an existing
//     object is left as it was;
//   - a missing object is core.ErrNotFound, never core.ErrBucketNotFound;
//   - Put, Get, Stat and List fail with an error matching ctx.Err() once
//     ctx is done, and a Put interrupted so stores nothing.
func RunDriverTests(t *testing.T, newDriver func(t *testing.T) store.Driver) {
	open := func(t *testing.T) *fixture { return newFixture(t, newDriver) }
	for _, s := range shapes() {
		t.Run("RoundTrip/"+s.kind, func(t *testing.T) { testRoundTrip(t, open(t), s.name, s.data) })
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, f *fixture)
	}{
		{"Empty", testEmpty},
		{"Large", testLarge},
		{"NotFound", testNotFound},
		{"Overwrite", testOverwrite},
		{"OverwriteIsAtomic", testOverwriteIsAtomic},
		{"CreateOnly", testCreateOnly},
		{"CreateOnlyRace", testCreateOnlyRace},
		{"Checksum", testChecksum},
		{"ShortBody", testShortBody},
		{"ReadsAtMostSize", testReadsAtMostSize},
		{"InvalidNames", testInvalidNames},
		{"List", testList},
		{"ListStopsOnError", testListStopsOnError},
		{"Cancelled", testCancelled},
		{"CancelledDuringPut", testCancelledDuringPut},
		{"ErrorWrapping", testErrorWrapping},
		{"Concurrency", testConcurrency},
		{"GetRange", testGetRange},
		{"ConditionalPut", testConditionalPut},
		{"ConditionalPutRace", testConditionalPutRace},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
	for _, tc := range faultTests {
		t.Run("Faults/"+tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// objects is what *store.Store and store.Driver have in common, so that a
// check can run through the portable type and against the raw driver.
type objects interface {
	Put(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions) error
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error)
	Stat(ctx context.Context, name string) (store.ObjectInfo, error)
	List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error
	Delete(ctx context.Context, name string) error
}

// fixture is one subtest's driver and the Store over it.
type fixture struct {
	drv store.Driver
	st  *store.Store
}

func newFixture(t *testing.T, newDriver func(t *testing.T) store.Driver) *fixture {
	t.Helper()
	drv := newDriver(t)
	require.NotNil(t, drv, "newDriver returned nil")
	t.Cleanup(func() { assert.NoError(t, drv.Close(), "Close") })
	f := &fixture{drv: drv, st: store.New(drv, location, nil)}
	require.Empty(t, list(t, f.drv, ""), "newDriver must return a driver over an empty repository")
	return f
}

// both returns the Store and the raw driver, named for subtests.
func (f *fixture) both() []struct {
	via string
	o   objects
} {
	return []struct {
		via string
		o   objects
	}{{"Store", f.st}, {"Driver", f.drv}}
}

// The names the suite stores are shaped like a repository's (blobs named
// by their digest in fan-out folders, folders of documents, small files in
// one folder), though the object layer gives them no meaning.
const (
	blobsPrefix = "blobs/sha256/"
	docsPrefix  = "docs/"
	tagsPrefix  = "tags/"
)

func blobName(hexDigest string) string { return blobsPrefix + hexDigest[:2] + "/" + hexDigest }

func docName(dir, file string) string { return docsPrefix + dir + "/" + file }

func tagName(tag string) string { return tagsPrefix + tag + ".json" }

// shape is a kind of object name, with content for it.
type shape struct {
	kind string
	name string
	data []byte
}

func shapes() []shape {
	blob := []byte("blob \x00 bytes\xff")
	snap := hexOf([]byte("snapshot"))
	// Long, yet short enough for a driver's prefix to fit before it.
	long := strings.Repeat(strings.Repeat("s", store.MaxSegmentLength)+"/", 3) + "x"
	return []shape{
		{"blob", blobName(hexOf(blob)), blob},
		{"view", docName(snap, "view.json"), []byte(`{"buckets":[]}`)},
		{"manifest", docName(snap, "manifest.json"), []byte(`{"format":1}`)},
		{"tag", tagName("release-1.0_rc.2"), []byte(`{"id":"sha256:` + snap + `"}`)},
		{"flat", "object", []byte("flat")},
		{"mixed", "A-b_c/d..e./F-", []byte("mixed")},
		{"long", long, []byte("long")},
		{"deep", strings.Repeat("d/", 64) + "x", []byte("deep")},
	}
}

func testRoundTrip(t *testing.T, f *fixture, name string, data []byte) {
	ctx := t.Context()
	sum := sha256.Sum256(data)
	require.NoError(t, f.st.PutBytes(ctx, name, data, store.PutOptions{SHA256: sum[:], ContentType: "application/json"}))
	for _, b := range f.both() {
		info, err := b.o.Stat(ctx, name)
		require.NoError(t, err, b.via)
		assert.Equal(t, name, info.Name, b.via)
		assert.Equal(t, int64(len(data)), info.Size, b.via)
		assert.False(t, info.ModTime.IsZero(), "%s: Stat must set ModTime", b.via)
		assert.Equal(t, data, read(t, b.o, name), b.via)
		assert.Equal(t, map[string]int64{name: int64(len(data))}, list(t, b.o, ""), b.via)
	}
	ok, err := f.st.Exists(ctx, name)
	require.NoError(t, err)
	assert.True(t, ok)

	require.NoError(t, f.st.Delete(ctx, name))
	for _, b := range f.both() {
		_, err := b.o.Stat(ctx, name)
		requireNotFound(t, err)
		assert.Empty(t, list(t, b.o, ""), b.via)
	}
	ok, err = f.st.Exists(ctx, name)
	require.NoError(t, err)
	assert.False(t, ok)
}

func testEmpty(t *testing.T, f *fixture) {
	ctx := t.Context()
	blob := blobName(hexOf(nil))
	sum := sha256.Sum256(nil)
	require.NoError(t, f.st.PutBytes(ctx, blob, nil, store.PutOptions{SHA256: sum[:]}))
	tag := tagName("empty")
	require.NoError(t, f.st.Put(ctx, tag, bytes.NewReader(nil), 0, store.PutOptions{CreateOnly: true}))
	for _, b := range f.both() {
		for _, name := range []string{blob, tag} {
			info, err := b.o.Stat(ctx, name)
			require.NoError(t, err, b.via)
			assert.Zero(t, info.Size, b.via)
			assert.Empty(t, read(t, b.o, name), b.via)
		}
		assert.Equal(t, map[string]int64{blob: 0, tag: 0}, list(t, b.o, ""), b.via)
	}
}

// largeSize is the size of the object of testLarge: more than the part
// sizes of multipart uploads, so that drivers using them use several.
const largeSize = 24 << 20

func testLarge(t *testing.T, f *fixture) {
	ctx := t.Context()
	body := pattern{size: largeSize}
	h := sha256.New()
	_, err := io.Copy(h, io.NewSectionReader(body, 0, largeSize))
	require.NoError(t, err)
	sum := h.Sum(nil)
	name := blobName(hex.EncodeToString(sum))

	require.NoError(t, f.st.Put(ctx, name, body, largeSize, store.PutOptions{SHA256: sum}))
	info, err := f.st.Stat(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, int64(largeSize), info.Size)
	assert.Equal(t, map[string]int64{name: largeSize}, list(t, f.st, blobsPrefix))

	rc, err := f.st.Get(ctx, name)
	require.NoError(t, err)
	defer rc.Close()
	h.Reset()
	n, err := io.Copy(h, rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	assert.Equal(t, int64(largeSize), n)
	assert.Equal(t, hex.EncodeToString(sum), hex.EncodeToString(h.Sum(nil)), "content read back differs")

	// Across 5 and 16 MiB, where parts of common sizes end.
	const offset, length = 5<<20 - 100, 11<<20 + 200
	want := make([]byte, length)
	_, err = body.ReadAt(want, offset)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(want, readRange(t, f.st, name, offset, length)), "range read back differs")
}

func testNotFound(t *testing.T, f *fixture) {
	ctx := t.Context()
	snap := hexOf([]byte("snapshot"))
	missing := []string{
		blobName("ab" + strings.Repeat("0", 62)),
		docName(snap, "view.json"),
		docName(snap, "manifest.json"),
		tagName("missing"),
	}
	check := func(t *testing.T) {
		for _, name := range missing {
			for _, b := range f.both() {
				_, err := b.o.Stat(ctx, name)
				requireNotFound(t, err)
				_, err = b.o.Get(ctx, name)
				requireNotFound(t, err)
				requireNotFound(t, b.o.Delete(ctx, name))
			}
			ok, err := f.st.Exists(ctx, name)
			require.NoError(t, err)
			assert.False(t, ok)
		}
	}
	t.Run("EmptyRepository", check)
	// Neighbours of the missing names: the same fan-out folder, another
	// snapshot, the same folder of tags; and the missing snapshot's own
	// folder, which some backends keep after its last object is deleted.
	for _, name := range []string{
		blobName("ab" + strings.Repeat("1", 62)),
		docName(hexOf([]byte("other")), "manifest.json"),
		tagName("present"),
		docName(snap, "manifest.json"),
	} {
		require.NoError(t, f.st.PutBytes(ctx, name, []byte("x"), store.PutOptions{}))
	}
	require.NoError(t, f.st.Delete(ctx, docName(snap, "manifest.json")))
	t.Run("BesideOthers", check)
}

func testOverwrite(t *testing.T, f *fixture) {
	ctx := t.Context()
	name := tagName("latest")
	for _, data := range [][]byte{
		[]byte("first"),
		[]byte("second, longer than the first"),
		[]byte("third"), // shorter: nothing of the second may remain
	} {
		require.NoError(t, f.st.PutBytes(ctx, name, data, store.PutOptions{}))
		assert.Equal(t, data, read(t, f.st, name))
		info, err := f.st.Stat(ctx, name)
		require.NoError(t, err)
		assert.Equal(t, int64(len(data)), info.Size)
	}
	assert.Len(t, list(t, f.st, ""), 1)
}

// testOverwriteIsAtomic overwrites an object while readers read it: each
// read sees one version whole, and the object never goes missing.
func testOverwriteIsAtomic(t *testing.T, f *fixture) {
	ctx := t.Context()
	name := tagName("latest")
	versions := [][]byte{
		bytes.Repeat([]byte("a"), 256<<10),
		bytes.Repeat([]byte("b"), 256<<10+1000),
	}
	require.NoError(t, f.st.PutBytes(ctx, name, versions[0], store.PutOptions{}))

	var done atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for first := true; first || !done.Load(); first = false {
				data, err := f.st.GetBytes(ctx, name, 1<<20)
				if !assert.NoError(t, err) {
					return
				}
				reads.Add(1)
				if !bytes.Equal(data, versions[0]) && !bytes.Equal(data, versions[1]) {
					assert.Failf(t, "torn read", "read %d bytes that are neither version", len(data))
					return
				}
			}
		})
	}
	for i := range 10 {
		assert.NoError(t, f.st.PutBytes(ctx, name, versions[(i+1)%2], store.PutOptions{}))
	}
	done.Store(true)
	wg.Wait()
	assert.Equal(t, versions[0], read(t, f.st, name))
	assert.Positive(t, reads.Load())
}

func testCreateOnly(t *testing.T, f *fixture) {
	ctx := t.Context()
	name := docName(hexOf([]byte("snapshot")), "manifest.json")
	first, second := []byte(`{"n":1}`), []byte(`{"n":2, "other":true}`)
	require.NoError(t, f.st.PutBytes(ctx, name, first, store.PutOptions{CreateOnly: true}))
	for _, b := range f.both() {
		err := b.o.Put(ctx, name, bytes.NewReader(second), int64(len(second)), store.PutOptions{CreateOnly: true})
		require.ErrorIs(t, err, core.ErrExists, b.via)
		assert.Equal(t, first, read(t, b.o, name), "%s: a refused create-only Put changed the object", b.via)
	}
	require.NoError(t, f.st.Delete(ctx, name))
	require.NoError(t, f.st.PutBytes(ctx, name, second, store.PutOptions{CreateOnly: true}), "create-only after delete")
	assert.Equal(t, second, read(t, f.st, name))
}

// testCreateOnlyRace has many writers create the same name at once:
// exactly one wins, and its content is the one stored.
func testCreateOnlyRace(t *testing.T, f *fixture) {
	name := docName(hexOf([]byte("race")), "manifest.json")
	race(t, f, name, core.ErrExists, func(data []byte) error {
		return f.st.PutBytes(t.Context(), name, data, store.PutOptions{CreateOnly: true})
	})
}

// race has 16 writers put different contents under name at once with
// put: exactly one wins, the others fail with an error matching lost, and
// the winner's content is the one stored.
func race(t *testing.T, f *fixture, name string, lost error, put func(data []byte) error) {
	t.Helper()
	const writers = 16
	contents := make([][]byte, writers)
	errs := make([]error, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range writers {
		contents[i] = bytes.Repeat([]byte{byte('A' + i)}, 64<<10+i)
		wg.Go(func() {
			<-start
			errs[i] = put(contents[i])
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		if err == nil {
			require.Equal(t, -1, winner, "writers %d and %d both won", winner, i)
			winner = i
			continue
		}
		require.ErrorIs(t, err, lost, "writer %d", i)
	}
	require.NotEqual(t, -1, winner, "no writer won")
	assert.Equal(t, contents[winner], read(t, f.st, name), "stored content is not the winner's")
}

func testChecksum(t *testing.T, f *fixture) {
	ctx := t.Context()
	data := []byte("the real content")
	name := blobName(hexOf(data))
	sum := sha256.Sum256(data)
	wrong := sha256.Sum256([]byte("other content"))

	for _, b := range f.both() {
		for _, createOnly := range []bool{false, true} {
			err := b.o.Put(ctx, name, bytes.NewReader(data), int64(len(data)), store.PutOptions{SHA256: wrong[:], CreateOnly: createOnly})
			require.ErrorIs(t, err, core.ErrChecksumMismatch, "%s, CreateOnly %v", b.via, createOnly)
			_, err = f.st.Stat(ctx, name)
			requireNotFound(t, err)
			// A body's own digest, other than the Put's, is not trusted.
			err = b.o.Put(ctx, name, hashedBody{bytes.NewReader(data), sum[:]}, int64(len(data)), store.PutOptions{SHA256: wrong[:], CreateOnly: createOnly})
			require.ErrorIs(t, err, core.ErrChecksumMismatch, "%s, CreateOnly %v, a HashedBody", b.via, createOnly)
			_, err = f.st.Stat(ctx, name)
			requireNotFound(t, err)
		}
	}
	assert.Empty(t, list(t, f.drv, ""))

	require.NoError(t, f.st.Put(ctx, name, hashedBody{bytes.NewReader(data), sum[:]}, int64(len(data)), store.PutOptions{SHA256: sum[:], CreateOnly: true}),
		"a create-only Put that failed its checksum must not have taken the name; a HashedBody of the digest is stored")
	assert.Equal(t, data, read(t, f.st, name))

	// A failed overwrite leaves the object as it was.
	other := []byte("replacement")
	err := f.st.PutBytes(ctx, name, other, store.PutOptions{SHA256: wrong[:]})
	require.ErrorIs(t, err, core.ErrChecksumMismatch)
	assert.Equal(t, data, read(t, f.st, name))
}

// hashedBody is a store.HashedBody: bytes and their digest.
type hashedBody struct {
	*bytes.Reader
	sum []byte
}

func (b hashedBody) SHA256() []byte { return b.sum }

func testShortBody(t *testing.T, f *fixture) {
	ctx := t.Context()
	name := tagName("short")
	body := []byte("only forty bytes of the hundred promised")
	for _, b := range f.both() {
		err := b.o.Put(ctx, name, bytes.NewReader(body), 100, store.PutOptions{})
		require.ErrorIs(t, err, io.ErrUnexpectedEOF, b.via)
		_, err = f.st.Stat(ctx, name)
		requireNotFound(t, err)
	}
	old := []byte("old")
	require.NoError(t, f.st.PutBytes(ctx, name, old, store.PutOptions{}))
	err := f.st.Put(ctx, name, bytes.NewReader(body), 100, store.PutOptions{})
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.Equal(t, old, read(t, f.st, name), "a failed overwrite changed the object")
}

func testReadsAtMostSize(t *testing.T, f *fixture) {
	ctx := t.Context()
	data := []byte(strings.Repeat("0123456789", 100))
	const size = 600
	for _, b := range f.both() {
		name := tagName("prefix-" + b.via)
		body := &boundedReaderAt{data: data}
		require.NoError(t, b.o.Put(ctx, name, body, size, store.PutOptions{}), b.via)
		assert.LessOrEqual(t, body.end(), int64(size), "%s: Put read past size", b.via)
		assert.Equal(t, data[:size], read(t, f.st, name), b.via)
	}
}

// testInvalidNames checks that the Store refuses every name and prefix
// that is not a valid object name before the driver sees it.
func testInvalidNames(t *testing.T, f *fixture) {
	ctx := t.Context()
	h := hexOf([]byte("x"))
	names := []string{
		"",
		"..",
		"../" + blobName(h),
		"blobs/sha256/../../../etc/passwd",
		"/" + blobName(h),
		blobName(h) + "/",
		"./" + tagName("t"),
		"a//b",
		blobName(h) + "\x00",
		strings.ReplaceAll(blobName(h), "/", `\`),
		"tags/a\x00b.json",
		"tags/../x.json",
		"tags/.hidden.json",
		"tags/.tmp-x",
		"tags/a b.json",
		"tags/é.json",
		strings.Repeat("x", store.MaxNameLength+1),
	}
	spy := &spyDriver{Driver: f.drv}
	st := store.New(spy, location, nil)
	for _, name := range names {
		for op, err := range map[string]error{
			"put":    st.PutBytes(ctx, name, []byte("x"), store.PutOptions{}),
			"get":    second(st.Get(ctx, name)),
			"stat":   second(st.Stat(ctx, name)),
			"exists": second(st.Exists(ctx, name)),
			"delete": st.Delete(ctx, name),
		} {
			require.ErrorIs(t, err, core.ErrInvalidPath, "%s %q", op, name)
		}
	}
	for _, prefix := range []string{"/", "../", "blobs/../", "blobs//", `blobs\`, "tags/\x00", "tags/é", "tags/."} {
		err := st.List(ctx, prefix, func(store.ObjectInfo) error { return nil })
		require.ErrorIs(t, err, core.ErrInvalidPath, "list %q", prefix)
	}
	assert.Zero(t, spy.calls.Load(), "invalid names reached the driver")
	assert.Empty(t, list(t, f.drv, ""))
}

func testList(t *testing.T, f *fixture) {
	ctx := t.Context()
	s1, s2 := strings.Repeat("e", 64), "ef"+strings.Repeat("1", 62)
	all := map[string]int64{}
	for i, name := range []string{
		blobName("ab" + strings.Repeat("0", 62)),
		blobName("ab" + strings.Repeat("1", 62)),
		blobName("cd" + strings.Repeat("2", 62)),
		docName(s1, "view.json"),
		docName(s1, "manifest.json"),
		docName(s2, "view.json"),
		docName(s2, "manifest.json"),
		tagName("v1"),
		tagName("v1.1"),
		tagName("v2"),
	} {
		data := bytes.Repeat([]byte{'x'}, 10*i+1)
		require.NoError(t, f.st.PutBytes(ctx, name, data, store.PutOptions{}))
		all[name] = int64(len(data))
	}
	for _, prefix := range []string{
		"",
		"blobs/",
		blobsPrefix,
		blobsPrefix + "a",
		blobsPrefix + "ab/",
		blobsPrefix + "ab/ab0",
		blobsPrefix + "ff/",
		docsPrefix,
		docsPrefix + "e",
		docsPrefix + s1 + "/",
		docsPrefix + s2 + "/view",
		tagsPrefix,
		tagsPrefix + "v1",
		tagsPrefix + "v1.",
		"nothing/",
	} {
		want := map[string]int64{}
		for name, size := range all {
			if strings.HasPrefix(name, prefix) {
				want[name] = size
			}
		}
		for _, b := range f.both() {
			assert.Equal(t, want, list(t, b.o, prefix), "%s: List(%q)", b.via, prefix)
		}
	}
}

func testListStopsOnError(t *testing.T, f *fixture) {
	ctx := t.Context()
	for _, tag := range []string{"a", "b", "c"} {
		require.NoError(t, f.st.PutBytes(ctx, tagName(tag), []byte(tag), store.PutOptions{}))
	}
	errStop := errors.New("stop")
	for _, b := range f.both() {
		calls := 0
		err := b.o.List(ctx, "", func(store.ObjectInfo) error {
			calls++
			return errStop
		})
		require.ErrorIs(t, err, errStop, b.via)
		assert.Equal(t, 1, calls, "%s: List went on after fn failed", b.via)
	}
}

func testCancelled(t *testing.T, f *fixture) {
	present := tagName("present")
	absent := tagName("absent")
	require.NoError(t, f.st.PutBytes(t.Context(), present, []byte("x"), store.PutOptions{}))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, b := range f.both() {
		err := b.o.Put(ctx, absent, bytes.NewReader([]byte("y")), 1, store.PutOptions{})
		require.ErrorIs(t, err, context.Canceled, "%s: Put", b.via)
		_, err = b.o.Get(ctx, present)
		require.ErrorIs(t, err, context.Canceled, "%s: Get", b.via)
		_, err = b.o.Stat(ctx, present)
		require.ErrorIs(t, err, context.Canceled, "%s: Stat", b.via)
		err = b.o.List(ctx, "", func(store.ObjectInfo) error { return nil })
		require.ErrorIs(t, err, context.Canceled, "%s: List", b.via)
	}
	_, err := f.st.Stat(t.Context(), absent)
	requireNotFound(t, err)
	assert.Equal(t, []byte("x"), read(t, f.st, present))
}

// testCancelledDuringPut cancels a Put once it has read 1 MiB of its
// 128 MiB body: it must fail, store nothing, and stop reading well before
// the end (drivers may have a few parts in flight).
func testCancelledDuringPut(t *testing.T, f *fixture) {
	const size = 128 << 20
	for _, b := range f.both() {
		name := tagName("cancelled-" + b.via)
		ctx, cancel := context.WithCancel(t.Context())
		body := &cancellingReaderAt{ReaderAt: pattern{size: size}, after: 1 << 20, cancel: cancel}
		err := b.o.Put(ctx, name, body, size, store.PutOptions{})
		cancel()
		require.ErrorIs(t, err, context.Canceled, b.via)
		assert.Less(t, body.read.Load(), int64(size/2), "%s: Put read on long after its context was cancelled", b.via)
		_, err = f.st.Stat(t.Context(), name)
		requireNotFound(t, err)
	}
	assert.Empty(t, list(t, f.drv, ""))
}

// testErrorWrapping checks that the Store wraps each driver error once in
// a *store.Error naming the operation and the object.
func testErrorWrapping(t *testing.T, f *fixture) {
	ctx := t.Context()
	name := tagName("t")
	require.NoError(t, f.st.PutBytes(ctx, name, []byte("x"), store.PutOptions{}))
	missing := tagName("missing")
	cases := []struct {
		op, name string
		err      error
	}{
		{"put", name, f.st.PutBytes(ctx, name, []byte("y"), store.PutOptions{CreateOnly: true})},
		{"get", missing, second(f.st.Get(ctx, missing))},
		{"stat", missing, second(f.st.Stat(ctx, missing))},
		{"delete", missing, f.st.Delete(ctx, missing)},
		{"list", "../", f.st.List(ctx, "../", func(store.ObjectInfo) error { return nil })},
		{"get", "tags/\x00.json", second(f.st.Get(ctx, "tags/\x00.json"))},
	}
	for _, c := range cases {
		require.Error(t, c.err, "%s %q", c.op, c.name)
		var se *store.Error
		require.ErrorAs(t, c.err, &se, "%s %q", c.op, c.name)
		assert.Equal(t, c.op, se.Op)
		assert.Equal(t, c.name, se.Name)
		assert.Equal(t, location, se.Location)
		var inner *store.Error
		assert.False(t, errors.As(se.Err, &inner), "%s %q: wrapped twice: %v", c.op, c.name, c.err)
		assert.Contains(t, c.err.Error(), strconv.Quote(c.name), "the message must quote the name")
	}
}

func testConcurrency(t *testing.T, f *fixture) {
	c, ok := f.drv.(store.Concurrency)
	if !ok {
		t.Skip("the driver does not implement store.Concurrency")
	}
	assert.Positive(t, c.MaxConcurrency())
}

// testGetRange reads ranges of an object: at its start, in its middle, at
// its end, running past its end (the bytes there are read), starting at
// or past its end and of no byte (none are).
func testGetRange(t *testing.T, f *fixture) {
	ctx := t.Context()
	name, empty, missing := tagName("ranges"), tagName("empty"), tagName("missing")
	const size = 1000
	data := make([]byte, size)
	_, err := pattern{size: size}.ReadAt(data, 0)
	require.NoError(t, err)
	require.NoError(t, f.st.PutBytes(ctx, name, data, store.PutOptions{}))
	require.NoError(t, f.st.PutBytes(ctx, empty, nil, store.PutOptions{}))

	none := []byte{}
	cases := []struct {
		name           string
		object         string
		offset, length int64
		want           []byte
	}{
		{"Start", name, 0, 10, data[:10]},
		{"Middle", name, 300, 123, data[300:423]},
		{"End", name, size - 10, 10, data[size-10:]},
		{"Whole", name, 0, size, data},
		{"PastEnd", name, size - 10, 11, data[size-10:]},
		{"FarPastEnd", name, 1, math.MaxInt64, data[1:]},
		{"AtEnd", name, size, 10, none},
		{"BeyondEnd", name, size + 100, 10, none},
		{"NoByte", name, 300, 0, none},
		{"NoByteAtStart", name, 0, 0, none},
		{"NoByteBeyondEnd", name, size + 100, 0, none},
		{"EmptyObject", empty, 0, 10, none},
		{"EmptyObjectPastEnd", empty, 5, 10, none},
		{"EmptyObjectNoByte", empty, 0, 0, none},
	}
	for _, b := range f.both() {
		for _, c := range cases {
			got := readRange(t, b.o, c.object, c.offset, c.length)
			assert.Equal(t, c.want, got, "%s: %s: %d bytes from %d", b.via, c.name, c.length, c.offset)
		}
		for _, length := range []int64{0, 10} {
			_, err := b.o.GetRange(ctx, missing, 0, length)
			requireNotFound(t, err)
		}
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		_, err := b.o.GetRange(cancelled, name, 0, 10)
		require.ErrorIs(t, err, context.Canceled, b.via)
	}

	for _, r := range [][2]int64{{-1, 10}, {0, -1}} {
		_, err := f.st.GetRange(ctx, name, r[0], r[1])
		require.ErrorIs(t, err, core.ErrInvalid, "%d bytes from %d", r[1], r[0])
	}
	_, err = f.st.GetRange(ctx, missing, 0, 10)
	var se *store.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "get", se.Op)
	assert.Equal(t, missing, se.Name)
}

// readRange returns the bytes of a range of the object name.
func readRange(t *testing.T, o objects, name string, offset, length int64) []byte {
	t.Helper()
	rc, err := o.GetRange(t.Context(), name, offset, length)
	require.NoError(t, err, "get %d bytes from %d of %q", length, offset, name)
	defer rc.Close()
	data, err := io.ReadAll(rc)
	require.NoError(t, err, "read %d bytes from %d of %q", length, offset, name)
	require.NoError(t, rc.Close(), "close %q", name)
	return data
}

// requireNotFound fails unless err says an object, not the bucket, is
// missing.
func requireNotFound(t *testing.T, err error) {
	t.Helper()
	require.ErrorIs(t, err, core.ErrNotFound)
	require.NotErrorIs(t, err, core.ErrBucketNotFound)
}

// read returns the whole content of the object name.
func read(t *testing.T, o objects, name string) []byte {
	t.Helper()
	rc, err := o.Get(t.Context(), name)
	require.NoError(t, err, "get %q", name)
	defer rc.Close()
	data, err := io.ReadAll(rc)
	require.NoError(t, err, "read %q", name)
	require.NoError(t, rc.Close(), "close %q", name)
	return data
}

// list returns the size of every object under prefix, failing on a name
// listed twice.
func list(t *testing.T, o objects, prefix string) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	err := o.List(t.Context(), prefix, func(info store.ObjectInfo) error {
		if _, dup := got[info.Name]; dup {
			return fmt.Errorf("%q listed twice", info.Name)
		}
		if info.ModTime.IsZero() {
			return fmt.Errorf("%q listed without ModTime", info.Name)
		}
		got[info.Name] = info.Size
		return nil
	})
	require.NoError(t, err, "list %q", prefix)
	return got
}

func hexOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// second returns the error of a two-result call.
func second[T any](_ T, err error) error { return err }

// pattern is a ReaderAt of size generated bytes that do not repeat with
// any period a driver's buffers might have.
type pattern struct{ size int64 }

func (p pattern) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("storetest: negative offset")
	}
	if off >= p.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(b)), p.size-off))
	var word [8]byte
	for i := 0; i < n; {
		pos := off + int64(i)
		binary.LittleEndian.PutUint64(word[:], splitmix(uint64(pos/8)))
		i += copy(b[i:n], word[pos%8:])
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// splitmix is the finaliser of the SplitMix64 generator.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// boundedReaderAt serves data and records the end of the furthest read.
type boundedReaderAt struct {
	data     []byte
	mu       sync.Mutex
	furthest int64
}

func (r *boundedReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := bytes.NewReader(r.data).ReadAt(p, off)
	r.mu.Lock()
	r.furthest = max(r.furthest, off+int64(n))
	r.mu.Unlock()
	return n, err
}

func (r *boundedReaderAt) end() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.furthest
}

// cancellingReaderAt calls cancel once more than after bytes were read.
type cancellingReaderAt struct {
	io.ReaderAt
	after  int64
	cancel context.CancelFunc
	read   atomic.Int64
}

func (r *cancellingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.ReaderAt.ReadAt(p, off)
	if r.read.Add(int64(n)) > r.after {
		r.cancel()
	}
	return n, err
}

// spyDriver counts the calls that reach the driver it wraps.
type spyDriver struct {
	store.Driver
	calls atomic.Int64
}

func (s *spyDriver) Put(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions) error {
	s.calls.Add(1)
	return s.Driver.Put(ctx, name, body, size, opts)
}

func (s *spyDriver) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	s.calls.Add(1)
	return s.Driver.Get(ctx, name)
}

func (s *spyDriver) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	s.calls.Add(1)
	return s.Driver.Stat(ctx, name)
}

func (s *spyDriver) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	s.calls.Add(1)
	return s.Driver.List(ctx, prefix, fn)
}

func (s *spyDriver) Delete(ctx context.Context, name string) error {
	s.calls.Add(1)
	return s.Driver.Delete(ctx, name)
}
