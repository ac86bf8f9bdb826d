package filestore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
	"github.com/statebucket/statebucket/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.RunDriverTests(t, func(t *testing.T) store.Driver {
		return newDriver(t, t.TempDir())
	})
}

// TestConformanceThroughTemporaryFiles runs the suite with create-only
// Puts through temporary files, as where unnamed files cannot be made.
func TestConformanceThroughTemporaryFiles(t *testing.T) {
	storetest.RunDriverTests(t, func(t *testing.T) store.Driver {
		d := newDriver(t, t.TempDir())
		filestore.WithoutUnnamedFiles(d)
		return d
	})
}

func newDriver(t testing.TB, dir string) *filestore.Driver {
	t.Helper()
	drv, err := filestore.New(dir, nil)
	require.NoError(t, err)
	t.Cleanup(func() { drv.Close() })
	return drv
}

var (
	hexA = "ab" + strings.Repeat("0", 62)
	blob = "blobs/sha256/ab/" + hexA
)

// TestMissingDirectory opens a directory that does not exist, by New and
// by URL: every operation but Put fails naming it, and the first Put
// creates it, with its missing parents.
func TestMissingDirectory(t *testing.T) {
	for _, via := range []string{"New", "URL", "Path"} {
		t.Run(via, func(t *testing.T) {
			missing := filepath.Join(t.TempDir(), "repo", "nested")
			var st *store.Store
			switch via {
			case "New":
				st = store.New(newDriver(t, missing), missing, nil)
			case "URL", "Path":
				u := missing
				if via == "URL" {
					u = "file://" + filepath.ToSlash(missing)
				}
				var err error
				st, err = store.Open(t.Context(), u)
				require.NoError(t, err)
				t.Cleanup(func() { st.Close() })
			}
			ctx := t.Context()
			assert.NoDirExists(t, missing, "opening created the directory")
			require.NoError(t, st.Sync(ctx), "nothing to sync")

			_, getErr := st.Get(ctx, blob)
			_, rangeErr := st.GetRange(ctx, blob, 0, 1)
			_, statErr := st.Stat(ctx, blob)
			_, existsErr := st.Exists(ctx, blob)
			for op, err := range map[string]error{
				"get":    getErr,
				"range":  rangeErr,
				"stat":   statErr,
				"exists": existsErr,
				"list":   st.List(ctx, "", func(store.ObjectInfo) error { return nil }),
				"delete": st.Delete(ctx, blob),
			} {
				require.ErrorIs(t, err, core.ErrBucketNotFound, op)
				assert.NotErrorIs(t, err, core.ErrNotFound, op)
				assert.Contains(t, err.Error(), "repository directory "+missing+" does not exist", op)
			}
			assert.NoDirExists(t, missing, "reading created the directory")

			require.NoError(t, st.PutBytes(ctx, blob, []byte("x"), store.PutOptions{DeferSync: true}))
			assert.DirExists(t, filepath.Dir(filepath.Join(missing, filepath.FromSlash(blob))), "the put made the directories")
			require.NoError(t, st.Sync(ctx))
			assert.FileExists(t, filepath.Join(missing, filepath.FromSlash(blob)))
			got, err := st.GetBytes(ctx, blob, 10)
			require.NoError(t, err)
			assert.Equal(t, []byte("x"), got)
		})
	}
}

func TestNew(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "repo", "nested")
	drv, err := filestore.New(missing, &filestore.Options{Create: true})
	require.NoError(t, err)
	defer drv.Close()
	assert.DirExists(t, missing)
	assert.Equal(t, missing, drv.Root())

	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o666))
	_, err = filestore.New(file, nil)
	require.Error(t, err)
	_, err = filestore.New(file, &filestore.Options{Create: true})
	require.Error(t, err)
}

// TestMaxConcurrency: the driver sizes the store's limit on requests,
// DefaultMaxConcurrency unless told otherwise.
func TestMaxConcurrency(t *testing.T) {
	st := store.New(newDriver(t, t.TempDir()), "test", nil)
	assert.Equal(t, filestore.DefaultMaxConcurrency, st.Budget().MaxRequests())
	drv, err := filestore.New(t.TempDir(), &filestore.Options{MaxConcurrency: 5})
	require.NoError(t, err)
	defer drv.Close()
	assert.Equal(t, 5, store.New(drv, "test", nil).Budget().MaxRequests())
}

func TestRootIsAbsolute(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	drv := newDriver(t, ".")
	assert.Equal(t, dir, drv.Root())
}

