package visitors_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
	"github.com/statebucket/statebucket/visitors"
)

// putDriver wraps a driver and watches its Puts: how many, of which names,
// how many at once, and how many bytes of in-memory bodies at once. When
// gate is set, each Put first sends on entered and then waits for gate to
// be closed.
type putDriver struct {
	store.Driver
	entered chan struct{}
	gate    chan struct{}
	putErr  error // every Put fails with it, if set
	statErr error // every Stat fails with it, if set

	mu          sync.Mutex
	names       []string // every Put's, in the order they came
	written     []string // the names of the Puts that stored an object
	creates     int      // create-only Puts
	stats       int      // Stats
	inFlight    int
	maxInFlight int
	memory      int64 // bytes of in-memory bodies being put
	maxMemory   int64
}

func (d *putDriver) Put(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions) error {
	_, onDisk := body.(*os.File)
	d.mu.Lock()
	d.names = append(d.names, name)
	if opts.CreateOnly {
		d.creates++
	}
	d.inFlight++
	d.maxInFlight = max(d.maxInFlight, d.inFlight)
	if !onDisk {
		d.memory += size
		d.maxMemory = max(d.maxMemory, d.memory)
	}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.inFlight--
		if !onDisk {
			d.memory -= size
		}
		d.mu.Unlock()
	}()
	if d.gate != nil {
		d.entered <- struct{}{}
		<-d.gate
	}
	if d.putErr != nil {
		return d.putErr
	}
	err := d.Driver.Put(ctx, name, body, size, opts)
	if err == nil {
		d.mu.Lock()
		d.written = append(d.written, name)
		d.mu.Unlock()
	}
	return err
}

func (d *putDriver) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	d.mu.Lock()
	d.stats++
	d.mu.Unlock()
	if d.statErr != nil {
		return store.ObjectInfo{}, d.statErr
	}
	return d.Driver.Stat(ctx, name)
}

// stored returns the names of the objects written so far: the Puts that
// succeeded, not the create-only ones refused.
func (d *putDriver) stored() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.written...)
}

// puts returns the names put so far.
func (d *putDriver) puts() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.names...)
}

// newRepo returns a repository in a fresh directory, through a
// putDriver.
func newRepo(t *testing.T) (*repo.Repo, *putDriver) {
	t.Helper()
	return newRepoWith(t, nil)
}

// newRepoWith returns a repository whose store has opts, in a fresh
// directory, through a putDriver.
func newRepoWith(t *testing.T, opts *store.Options) (*repo.Repo, *putDriver) {
	t.Helper()
	fs, err := filestore.New(t.TempDir(), nil)
	require.NoError(t, err)
	d := &putDriver{Driver: fs}
	r := repo.New(store.New(d, "test", opts), nil)
	t.Cleanup(func() { r.Close() })
	return r, d
}

// blob is a key and its bytes.
type blob struct {
	key  string
	data []byte
}

func blobOf(key string, n int) blob {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(len(key) + i*7 + i>>9)
	}
	return blob{key, data}
}

func digestOf(data []byte) digest.Digest { return digest.FromBytes(data) }

func blobName(data []byte) string { return repo.BlobName(digest.FromBytes(data)) }

// trackedReader records whether it was closed.
type trackedReader struct {
	io.Reader
	closed atomic.Int32
}

func (r *trackedReader) Close() error {
	r.closed.Add(1)
	return nil
}

// batch turns blobs into entries whose readers are tracked; their sizes
// are announced if known.
func batch(known bool, blobs ...blob) ([]core.BlobExportEntry, []*trackedReader) {
	entries := make([]core.BlobExportEntry, len(blobs))
	readers := make([]*trackedReader, len(blobs))
	for i, b := range blobs {
		readers[i] = &trackedReader{Reader: bytes.NewReader(b.data)}
		entries[i] = core.BlobExportEntry{Key: b.key, Reader: readers[i], Size: -1}
		if known {
			entries[i].Size = int64(len(b.data))
		}
	}
	return entries, readers
}

