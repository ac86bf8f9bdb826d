package filestore_test

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
)

// stuckBody is a Put's body of 512 KiB whose first 256 KiB read at once
// (so the Put has written them to its temporary file) and whose rest
// blocks until release is closed.
type stuckBody struct {
	stuck   chan struct{} // closed once a read blocks
	release chan struct{}
	once    sync.Once
}

const stuckSize = 512 << 10

func newStuckBody() *stuckBody {
	return &stuckBody{stuck: make(chan struct{}), release: make(chan struct{})}
}

func (b *stuckBody) ReadAt(p []byte, off int64) (int, error) {
	if off == 0 {
		return len(p), nil
	}
	b.once.Do(func() { close(b.stuck) })
	<-b.release
	clear(p)
	return len(p), nil
}

// Environment of the helper process that TestHelperStuckPuts runs as.
const (
	envHelperDir        = "FILESTORE_HELPER_DIR"
	envHelperPuts       = "FILESTORE_HELPER_PUTS"
	envHelperCreateOnly = "FILESTORE_HELPER_CREATE_ONLY"
)

// TestHelperStuckPuts is not a test: run by startStuckPuts, it starts
// $FILESTORE_HELPER_PUTS Puts into $FILESTORE_HELPER_DIR whose bodies
// block, create-only if $FILESTORE_HELPER_CREATE_ONLY is set, prints
// "stuck" once each has written part of its file, and waits to be killed
// (or for its standard input to close).
func TestHelperStuckPuts(t *testing.T) {
	dir := os.Getenv(envHelperDir)
	if dir == "" {
		return
	}
	puts, err := strconv.Atoi(os.Getenv(envHelperPuts))
	require.NoError(t, err)
	st := store.New(newDriver(t, dir), dir, nil)
	opts := store.PutOptions{CreateOnly: os.Getenv(envHelperCreateOnly) != ""}
	for i := range puts {
		body := newStuckBody()
		go st.Put(t.Context(), fmt.Sprintf("blobs/sha256/%02x/object-%d", i, i), body, stuckSize, opts)
		<-body.stuck
	}
	fmt.Println("stuck")
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// startStuckPuts starts a process with puts Puts into dir stuck half-way,
// and returns it once their temporary files exist.
func startStuckPuts(t *testing.T, dir string, puts int) *exec.Cmd {
	return startStuckPutsEnv(t, dir, puts)
}

// startStuckPutsEnv is startStuckPuts with env added to the helper's
// environment.
func startStuckPutsEnv(t *testing.T, dir string, puts int, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperStuckPuts$")
	cmd.Env = append(os.Environ(), envHelperDir+"="+dir, envHelperPuts+"="+strconv.Itoa(puts))
	cmd.Env = append(cmd.Env, env...)
	_, err := cmd.StdinPipe() // never written: the helper waits on it
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "stuck\n", line)
	return cmd
}

// kill kills cmd as a crash would, and waits for it to be gone.
func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
}

// tempFiles returns the temporary files under root, by path.
func tempFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() && strings.HasPrefix(e.Name(), ".tmp-") {
			out = append(out, p)
		}
		return err
	}))
	return out
}

func age(t *testing.T, files ...string) {
	t.Helper()
	old := time.Now().Add(-2 * filestore.DefaultStaleAge)
	for _, f := range files {
		require.NoError(t, os.Chtimes(f, old, old))
	}
}

// TestCleanStaleAfterKilledPuts: 12 processes killed while each had 8
// Puts half-written leave 96 temporary files, which CleanStale removes
// once they are old. It keeps, however old, the temporary files of a
// process that is alive and of this process's own Put in progress (which
// then completes), and a fresh one of a killed process.
func TestCleanStaleAfterKilledPuts(t *testing.T) {
	root := t.TempDir()
	drv := newDriver(t, root)

	for range 12 {
		kill(t, startStuckPuts(t, root, 8))
	}
	dead := tempFiles(t, root)
	require.Len(t, dead, 96)
	age(t, dead...)

	kill(t, startStuckPuts(t, root, 1))
	fresh := difference(tempFiles(t, root), dead)
	require.Len(t, fresh, 1)

	live := startStuckPuts(t, root, 2)
	body := newStuckBody()
	own := make(chan error, 1)
	st := store.New(drv, root, nil)
	go func() { own <- st.Put(t.Context(), "snapshots/own/view.json", body, stuckSize, store.PutOptions{}) }()
	<-body.stuck
	all := tempFiles(t, root)
	require.Len(t, all, 100)
	age(t, difference(all, fresh)...)

	n, err := drv.CleanStale(t.Context(), filestore.DefaultStaleAge)
	require.NoError(t, err)
	assert.Equal(t, 96, n)
	left := tempFiles(t, root)
	assert.Len(t, left, 4, "the fresh file, the live process's two and this process's")
	assert.Contains(t, left, fresh[0])

	close(body.release)
	require.NoError(t, <-own, "a live Put lost its temporary file")

	// Once its process is gone, the live process's files go too.
	kill(t, live)
	n, err = drv.CleanStale(t.Context(), 0)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.Equal(t, fresh, tempFiles(t, root))
}

// difference returns the elements of a not in b.
func difference(a, b []string) []string {
	in := map[string]bool{}
	for _, s := range b {
		in[s] = true
	}
	var out []string
	for _, s := range a {
		if !in[s] {
			out = append(out, s)
		}
	}
	return out
}

// TestCleanStale: temporary files of older versions, which name no
// writer, and those of an earlier process that had this one's id, are
// removed once old, in the objects' directories and in the staging
// directory; fresh ones are kept; objects are never touched.
func TestCleanStale(t *testing.T) {
	root := t.TempDir()
	drv := newDriver(t, root)
	st := store.New(drv, root, nil)
	require.NoError(t, st.PutBytes(t.Context(), blob, []byte("x"), store.PutOptions{}))
	fan := filepath.Join(root, "blobs", "sha256", "ab")
	staging := filepath.Join(root, ".staging")
	require.NoError(t, os.MkdirAll(staging, 0o755))
	pid := strconv.Itoa(os.Getpid())
	stale := []string{filepath.Join(fan, ".tmp-STALE"), filepath.Join(fan, ".tmp-"+pid+"-EARLIER0-X"), filepath.Join(fan, ".tmp-0-x-y"), filepath.Join(staging, ".tmp-0-x-STAGED")}
	fresh := filepath.Join(fan, ".tmp-FRESH")
	for _, p := range append(stale, fresh) {
		require.NoError(t, os.WriteFile(p, []byte("partial"), 0o666))
	}
	age(t, stale...)

	n, err := drv.CleanStale(t.Context(), 0)
	require.NoError(t, err)
	assert.Equal(t, len(stale), n)
	assert.Equal(t, []string{fresh}, tempFiles(t, root))
	assert.FileExists(t, filepath.Join(fan, hexA))

	var c store.Cleaner = drv
	n, err = c.CleanStale(t.Context(), time.Nanosecond)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "an olderThan given is used")
}
