package visitors_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
	"github.com/statebucket/statebucket/visitors"
)

// callDriver records every call that reaches it.
type callDriver struct {
	store.Driver
	mu    sync.Mutex
	calls []string
}

func (d *callDriver) record(op, name string) {
	d.mu.Lock()
	d.calls = append(d.calls, op+" "+name)
	d.mu.Unlock()
}

func (d *callDriver) Put(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions) error {
	d.record("put", name)
	return d.Driver.Put(ctx, name, body, size, opts)
}

func (d *callDriver) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	d.record("get", name)
	return d.Driver.Get(ctx, name)
}

func (d *callDriver) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	d.record("get", name)
	return d.Driver.GetRange(ctx, name, offset, length)
}

func (d *callDriver) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	d.record("stat", name)
	return d.Driver.Stat(ctx, name)
}

func (d *callDriver) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	d.record("list", prefix)
	return d.Driver.List(ctx, prefix, fn)
}

func (d *callDriver) Delete(ctx context.Context, name string) error {
	d.record("delete", name)
	return d.Driver.Delete(ctx, name)
}

func (d *callDriver) all() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.calls...)
}

// recordedRepo returns a repository in a fresh directory whose every
// driver call is recorded.
func recordedRepo(t *testing.T) (*repo.Repo, *callDriver) {
	t.Helper()
	fs, err := filestore.New(t.TempDir(), nil)
	require.NoError(t, err)
	d := &callDriver{Driver: fs}
	r := repo.New(store.New(d, "recorded", nil), nil)
	t.Cleanup(func() { r.Close() })
	return r, d
}

// A dry run records the entries a real export records, and calls the
// repository's driver not once.
func TestDryRunTouchesNothing(t *testing.T) {
	blobs := []blob{blobOf("a", 10), blobOf("b\x00v", 5000), blobOf("c", 0), blobOf("d", 3<<20)}
	r, d := recordedRepo(t)
	dry := visitors.New(r, &visitors.Options{DryRun: true, MemoryThreshold: 1 << 10})
	for i := range blobs {
		entries, readers := batch(i%2 == 0, blobs[i])
		require.NoError(t, visit(t.Context(), dry, entries))
		requireClosed(t, readers)
	}
	assert.Empty(t, d.all(), "a dry run reached the driver")
	requireBudgetFree(t, r.Budget())
	assert.Equal(t, 4, dry.Stats().Blobs)
	assert.Zero(t, dry.Stats().Uploaded)

	real := visitors.New(r, nil)
	entries, _ := batch(true, blobs...)
	require.NoError(t, visit(t.Context(), real, entries))
	assert.Equal(t, real.Entries(), dry.Entries())

	entries, _ = batch(true, blob{"short", make([]byte, 3)})
	entries[0].Size = 4
	err := visit(t.Context(), dry, entries)
	require.ErrorIs(t, err, core.ErrSizeMismatch)
	assert.Contains(t, err.Error(), `"short"`)

	require.ErrorIs(t, dry.Copy(t.Context(), r, nil), core.ErrInvalid, "a dry run copies nothing")
}

// storeAll exports blobs into r and returns their entries.
func storeAll(t *testing.T, r *repo.Repo, blobs ...blob) []manifest.Entry {
	t.Helper()
	v := visitors.New(r, nil)
	entries, _ := batch(true, blobs...)
	require.NoError(t, visit(t.Context(), v, entries))
	return v.Entries()
}

// Copy downloads and uploads only the blobs the target lacks, each
// distinct digest once. A blob the target holds costs nothing when a
// parent snapshot shows it (AddStored); otherwise a small one is
// downloaded and its create-only write refused, and a large one looked
// up before any download. A second copy uploads nothing, and with the
// first's entries as its parent, reads nothing either.
func TestCopyTransfersOnlyMissingBlobs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		parent bool // the stored blob is known from a parent
		gets   int
	}{
		{"known from a parent", true, 3},
		{"found stored", false, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from, fromDrv := recordedRepo(t)
			to, toDrv := newRepo(t)
			shared, same1, same2 := blobOf("shared", 300), blobOf("same-1", 2000), blobOf("same-2", 2000)
			same2.data = same1.data
			big := blobOf("big", 5<<20)
			blobs := []blob{shared, same1, same2, big, blobOf("empty", 0)}
			entries := storeAll(t, from, blobs...)
			parent := storeAll(t, to, shared, blobOf("big-elsewhere", 5<<20))
			require.NoError(t, to.Store().PutBytes(t.Context(), blobName(big.data), big.data[:10], store.PutOptions{}))

			var events eventLog
			v := visitors.New(to, &visitors.Options{OnBlob: events.add, MemoryThreshold: 1 << 20})
			if tc.parent {
				v.AddStored(parent)
			}
			before := len(fromDrv.all())
			require.NoError(t, v.Copy(t.Context(), from, entries))
			gets := 0
			for _, c := range fromDrv.all()[before:] {
				if c[:3] == "get" {
					gets++
				}
			}
			assert.Equal(t, tc.gets, gets, "downloads")
			st := v.Stats()
			assert.Equal(t, 5, st.Blobs)
			assert.Equal(t, 3, st.Uploaded, "the big blob stored with another size is replaced")
			assert.Equal(t, 2, st.Skipped, "the stored blob and the duplicate")
			assert.Len(t, events.all(), 5)
			assert.Empty(t, v.Entries(), "a copy records no entries")
			for _, b := range blobs {
				got, err := to.Store().GetBytes(t.Context(), blobName(b.data), 8<<20)
				require.NoError(t, err)
				require.Equal(t, b.data, got, b.key)
			}
			requireBudgetFree(t, to.Budget())

			putsBefore := len(toDrv.stored())
			again := visitors.New(to, nil)
			require.NoError(t, again.Copy(t.Context(), from, entries))
			assert.Len(t, toDrv.stored(), putsBefore, "a second copy uploads nothing")
			assert.Equal(t, 5, again.Stats().Skipped)

			callsBefore, attemptsBefore := len(fromDrv.all()), len(toDrv.puts())
			known := visitors.New(to, nil)
			known.AddStored(entries)
			require.NoError(t, known.Copy(t.Context(), from, entries))
			assert.Len(t, fromDrv.all(), callsBefore, "nothing read from the source")
			assert.Len(t, toDrv.puts(), attemptsBefore, "nothing written to the target")
			assert.Equal(t, 5, known.Stats().Skipped)
		})
	}
}