// TestSymlinkedDirectory plants a link to another directory where a
// repository directory belongs: nothing is read or written through it.
func TestSymlinkedDirectory(t *testing.T) {
	for _, target := range []string{"outside", "inside"} {
		t.Run(target, func(t *testing.T) {
			root, outside := t.TempDir(), t.TempDir()
			require.NoError(t, os.MkdirAll(filepath.Join(root, "blobs", "sha256", "cd"), 0o777))
			dest := outside
			if target == "inside" {
				dest = filepath.Join(root, "blobs", "sha256", "cd")
			}
			require.NoError(t, os.Symlink(dest, filepath.Join(root, "blobs", "sha256", "ab")))
			secret := []byte("secret")
			require.NoError(t, os.WriteFile(filepath.Join(dest, hexA), secret, 0o666))
			st := store.New(newDriver(t, root), root, nil)

			requireRefused(t, st, blob)
			err := st.PutBytes(t.Context(), "blobs/sha256/ab/"+"ab"+strings.Repeat("1", 62), []byte("new"), store.PutOptions{})
			require.ErrorIs(t, err, core.ErrInvalidPath)
			var want []string // the file is listed once, where it is
			if target == "inside" {
				want = []string{"blobs/sha256/cd/" + hexA}
			}
			assert.Equal(t, want, listNames(t, st, ""))
			assert.Empty(t, listNames(t, st, "blobs/sha256/ab/"))

			entries, err := os.ReadDir(dest)
			require.NoError(t, err)
			require.Len(t, entries, 1, "a file was written through the link")
			data, err := os.ReadFile(filepath.Join(dest, hexA))
			require.NoError(t, err)
			assert.Equal(t, secret, data)
		})
	}
}

// TestSymlinkedFolder plants a link to an outside directory where each
// folder of a repository belongs, from its top folders down to a
// snapshot's: nothing is read, listed or written through it.
func TestSymlinkedFolder(t *testing.T) {
	for _, tc := range []struct{ folder, name string }{
		{"blobs", blob},
		{"snapshots", "snapshots/" + hexA + "/view.json"},
		{"snapshots/" + hexA, "snapshots/" + hexA + "/manifest.json"},
		{"tags", "tags/t.json"},
		{"locks", "locks/shared-x.json"},
	} {
		t.Run(tc.folder, func(t *testing.T) {
			root, outside := t.TempDir(), t.TempDir()
			link := filepath.Join(root, filepath.FromSlash(tc.folder))
			require.NoError(t, os.MkdirAll(filepath.Dir(link), 0o777))
			require.NoError(t, os.Symlink(outside, link))
			// What the link would show: the object, where it would be.
			inner := filepath.Join(outside, filepath.FromSlash(strings.TrimPrefix(tc.name, tc.folder+"/")))
			require.NoError(t, os.MkdirAll(filepath.Dir(inner), 0o777))
			require.NoError(t, os.WriteFile(inner, []byte("outside"), 0o666))
			st := store.New(newDriver(t, root), root, nil)

			requireRefused(t, st, tc.name)
			assert.Empty(t, listNames(t, st, ""))
			assert.Equal(t, []string{filepath.ToSlash(strings.TrimPrefix(inner, outside+string(filepath.Separator)))}, walkFiles(t, outside), "a file was written through the link")
			data, err := os.ReadFile(inner)
			require.NoError(t, err)
			assert.Equal(t, []byte("outside"), data)
		})
	}
}

// TestSymlinkedObject plants a link to a file outside the root where
// each kind of object belongs.
func TestSymlinkedObject(t *testing.T) {
	for _, name := range []string{blob, "snapshots/" + hexA + "/manifest.json", "tags/t.json"} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			hostname := filepath.Join(t.TempDir(), "hostname")
			secret := []byte("host.example\n")
			require.NoError(t, os.WriteFile(hostname, secret, 0o666))
			link := filepath.Join(root, filepath.FromSlash(name))
			require.NoError(t, os.MkdirAll(filepath.Dir(link), 0o777))
			require.NoError(t, os.Symlink(hostname, link))
			st := store.New(newDriver(t, root), root, nil)

			requireRefused(t, st, name)
			assert.Empty(t, listNames(t, st, ""))

			data, err := os.ReadFile(hostname)
			require.NoError(t, err)
			assert.Equal(t, secret, data)
			fi, err := os.Lstat(link)
			require.NoError(t, err)
			assert.Equal(t, fs.ModeSymlink, fi.Mode().Type(), "the link was replaced")
		})
	}
}

func TestDirectoryWhereObjectBelongs(t *testing.T) {
	root := t.TempDir()
	tag := "tags/t.json"
	require.NoError(t, os.MkdirAll(filepath.Join(root, filepath.FromSlash(tag)), 0o777))
	st := store.New(newDriver(t, root), root, nil)

	requireRefused(t, st, tag)
	assert.Empty(t, listNames(t, st, ""))
}

// TestNoTempFilesLeft fails Puts in every way and checks that no temporary
// file remains.
func TestNoTempFilesLeft(t *testing.T) {
	root := t.TempDir()
	st := store.New(newDriver(t, root), root, nil)
	ctx := t.Context()
	data := []byte("data")
	wrong := bytes.Repeat([]byte{1}, 32)

	require.NoError(t, st.PutBytes(ctx, blob, data, store.PutOptions{}))
	require.NoError(t, st.PutBytes(ctx, blob, data, store.PutOptions{}))
	require.Error(t, st.PutBytes(ctx, blob, data, store.PutOptions{CreateOnly: true}))
	tag := "tags/t.json"
	require.NoError(t, st.PutBytes(ctx, tag, data, store.PutOptions{CreateOnly: true}))
	require.Error(t, st.PutBytes(ctx, tag, data, store.PutOptions{SHA256: wrong}))
	require.Error(t, st.Put(ctx, tag, bytes.NewReader(data), 10, store.PutOptions{}))

	assert.Equal(t, []string{blob, tag}, walkFiles(t, root))
}