func requireClosed(t *testing.T, readers []*trackedReader) {
	t.Helper()
	for i, r := range readers {
		require.Equal(t, int32(1), r.closed.Load(), "reader %d closed %d times", i, r.closed.Load())
	}
}

// eventLog records the events of a Visitor.
type eventLog struct {
	mu     sync.Mutex
	events []visitors.Event
}

func (l *eventLog) add(e visitors.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *eventLog) all() []visitors.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]visitors.Event(nil), l.events...)
}

func requireBudgetFree(t *testing.T, b *store.Budget) {
	t.Helper()
	require.True(t, b.TryAcquireBytes(b.MaxBytes()), "budget bytes still held")
	b.ReleaseBytes(b.MaxBytes())
}

func TestVisitRecordsEntries(t *testing.T) {
	r, d := newRepo(t)
	tmp := t.TempDir()
	v := visitors.New(r, &visitors.Options{MemoryThreshold: 1 << 10, TempDir: tmp})
	first := []blob{blobOf("b/key\x00v1", 10), blobOf("\xff\xfe invalid utf-8", 0), blobOf("../../etc/passwd", 3000)}
	second := []blob{blobOf("a", 1), blobOf("b/key\x00v2", 2000), blobOf(string(bytes.Repeat([]byte("k"), 2048)), 5)}
	for i, blobs := range [][]blob{first, second} {
		entries, readers := batch(i == 0, blobs...)
		require.NoError(t, visit(t.Context(), v, entries))
		requireClosed(t, readers)
	}

	all := append(append([]blob(nil), first...), second...)
	want := make([]manifest.Entry, len(all))
	var total int64
	for i, b := range all {
		want[i] = manifest.Entry{Key: b.key, Digest: digestOf(b.data), Size: int64(len(b.data))}
		total += int64(len(b.data))
	}
	m, err := manifest.New("s3", "a", "r", manifest.Object{Digest: digestOf(nil)}, want)
	require.NoError(t, err)
	require.Equal(t, m.Blobs, v.Entries(), "entries, sorted by key bytes")

	for _, b := range all {
		got, err := r.Store().GetBytes(t.Context(), blobName(b.data), 1<<20)
		require.NoError(t, err)
		require.True(t, bytes.Equal(b.data, got), "stored bytes of %q", b.key)
	}
	assert.Equal(t, visitors.Stats{Blobs: 6, Bytes: total, Uploaded: 6, UploadedBytes: total}, v.Stats())
	assert.Len(t, d.puts(), 6)
	entries, err := os.ReadDir(tmp)
	require.NoError(t, err)
	assert.Empty(t, entries, "spool files left behind")
	requireBudgetFree(t, r.Budget())
}

