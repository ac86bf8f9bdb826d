package filestore_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
)

// stagedStore returns a store over a new directory whose file system
// takes staged files, skipping the test where it does not.
func stagedStore(t *testing.T) (*filestore.Driver, *store.Store, string) {
	t.Helper()
	root := t.TempDir()
	if !filestore.Batchable(root) {
		t.Skipf("the file system of %s syncs each file on its own", root)
	}
	d := newDriver(t, root)
	return d, store.New(d, "test", nil), root
}

// blobOf returns the name and the SHA-256 of data stored as a blob.
func blobOf(data []byte) (string, []byte) {
	sum := sha256.Sum256(data)
	h := hex.EncodeToString(sum[:])
	return "blobs/sha256/" + h[:2] + "/" + h, sum[:]
}

// onDisk returns the path of the object name under root.
func onDisk(root, name string) string { return filepath.Join(root, filepath.FromSlash(name)) }

// temporaries returns the temporary files under root.
func temporaries(t *testing.T, root string) []string {
	var tmps []string
	for _, name := range walkFiles(t, root) {
		if strings.HasPrefix(filepath.Base(name), ".tmp-") {
			tmps = append(tmps, name)
		}
	}
	return tmps
}

// TestStagedPutsNamedAtSync stores small blobs with deferred Puts: each
// is under a temporary name until Sync, and stored whole after it.
func TestStagedPutsNamedAtSync(t *testing.T) {
	d, st, root := stagedStore(t)
	ctx := t.Context()
	var names []string
	for i := range 10 {
		data := bytes.Repeat([]byte{byte(i)}, 100+i)
		name, sum := blobOf(data)
		names = append(names, name)
		require.NoError(t, st.PutBytes(ctx, name, data, store.PutOptions{SHA256: sum, DeferSync: true, CreateOnly: i%2 == 0}))
		assert.NoFileExists(t, onDisk(root, name), "a staged blob is named at Sync")
	}
	assert.Len(t, temporaries(t, root), 10)
	require.NoError(t, d.Sync(ctx))
	assert.Empty(t, temporaries(t, root))
	for i, name := range names {
		got, err := st.GetBytes(ctx, name, 1<<10)
		require.NoError(t, err)
		assert.Equal(t, bytes.Repeat([]byte{byte(i)}, 100+i), got)
	}
	assert.ElementsMatch(t, names, walkFiles(t, root))
}

// TestStagedFilesWaitApart: on ext4 and XFS, staged files wait in the
// staging directory, not in their objects' directories, whose entries
// then change once per file; a Sync leaves the staging directory empty.
func TestStagedFilesWaitApart(t *testing.T) {
	d, st, root := stagedStore(t)
	if !filestore.Journaled(root) {
		t.Skipf("the file system of %s stages files in their objects' directories", root)
	}
	ctx := t.Context()
	var names []string
	for i := range 20 {
		data := []byte(fmt.Sprint("apart ", i))
		name, sum := blobOf(data)
		names = append(names, name)
		require.NoError(t, st.PutBytes(ctx, name, data, store.PutOptions{SHA256: sum, DeferSync: true, CreateOnly: i%2 == 0}))
	}
	tmps := temporaries(t, root)
	require.Len(t, tmps, 20)
	for _, tmp := range tmps {
		assert.Equal(t, ".staging", filepath.Dir(tmp), tmp)
	}
	require.NoError(t, d.Sync(ctx))
	entries, err := os.ReadDir(filepath.Join(root, ".staging"))
	require.NoError(t, err)
	assert.Empty(t, entries)
	assert.ElementsMatch(t, names, walkFiles(t, root))
	assert.ElementsMatch(t, names, listNames(t, st, ""), "List does not enter the staging directory")
}