// A source blob whose bytes are not those its entry records fails the
// copy with a mismatch naming the key, and is not stored, whether it is
// spooled or streamed.
func TestCopyRefusesDamagedSourceBlobs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func([]byte) []byte
		wantErr error
	}{
		{"flipped byte", func(b []byte) []byte { b[len(b)/2] ^= 1; return b }, core.ErrChecksumMismatch},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }, core.ErrSizeMismatch},
		{"longer", func(b []byte) []byte { return append(b, 'x') }, core.ErrSizeMismatch},
	} {
		for _, threshold := range []int64{1 << 20, 1 << 10} {
			t.Run(fmt.Sprintf("%s/memory threshold %d", tc.name, threshold), func(t *testing.T) {
				from, _ := newRepo(t)
				to, toDrv := newRepo(t)
				tmp := t.TempDir()
				bad := blobOf("bad\x00key", 3000)
				entries := storeAll(t, from, blobOf("good", 100), bad)
				name := blobName(bad.data)
				data, err := from.Store().GetBytes(t.Context(), name, 1<<20)
				require.NoError(t, err)
				require.NoError(t, from.Store().PutBytes(t.Context(), name, tc.edit(data), store.PutOptions{}))

				v := visitors.New(to, &visitors.Options{TempDir: tmp, MemoryThreshold: threshold})
				err = v.Copy(t.Context(), from, entries)
				require.ErrorIs(t, err, tc.wantErr)
				mm, ok := err.(*repo.MismatchError)
				require.True(t, ok, "a *repo.MismatchError, not wrapped again: %v", err)
				assert.Equal(t, bad.key, mm.Key)
				assert.Contains(t, err.Error(), fmt.Sprintf("%q", bad.key))
				assert.NotContains(t, toDrv.stored(), name, "the damaged blob was stored")
				_, err = to.Store().Stat(t.Context(), name)
				require.ErrorIs(t, err, core.ErrNotFound, "the damaged blob was stored")
				files, err := os.ReadDir(tmp)
				require.NoError(t, err)
				assert.Empty(t, files, "spool files left behind")
				requireBudgetFree(t, to.Budget())
			})
		}
	}
}

// A missing source blob fails the copy naming the key.
func TestCopyMissingSourceBlob(t *testing.T) {
	from, _ := newRepo(t)
	to, _ := newRepo(t)
	gone := blobOf("gone", 10)
	entries := storeAll(t, from, gone)
	require.NoError(t, from.Store().Delete(t.Context(), blobName(gone.data)))
	err := visitors.New(to, nil).Copy(t.Context(), from, entries)
	require.ErrorIs(t, err, core.ErrNotFound)
	assert.Contains(t, err.Error(), `visitors: blob "gone"`)
}

// Copy between two repositories that share one budget of one or two
// requests never deadlocks, whether blobs are spooled (the source is
// opened only once the spool has its memory, and closed before the
// upload) or streamed (the reads of a Put's body take no request slot).
func TestCopySharedBudget(t *testing.T) {
	for _, slots := range []int{1, 2} {
		for _, threshold := range []int64{1 << 20, 1 << 10} {
			t.Run(fmt.Sprintf("%d slots, memory threshold %d", slots, threshold), func(t *testing.T) {
				budget := store.NewBudget(slots, 64<<10)
				from, _ := newRepoWith(t, &store.Options{Budget: budget})
				var blobs []blob
				for i := range 20 {
					blobs = append(blobs, blobOf(fmt.Sprint("k", i), 20<<10+i))
				}
				entries := storeAll(t, from, blobs...)
				to, toDrv := newRepoWith(t, &store.Options{Budget: budget})
				v := visitors.New(to, &visitors.Options{MemoryThreshold: threshold})
				require.NoError(t, v.Copy(t.Context(), from, entries))
				assert.Len(t, toDrv.puts(), len(blobs))
				requireBudgetFree(t, budget)
				for _, b := range blobs {
					got, err := to.Store().GetBytes(t.Context(), blobName(b.data), 1<<20)
					require.NoError(t, err)
					require.Equal(t, b.data, got, b.key)
				}
			})
		}
	}
}