func TestVisitFailures(t *testing.T) {
	boom := errors.New("boom")
	good := []blob{blobOf("a", 10), blobOf("b", 5000), blobOf("c", 0)}
	for _, tc := range []struct {
		name string
		// prepare readies v and returns the context of the failing Visit.
		prepare func(t *testing.T, v *visitors.Visitor, d *putDriver) context.Context
		// bad is the entry added to the good ones, if any.
		bad     *core.BlobExportEntry
		opts    *visitors.Options
		wantErr error
		wantKey string
		// recorded: entries may be recorded before the failure.
		recorded bool
	}{
		{
			name:    "reader fails",
			bad:     &core.BlobExportEntry{Key: "bad\x00key", Reader: io.NopCloser(io.MultiReader(bytes.NewReader(make([]byte, 3000)), iotest.ErrReader(boom))), Size: -1},
			wantErr: boom,
			wantKey: "bad\x00key",
		},
		{
			name:    "announced size too large",
			bad:     &core.BlobExportEntry{Key: "short", Reader: io.NopCloser(bytes.NewReader(make([]byte, 10))), Size: 11},
			wantErr: core.ErrSizeMismatch,
			wantKey: "short",
		},
		{
			name:    "announced size too small",
			bad:     &core.BlobExportEntry{Key: "long", Reader: io.NopCloser(bytes.NewReader(make([]byte, 10))), Size: 9},
			wantErr: core.ErrSizeMismatch,
			wantKey: "long",
		},
		{
			name:    "announced size zero",
			bad:     &core.BlobExportEntry{Key: "zero", Reader: io.NopCloser(bytes.NewReader(make([]byte, 1))), Size: 0},
			wantErr: core.ErrSizeMismatch,
			wantKey: "zero",
		},
		{
			name:    "nil reader",
			bad:     &core.BlobExportEntry{Key: "nil", Size: -1},
			wantErr: core.ErrInvalid,
			wantKey: "nil",
		},
		{
			name:    "key twice in one batch",
			bad:     &core.BlobExportEntry{Key: "a", Reader: io.NopCloser(bytes.NewReader([]byte("other"))), Size: -1},
			wantErr: core.ErrInvalid,
			wantKey: "a",
		},
		{
			name: "cancelled before the first Visit",
			prepare: func(t *testing.T, _ *visitors.Visitor, _ *putDriver) context.Context {
				return cancelled(t)
			},
			wantErr: context.Canceled,
		},
		{
			name: "cancelled before a later Visit",
			prepare: func(t *testing.T, v *visitors.Visitor, _ *putDriver) context.Context {
				entries, readers := batch(true, blobOf("earlier", 10))
				require.NoError(t, visit(t.Context(), v, entries))
				requireClosed(t, readers)
				return cancelled(t)
			},
			wantErr: context.Canceled,
		},
		{
			name: "storing a blob fails",
			prepare: func(t *testing.T, _ *visitors.Visitor, d *putDriver) context.Context {
				d.putErr = boom
				return t.Context()
			},
			wantErr:  boom,
			recorded: true,
		},
		{
			name: "looking up a stored blob fails",
			prepare: func(t *testing.T, _ *visitors.Visitor, d *putDriver) context.Context {
				d.statErr = boom
				return t.Context()
			},
			opts:     &visitors.Options{CreateOnlyMax: 100},
			wantErr:  boom,
			wantKey:  "b",
			recorded: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, d := newRepo(t)
			v := visitors.New(r, tc.opts)
			ctx := t.Context()
			if tc.prepare != nil {
				ctx = tc.prepare(t, v, d)
			}
			before := len(v.Entries())
			entries, readers := batch(false, good...)
			if tc.bad != nil {
				tr := &trackedReader{}
				if tc.bad.Reader != nil {
					tr.Reader = tc.bad.Reader
					tc.bad.Reader = tr
					readers = append(readers, tr)
				}
				// The bad entry goes in the middle of the batch.
				entries = append(entries[:1], append([]core.BlobExportEntry{*tc.bad}, entries[1:]...)...)
			}
			err := visit(ctx, v, entries)
			require.ErrorIs(t, err, tc.wantErr)
			assert.Contains(t, err.Error(), "visitors:")
			if tc.wantKey != "" {
				assert.Contains(t, err.Error(), fmt.Sprintf("%q", tc.wantKey), "the error names the key")
			}
			requireClosed(t, readers)
			require.ErrorIs(t, v.Wait(), tc.wantErr, "Wait returns the failure too")
			if tc.bad == nil && !tc.recorded {
				assert.Len(t, v.Entries(), before, "no entry recorded")
			}
			requireBudgetFree(t, r.Budget())
		})
	}
}

// cancelled returns a context that has ended.
func cancelled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

