package filestore_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// requireUnnamedFiles skips the test unless the file system of dir can
// make unnamed files (O_TMPFILE).
func requireUnnamedFiles(t *testing.T, dir string) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o666)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
		t.Skipf("the file system of %s makes no unnamed files: %v", dir, err)
	}
	require.NoError(t, err)
	unix.Close(fd)
}

// TestKilledCreateOnlyPutsLeaveNothing kills processes with create-only
// Puts half-written: they leave no file behind, neither temporary nor at
// the objects' names, so there is nothing for CleanStale to remove.
func TestKilledCreateOnlyPutsLeaveNothing(t *testing.T) {
	root := t.TempDir()
	requireUnnamedFiles(t, root)
	drv := newDriver(t, root)
	for range 3 {
		kill(t, startStuckPutsEnv(t, root, 8, envHelperCreateOnly+"=1"))
	}
	assert.Empty(t, walkFiles(t, root))
	entries, err := os.ReadDir(filepath.Join(root, "blobs", "sha256"))
	require.NoError(t, err)
	assert.Len(t, entries, 8, "the Puts got as far as their directories")
	n, err := drv.CleanStale(t.Context(), 0)
	require.NoError(t, err)
	assert.Zero(t, n)
}
