package filestore_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
)

// residentPages returns how many of the pages of the file at p are in
// the page cache, and how many pages it has (mincore on a mapping of it,
// which reads none of it in).
func residentPages(t *testing.T, p string) (resident, pages int) {
	t.Helper()
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	fi, err := f.Stat()
	require.NoError(t, err)
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	require.NoError(t, err)
	defer unix.Munmap(m)
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatalf("mincore %s: %v", p, errno)
	}
	for _, v := range vec {
		resident += int(v & 1)
	}
	return resident, len(vec)
}

// TestDropCache puts bodies through each way a Put writes a file (a
// temporary file renamed, an unnamed file linked) and checks which leave
// their pages in the page cache: none of a body of 1 MiB or more, unless
// Options.KeepCache is set; every page of a smaller one. On tmpfs, whose
// pages are the files themselves, every page stays, and every byte.
func TestDropCache(t *testing.T) {
	root := t.TempDir()
	var st unix.Statfs_t
	require.NoError(t, unix.Statfs(root, &st))
	tmpfs := st.Type == unix.TMPFS_MAGIC
	for _, keep := range []bool{false, true} {
		drv, err := filestore.New(filepath.Join(root, fmt.Sprint(keep)), &filestore.Options{Create: true, KeepCache: keep})
		require.NoError(t, err)
		t.Cleanup(func() { drv.Close() })
		for _, size := range []int{512 << 10, 1 << 20, 4<<20 + 5, 40<<20 + 3} {
			for _, createOnly := range []bool{false, true} {
				data := bytes.Repeat([]byte{byte(size), byte(size >> 8), 7}, size/3+1)[:size]
				sum := sha256.Sum256(data)
				name := fmt.Sprintf("blobs/sha256/%x/%x", sum[:1], sum)
				if !createOnly {
					name += "-plain"
				}
				opts := store.PutOptions{CreateOnly: createOnly, SHA256: sum[:]}
				require.NoError(t, drv.Put(t.Context(), name, bytes.NewReader(data), int64(size), opts))

				resident, pages := residentPages(t, filepath.Join(drv.Root(), filepath.FromSlash(name)))
				what := fmt.Sprintf("KeepCache %v, %d bytes, create-only %v", keep, size, createOnly)
				if keep || size < 1<<20 || tmpfs {
					assert.Equal(t, pages, resident, "%s: the pages written stay in the cache", what)
				} else {
					assert.Zero(t, resident, "%s: %d pages of %d left in the cache", what, resident, pages)
				}
				got, err := os.ReadFile(filepath.Join(drv.Root(), filepath.FromSlash(name)))
				require.NoError(t, err)
				assert.True(t, bytes.Equal(data, got), "%s: the file holds the body", what)
			}
		}
	}
}