func TestVisitKeyTwiceAcrossBatches(t *testing.T) {
	r, d := newRepo(t)
	v := visitors.New(r, nil)
	key := "bucket/k\x00v1"
	entries, readers := batch(true, blobOf(key, 10), blobOf("other", 20))
	require.NoError(t, visit(t.Context(), v, entries))
	requireClosed(t, readers)

	entries, readers = batch(true, blob{key, []byte("new content")})
	err := visit(t.Context(), v, entries)
	require.ErrorIs(t, err, core.ErrInvalid)
	assert.Contains(t, err.Error(), `"bucket/k\x00v1"`)
	requireClosed(t, readers)

	assert.Len(t, v.Entries(), 2)
	assert.Len(t, d.puts(), 2, "the repeated key's bytes are not uploaded")
}

func TestVisitUploadsSameContentOnce(t *testing.T) {
	r, d := newRepo(t)
	var events eventLog
	v := visitors.New(r, &visitors.Options{MemoryThreshold: 1 << 10, OnBlob: events.add})
	small, large := blobOf("x", 100).data, blobOf("y", 5000).data
	for _, keys := range [][]string{{"k1", "k2", "k3"}, {"k4", "k5"}} {
		var blobs []blob
		for _, k := range keys {
			blobs = append(blobs, blob{k, small}, blob{k + "-large", large})
		}
		entries, readers := batch(false, blobs...)
		require.NoError(t, visit(t.Context(), v, entries))
		requireClosed(t, readers)
	}
	assert.ElementsMatch(t, []string{blobName(small), blobName(large)}, d.stored())
	assert.Equal(t, visitors.Stats{
		Blobs: 10, Bytes: 5 * (100 + 5000),
		Uploaded: 2, UploadedBytes: 100 + 5000,
		Skipped: 8,
	}, v.Stats())
	entries := v.Entries()
	require.Len(t, entries, 10)
	for _, e := range entries {
		if len(e.Key) > 2 {
			assert.Equal(t, manifest.Entry{Key: e.Key, Digest: digestOf(large), Size: 5000}, e)
		} else {
			assert.Equal(t, manifest.Entry{Key: e.Key, Digest: digestOf(small), Size: 100}, e)
		}
	}
	uploaded := 0
	for _, e := range events.all() {
		if e.Uploaded {
			uploaded++
		}
	}
	assert.Len(t, events.all(), 10)
	assert.Equal(t, 2, uploaded)
}

// Blobs stored already are found so, whether written create-only (up to
// Options.CreateOnlyMax bytes) or looked up first (larger): they are not
// written again, except one stored with another size, which is not the
// one named and is replaced.
func TestVisitSkipsStoredBlobs(t *testing.T) {
	for _, tc := range []struct {
		name          string
		createOnlyMax int64
		creates       int // create-only Puts of the visit
	}{
		{"create-only", 0, 3},
		{"looked up first", -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, d := newRepo(t)
			ctx := t.Context()
			stored, fresh, damaged := blobOf("stored", 300), blobOf("fresh", 200), blobOf("damaged", 400)
			require.NoError(t, r.Store().PutBytes(ctx, blobName(stored.data), stored.data, store.PutOptions{}))
			require.NoError(t, r.Store().PutBytes(ctx, blobName(damaged.data), damaged.data[:10], store.PutOptions{}))
			before, createsBefore := len(d.stored()), d.creates

			var events eventLog
			v := visitors.New(r, &visitors.Options{OnBlob: events.add, CreateOnlyMax: tc.createOnlyMax})
			entries, readers := batch(true, stored, fresh, damaged)
			require.NoError(t, visit(ctx, v, entries))
			requireClosed(t, readers)

			assert.ElementsMatch(t, []string{blobName(fresh.data), blobName(damaged.data)}, d.stored()[before:])
			assert.Equal(t, tc.creates, d.creates-createsBefore)
			assert.ElementsMatch(t, []visitors.Event{
				{Key: "stored", Size: 300, Uploaded: false},
				{Key: "fresh", Size: 200, Uploaded: true},
				{Key: "damaged", Size: 400, Uploaded: true},
			}, events.all())
			assert.Equal(t, 1, v.Stats().Skipped)
			assert.Equal(t, 2, v.Stats().Uploaded)
			got, err := r.Store().GetBytes(ctx, blobName(damaged.data), 1<<10)
			require.NoError(t, err)
			assert.Equal(t, damaged.data, got)
		})
	}
}