func TestListSkipsForeignFiles(t *testing.T) {
	root := t.TempDir()
	st := store.New(newDriver(t, root), root, nil)
	require.NoError(t, st.PutBytes(t.Context(), blob, []byte("x"), store.PutOptions{}))
	fan := filepath.Join(root, "blobs", "sha256", "ab")
	for _, name := range []string{".tmp-CRASHED", ".hidden"} {
		require.NoError(t, os.WriteFile(filepath.Join(fan, name), nil, 0o666))
	}
	require.NoError(t, os.Mkdir(filepath.Join(fan, "ab"+strings.Repeat("1", 62)), 0o777))
	require.NoError(t, os.Symlink(filepath.Join(fan, hexA), filepath.Join(fan, "ab"+strings.Repeat("2", 62))))
	require.NoError(t, os.MkdirAll(filepath.Join(root, ".git", "blobs"), 0o777))

	drv, err := filestore.New(root, nil)
	require.NoError(t, err)
	defer drv.Close()
	var names []string
	require.NoError(t, drv.List(t.Context(), "", func(info store.ObjectInfo) error {
		names = append(names, info.Name)
		return nil
	}))
	assert.Equal(t, []string{blob}, names)
}

func TestPermission(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores file permissions")
	}
	root := t.TempDir()
	st := store.New(newDriver(t, root), root, nil)
	require.NoError(t, st.PutBytes(t.Context(), blob, []byte("x"), store.PutOptions{}))
	file := filepath.Join(root, filepath.FromSlash(blob))
	require.NoError(t, os.Chmod(file, 0))
	t.Cleanup(func() { os.Chmod(file, 0o666) })

	_, err := st.Get(t.Context(), blob)
	require.ErrorIs(t, err, core.ErrPermission)
}

// requireRefused checks that every operation on name fails with
// core.ErrInvalidPath.
func requireRefused(t *testing.T, st *store.Store, name string) {
	t.Helper()
	ctx := t.Context()
	_, err := st.Get(ctx, name)
	require.ErrorIs(t, err, core.ErrInvalidPath, "get")
	_, err = st.Stat(ctx, name)
	require.ErrorIs(t, err, core.ErrInvalidPath, "stat")
	require.ErrorIs(t, st.Delete(ctx, name), core.ErrInvalidPath, "delete")
	for _, createOnly := range []bool{false, true} {
		err = st.PutBytes(ctx, name, []byte("new"), store.PutOptions{CreateOnly: createOnly})
		require.ErrorIs(t, err, core.ErrInvalidPath, "put, CreateOnly %v", createOnly)
	}
}

func listNames(t *testing.T, st *store.Store, prefix string) []string {
	t.Helper()
	var names []string
	require.NoError(t, st.List(t.Context(), prefix, func(info store.ObjectInfo) error {
		names = append(names, info.Name)
		return nil
	}))
	return names
}

// walkFiles returns the slash-separated names of every file under root,
// in lexical order.
func walkFiles(t *testing.T, root string) []string {
	t.Helper()
	var names []string
	require.NoError(t, filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		names = append(names, filepath.ToSlash(rel))
		return err
	}))
	return names
}

func TestSync(t *testing.T) {
	d := newDriver(t, t.TempDir())
	require.NoError(t, d.Sync(t.Context()), "nothing to sync")
	st := store.New(d, "test", nil)
	for i := range 40 {
		data := []byte{byte(i)}
		sum := sha256.Sum256(data)
		h := hex.EncodeToString(sum[:])
		require.NoError(t, st.PutBytes(t.Context(), "blobs/"+h[:2]+"/"+h, data, store.PutOptions{DeferSync: true}))
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, d.Sync(ctx), context.Canceled)
	require.NoError(t, d.Sync(t.Context()), "directories left dirty by a failed sync are synced again")
	require.NoError(t, st.Sync(t.Context()))
}

// TestFileWhereFolderBelongs stores "a", then fails to store "a/b", which
// a file system cannot hold beside it, and the other way round.
func TestFileWhereFolderBelongs(t *testing.T) {
	st := store.New(newDriver(t, t.TempDir()), "test", nil)
	ctx := t.Context()
	require.NoError(t, st.PutBytes(ctx, "a", []byte("file"), store.PutOptions{}))
	require.ErrorIs(t, st.PutBytes(ctx, "a/b", []byte("x"), store.PutOptions{}), core.ErrInvalidPath)
	require.NoError(t, st.PutBytes(ctx, "c/d", []byte("x"), store.PutOptions{}))
	require.ErrorIs(t, st.PutBytes(ctx, "c", []byte("x"), store.PutOptions{}), core.ErrInvalidPath)
	assert.ElementsMatch(t, []string{"a", "c/d"}, listNames(t, st, ""))
}