// TestStagedGroupCommitsWhenFull commits staged files in groups of 4: the
// Put that fills a group names its files; Sync names the rest.
func TestStagedGroupCommitsWhenFull(t *testing.T) {
	d, st, root := stagedStore(t)
	filestore.SetStageGroup(d, 4)
	ctx := t.Context()
	var names []string
	for i := range 10 {
		name, sum := blobOf([]byte{byte(i)})
		names = append(names, name)
		require.NoError(t, st.PutBytes(ctx, name, []byte{byte(i)}, store.PutOptions{SHA256: sum, DeferSync: true}))
	}
	for i, name := range names {
		if i < 8 {
			assert.FileExists(t, onDisk(root, name))
		} else {
			assert.NoFileExists(t, onDisk(root, name))
		}
	}
	require.NoError(t, d.Sync(ctx))
	for _, name := range names {
		ok, err := st.Exists(ctx, name)
		require.NoError(t, err)
		assert.True(t, ok, name)
	}
}

// TestStagedCreateOnlyLosesToEarlierName stages a create-only Put whose
// name another writer (another Driver) takes before Sync: that writer's
// object stays, and Sync drops the staged file without failing.
func TestStagedCreateOnlyLosesToEarlierName(t *testing.T) {
	d, st, root := stagedStore(t)
	ctx := t.Context()
	other := store.New(newDriver(t, root), "other", nil)
	require.NoError(t, st.PutBytes(ctx, blob, []byte("staged"), store.PutOptions{DeferSync: true, CreateOnly: true}))
	require.NoError(t, other.PutBytes(ctx, blob, []byte("other"), store.PutOptions{}))
	require.NoError(t, d.Sync(ctx))
	got, err := st.GetBytes(ctx, blob, 10)
	require.NoError(t, err)
	assert.Equal(t, "other", string(got))
	assert.Empty(t, temporaries(t, root))

	// A plain deferred Put replaces the object, at Sync.
	require.NoError(t, st.PutBytes(ctx, blob, []byte("replaced"), store.PutOptions{DeferSync: true}))
	require.NoError(t, d.Sync(ctx))
	got, err = st.GetBytes(ctx, blob, 10)
	require.NoError(t, err)
	assert.Equal(t, "replaced", string(got))
}

// TestStagedReadYourWrites: an operation of the Driver on a staged name
// commits the group first, so that the Driver reads its own writes; a
// List commits every staged file.
func TestStagedReadYourWrites(t *testing.T) {
	d, st, root := stagedStore(t)
	ctx := t.Context()
	var names []string
	for i := range 4 {
		data := []byte(fmt.Sprint("blob ", i))
		name, sum := blobOf(data)
		names = append(names, name)
		require.NoError(t, st.PutBytes(ctx, name, data, store.PutOptions{SHA256: sum, DeferSync: true}))
	}
	assert.NoFileExists(t, onDisk(root, names[0]))
	got, err := st.GetBytes(ctx, names[0], 10)
	require.NoError(t, err)
	assert.Equal(t, "blob 0", string(got))
	for _, name := range names {
		assert.FileExists(t, onDisk(root, name), "the whole group commits")
	}

	// A Delete of a staged name deletes it, for good.
	gone, sum := blobOf([]byte("gone"))
	require.NoError(t, st.PutBytes(ctx, gone, []byte("gone"), store.PutOptions{SHA256: sum, DeferSync: true}))
	require.NoError(t, st.Delete(ctx, gone))
	// A create-only Put of a staged name finds it taken.
	taken, sum := blobOf([]byte("taken"))
	require.NoError(t, st.PutBytes(ctx, taken, []byte("taken"), store.PutOptions{SHA256: sum, DeferSync: true}))
	require.ErrorIs(t, st.PutBytes(ctx, taken, []byte("taken"), store.PutOptions{SHA256: sum, DeferSync: true, CreateOnly: true}), core.ErrExists)
	// A List shows every staged name.
	listed, sum := blobOf([]byte("listed"))
	require.NoError(t, st.PutBytes(ctx, listed, []byte("listed"), store.PutOptions{SHA256: sum, DeferSync: true}))
	assert.ElementsMatch(t, append(names, taken, listed), listNames(t, st, ""))
	require.NoError(t, d.Sync(ctx))
	assert.ElementsMatch(t, append(names, taken, listed), walkFiles(t, root))
}