// The blobs of a parent snapshot (AddStored) cost no request: neither a
// lookup nor a write. One recorded with another size is not trusted.
func TestVisitTrustsParentBlobs(t *testing.T) {
	r, d := newRepo(t)
	ctx := t.Context()
	parent, large, fresh := blobOf("parent", 300), blobOf("large", 3000), blobOf("fresh", 200)
	wrong := blobOf("wrong", 100)
	first := visitors.New(r, nil)
	entries, _ := batch(true, parent, large, wrong)
	require.NoError(t, visit(ctx, first, entries))
	known := first.Entries()
	for i := range known {
		if known[i].Key == "wrong" {
			known[i].Size++ // a parent whose entry disagrees with the digest
		}
	}
	before, statsBefore := len(d.puts()), d.stats

	v := visitors.New(r, &visitors.Options{CreateOnlyMax: 1000})
	v.AddStored(known)
	entries, readers := batch(true, parent, large, fresh, wrong)
	require.NoError(t, visit(ctx, v, entries))
	requireClosed(t, readers)
	// The wrong one is written create-only, refused, and then looked up.
	assert.ElementsMatch(t, []string{blobName(fresh.data), blobName(wrong.data)}, d.puts()[before:], "only the blobs no parent holds are written")
	assert.Equal(t, 1, d.stats-statsBefore, "the blob the parent records with another size is looked up")
	assert.Equal(t, visitors.Stats{Blobs: 4, Bytes: 3600, Uploaded: 1, UploadedBytes: 200, Skipped: 3}, v.Stats())
}

func TestVisitRequestBudget(t *testing.T) {
	const limit = 3
	r, d := newRepoWith(t, &store.Options{Budget: store.NewBudget(limit, 0)})
	d.entered = make(chan struct{}, 16)
	d.gate = make(chan struct{})
	v := visitors.New(r, nil)
	var blobs []blob
	for i := range 12 {
		blobs = append(blobs, blobOf(fmt.Sprint("k", i), 100+i))
	}
	entries, readers := batch(true, blobs...)
	done := make(chan error)
	go func() { done <- visit(t.Context(), v, entries) }()

	// limit Puts reach the driver and wait there, holding every request
	// slot; then they all go.
	for range limit {
		<-d.entered
	}
	close(d.gate)
	require.NoError(t, <-done)
	requireClosed(t, readers)
	assert.Len(t, d.puts(), len(blobs))
	assert.Equal(t, limit, d.maxInFlight, "Puts in flight at once")
}

func TestVisitByteBudget(t *testing.T) {
	const maxBytes = 1 << 20
	r, d := newRepoWith(t, &store.Options{Budget: store.NewBudget(4, maxBytes)})
	tmp := t.TempDir()
	v := visitors.New(r, &visitors.Options{TempDir: tmp})
	var blobs []blob
	for i, n := range []int{0, 1, 10 << 10, 100 << 10, 500 << 10, 900 << 10, maxBytes - 1, maxBytes, maxBytes + 1, 3 << 20, 300 << 10, 700 << 10} {
		blobs = append(blobs, blobOf(fmt.Sprint("k", i), n))
	}
	for i, known := range []bool{true, false} {
		entries, readers := batch(known, blobs[i*6:(i+1)*6]...)
		require.NoError(t, visit(t.Context(), v, entries))
		requireClosed(t, readers)
	}
	assert.Len(t, d.puts(), len(blobs))
	assert.LessOrEqual(t, d.maxMemory, int64(maxBytes), "in-memory bytes being put at once")
	requireBudgetFree(t, r.Budget())
	for _, b := range blobs {
		got, err := r.Store().GetBytes(t.Context(), blobName(b.data), 4<<20)
		require.NoError(t, err)
		require.True(t, bytes.Equal(b.data, got), "stored bytes of %q", b.key)
	}
	files, err := os.ReadDir(tmp)
	require.NoError(t, err)
	assert.Empty(t, files, "spool files left behind")
}