// TestStagedConcurrentReaders stats staged blobs from many goroutines at
// once: each finds its blob, the readers that do not commit the group
// waiting for the one that does. A reader that found the group taken by
// another reader, and not named yet, once failed with "no such file"
// (seen under the race detector, which `make test` uses).
func TestStagedConcurrentReaders(t *testing.T) {
	d, st, _ := stagedStore(t)
	ctx := t.Context()
	for round := range 200 {
		var names []string
		for i := range 8 {
			data := []byte(fmt.Sprint("round ", round, " blob ", i))
			name, sum := blobOf(data)
			names = append(names, name)
			require.NoError(t, st.PutBytes(ctx, name, data, store.PutOptions{SHA256: sum, DeferSync: true}))
		}
		var g errgroup.Group
		for i := range 4 * len(names) {
			g.Go(func() error {
				_, err := st.Stat(ctx, names[i%len(names)])
				return err
			})
		}
		require.NoError(t, g.Wait(), "round %d", round)
	}
	require.NoError(t, d.Sync(ctx))
}

// TestStagedFailureReportedBySync stages a blob whose name becomes a
// folder before Sync: Sync fails naming it, and removes its temporary
// file; the other staged blob is stored.
func TestStagedFailureReportedBySync(t *testing.T) {
	d, st, root := stagedStore(t)
	ctx := t.Context()
	bad, badSum := blobOf([]byte("bad"))
	good, goodSum := blobOf([]byte("good"))
	require.NoError(t, st.PutBytes(ctx, bad, []byte("bad"), store.PutOptions{SHA256: badSum, DeferSync: true}))
	require.NoError(t, st.PutBytes(ctx, good, []byte("good"), store.PutOptions{SHA256: goodSum, DeferSync: true}))
	require.NoError(t, os.MkdirAll(filepath.Join(root, filepath.FromSlash(bad), "in-the-way"), 0o755))
	err := d.Sync(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), bad)
	assert.Contains(t, err.Error(), "1 of 2 deferred writes failed")
	assert.Empty(t, temporaries(t, root))
	ok, err := st.Exists(ctx, good)
	require.NoError(t, err)
	assert.True(t, ok)
	require.NoError(t, d.Sync(ctx), "a failure is reported once")
}

// TestStagedRefusals: a body that does not match its digest is refused
// at once, leaving no file; a body over StageMax, and a Put not
// deferred, are stored when they return; Close removes what it staged.
func TestStagedRefusals(t *testing.T) {
	d, st, root := stagedStore(t)
	ctx := t.Context()
	name, sum := blobOf([]byte("right"))
	err := st.PutBytes(ctx, name, []byte("wrong"), store.PutOptions{SHA256: sum, DeferSync: true})
	require.ErrorIs(t, err, core.ErrChecksumMismatch)
	assert.Empty(t, walkFiles(t, root))

	big := bytes.Repeat([]byte("b"), filestore.StageMax+1)
	bigName, bigSum := blobOf(big)
	require.NoError(t, st.PutBytes(ctx, bigName, big, store.PutOptions{SHA256: bigSum, DeferSync: true}))
	plainName, plainSum := blobOf([]byte("plain"))
	require.NoError(t, st.PutBytes(ctx, plainName, []byte("plain"), store.PutOptions{SHA256: plainSum}))
	assert.ElementsMatch(t, []string{bigName, plainName}, walkFiles(t, root))

	for i := range 3 {
		data := []byte(fmt.Sprint("discarded ", i))
		n, s := blobOf(data)
		require.NoError(t, st.PutBytes(ctx, n, data, store.PutOptions{SHA256: s, DeferSync: true}))
	}
	assert.Len(t, temporaries(t, root), 3)
	require.NoError(t, d.Close())
	assert.ElementsMatch(t, []string{bigName, plainName}, walkFiles(t, root), "Close removes the staged files")
}