// visit runs one Visit of entries and waits for its uploads: the failure
// of either (see Visitor.Wait).
func visit(ctx context.Context, v *visitors.Visitor, entries []core.BlobExportEntry) error {
	if err := v.Visit(ctx, entries); err != nil {
		return err
	}
	return v.Wait()
}

// Visit returns once it has closed its readers, while the uploads of its
// small blobs still run: the next batch is read meanwhile, and no request
// slot waits for a batch's slowest upload. Wait waits for them.
func TestVisitReturnsBeforeUploadsEnd(t *testing.T) {
	r, d := newRepo(t)
	d.entered = make(chan struct{}, 16)
	d.gate = make(chan struct{})
	v := visitors.New(r, nil)
	first, firstReaders := batch(true, blobOf("a", 100), blobOf("b", 200))
	second, secondReaders := batch(false, blobOf("c", 300))
	require.NoError(t, v.Visit(t.Context(), first))
	requireClosed(t, firstReaders)
	require.NoError(t, v.Visit(t.Context(), second))
	requireClosed(t, secondReaders)
	for range 3 {
		<-d.entered // every Put waits at the gate, after both Visits returned
	}
	assert.Empty(t, d.stored())

	close(d.gate)
	require.NoError(t, v.Wait())
	assert.Len(t, d.stored(), 3)
	assert.Equal(t, 3, v.Stats().Uploaded)
	assert.Len(t, v.Entries(), 3)
	requireBudgetFree(t, r.Budget())
}

// Stats waits for the uploads of the Visits before it, so that what it
// counts after the last Visit is the whole export.
func TestStatsWaitsForUploads(t *testing.T) {
	r, d := newRepo(t)
	d.entered = make(chan struct{}, 16)
	d.gate = make(chan struct{})
	v := visitors.New(r, nil)
	entries, _ := batch(false, blobOf("a", 100), blobOf("b", 200))
	require.NoError(t, v.Visit(t.Context(), entries))
	for range 2 {
		<-d.entered // both uploads wait at the gate
	}
	stats := make(chan visitors.Stats, 1)
	go func() { stats <- v.Stats() }()
	close(d.gate)
	s := <-stats
	assert.Equal(t, 2, s.Blobs)
	assert.Equal(t, 2, s.Uploaded, "Stats counted before the uploads ended")
	require.NoError(t, v.Wait())
}

// An upload that fails after its Visit returned fails the next Visit,
// which closes its readers and stores nothing more, and Wait.
func TestVisitReportsLaterFailures(t *testing.T) {
	boom := errors.New("boom")
	r, d := newRepo(t)
	d.entered = make(chan struct{}, 16)
	d.gate = make(chan struct{})
	d.putErr = boom
	v := visitors.New(r, nil)
	first, _ := batch(true, blobOf("a\x00key", 100))
	require.NoError(t, v.Visit(t.Context(), first))
	<-d.entered
	close(d.gate)
	err := v.Wait()
	require.ErrorIs(t, err, boom)
	assert.ErrorContains(t, err, `visitors: blob "a\x00key"`)

	second, readers := batch(true, blobOf("b", 100))
	require.ErrorIs(t, v.Visit(t.Context(), second), boom)
	requireClosed(t, readers)
	assert.Len(t, d.puts(), 1, "nothing more is written after a failure")
	require.ErrorIs(t, v.Wait(), boom)
	requireBudgetFree(t, r.Budget())
}
