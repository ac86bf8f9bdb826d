package spool_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"runtime"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/internal/spool"
	"github.com/statebucket/statebucket/store"
)

// pattern returns n bytes that differ from one offset to the next, so that
// a misplaced byte changes the content.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>8)
	}
	return b
}

// stream returns a reader of b that is only an io.Reader, as a network
// body is: Fill copies it, where it reads a *bytes.Reader in place.
func stream(b []byte) io.Reader { return struct{ io.Reader }{bytes.NewReader(b)} }

// requireBudgetFree fails unless every byte of b is free.
func requireBudgetFree(t *testing.T, b *store.Budget) {
	t.Helper()
	require.True(t, b.TryAcquireBytes(b.MaxBytes()), "budget bytes still held")
	b.ReleaseBytes(b.MaxBytes())
}

// requireEmptyDir fails unless dir holds no file.
func requireEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "files left in the temporary directory")
}

// requireContent checks every way a spool hands out its bytes.
func requireContent(t *testing.T, sp *spool.Spool, want []byte) {
	t.Helper()
	require.Equal(t, int64(len(want)), sp.Size())
	sum := sha256.Sum256(want)
	require.Equal(t, sum[:], sp.Sum())
	got, err := io.ReadAll(sp.Reader())
	require.NoError(t, err)
	require.True(t, bytes.Equal(want, got), "Reader returns other bytes")
	got, err = io.ReadAll(sp.Reader())
	require.NoError(t, err)
	require.True(t, bytes.Equal(want, got), "a second Reader returns other bytes")
	require.NoError(t, iotest.TestReader(io.NewSectionReader(sp.ReaderAt(), 0, sp.Size()), want))
}

func TestFillPlacement(t *testing.T) {
	const threshold = 8 << 10
	for _, tc := range []struct {
		name     string
		size     int
		hint     int64
		inMemory bool
	}{
		{"empty, known", 0, 0, true},
		{"empty, unknown", 0, -1, true},
		{"small, known", 100, 100, true},
		{"small, unknown", 100, -1, true},
		{"exactly threshold, known", threshold, threshold, true},
		{"exactly threshold, unknown", threshold, -1, true},
		{"threshold+1, known", threshold + 1, threshold + 1, false},
		{"threshold+1, unknown", threshold + 1, -1, false},
		{"large, known", 5 * threshold, 5 * threshold, false},
		{"large, unknown", 5 * threshold, -1, false},
		{"large, hint too small", 5 * threshold, 10, false},
		{"small, hint too large", 100, 5 * threshold, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			budget := store.NewBudget(1, 1<<20)
			want := pattern(tc.size)
			sp, err := spool.Fill(t.Context(), stream(want), budget, spool.Options{
				MemoryThreshold: threshold,
				TempDir:         dir,
				SizeHint:        tc.hint,
			})
			require.NoError(t, err)
			assert.Equal(t, tc.inMemory, sp.InMemory())
			requireContent(t, sp, want)
			// Bytes in memory are the bytes hashed: a Put need not hash
			// them again. A file could change under its reader.
			hb, hashed := sp.ReaderAt().(store.HashedBody)
			assert.Equal(t, tc.inMemory, hashed, "a HashedBody only in memory")
			if hashed {
				assert.Equal(t, sp.Sum(), hb.SHA256())
			}
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			// A spilled spool is one temporary file, whose name is gone
			// already where the system allows it (Unix), so that a
			// process killed while it holds the file leaves nothing.
			if tc.inMemory || runtime.GOOS != "windows" {
				assert.Empty(t, entries)
			} else {
				assert.Len(t, entries, 1, "a spilled spool is one temporary file")
			}
			require.NoError(t, sp.Close())
			require.NoError(t, sp.Close(), "a second Close")
			requireEmptyDir(t, dir)
			requireBudgetFree(t, budget)
		})
	}
}

func TestFillUnknownSizeGrowsInMemory(t *testing.T) {
	// Beyond the first chunk and below the default threshold, a stream of
	// unknown size stays in memory.
	budget := store.NewBudget(1, 0)
	want := pattern(300 << 10)
	sp, err := spool.Fill(t.Context(), iotest.HalfReader(bytes.NewReader(want)), budget, spool.Options{SizeHint: -1, TempDir: t.TempDir()})
	require.NoError(t, err)
	defer sp.Close()
	assert.True(t, sp.InMemory())
	requireContent(t, sp, want)
}

// TestFillUnknownSmallSizeHoldsItsSize fills spools with small streams of
// unknown size: each holds as many bytes of the budget as it has, not a
// whole first chunk, and the buffer it was read into serves the next
// without mixing their bytes.
func TestFillUnknownSmallSizeHoldsItsSize(t *testing.T) {
	const size, n = 4 << 10, 4
	budget := store.NewBudget(1, 1<<20)
	var held []*spool.Spool
	total := int64(0)
	for i := range n {
		want := pattern(size + i)
		sp, err := spool.Fill(t.Context(), iotest.OneByteReader(bytes.NewReader(want)), budget, spool.Options{SizeHint: -1, TempDir: t.TempDir()})
		require.NoError(t, err)
		assert.True(t, sp.InMemory())
		held = append(held, sp)
		total += int64(len(want))
	}
	free := budget.MaxBytes() - total
	require.True(t, budget.TryAcquireBytes(free), "the spools hold more than their bytes")
	budget.ReleaseBytes(free)
	for i, sp := range held {
		requireContent(t, sp, pattern(size+i))
		require.NoError(t, sp.Close())
	}
	requireBudgetFree(t, budget)
}

func TestFillKnownLargeSizeTakesNoMemory(t *testing.T) {
	// A blob known to exceed the threshold goes straight to a file: Fill
	// does not wait for memory it will not use.
	budget := store.NewBudget(1, 1<<10)
	require.True(t, budget.TryAcquireBytes(budget.MaxBytes()))
	want := pattern(4 << 10)
	sp, err := spool.Fill(t.Context(), bytes.NewReader(want), budget, spool.Options{
		MemoryThreshold: 1 << 10, TempDir: t.TempDir(), SizeHint: int64(len(want)),
	})
	require.NoError(t, err)
	assert.False(t, sp.InMemory())
	requireContent(t, sp, want)
	require.NoError(t, sp.Close())
	budget.ReleaseBytes(budget.MaxBytes())
	requireBudgetFree(t, budget)
}

func TestFillBudgetSmallerThanBlob(t *testing.T) {
	// Memory is capped by the budget, not only by the threshold: what does
	// not fit spills.
	budget := store.NewBudget(1, 4<<10)
	want := pattern(64 << 10)
	for _, hint := range []int64{-1, int64(len(want))} {
		sp, err := spool.Fill(t.Context(), bytes.NewReader(want), budget, spool.Options{TempDir: t.TempDir(), SizeHint: hint})
		require.NoError(t, err)
		assert.False(t, sp.InMemory(), "size hint %d", hint)
		requireContent(t, sp, want)
		require.NoError(t, sp.Close())
		requireBudgetFree(t, budget)
	}
}

func TestFillNoWaitSpillsWhenBudgetExhausted(t *testing.T) {
	dir := t.TempDir()
	budget := store.NewBudget(1, 1<<20)
	require.True(t, budget.TryAcquireBytes(budget.MaxBytes()))
	want := pattern(100)
	// The deadline only turns a Fill that waits into a failure.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	sp, err := spool.Fill(ctx, bytes.NewReader(want), budget, spool.Options{TempDir: dir, SizeHint: -1, NoWait: true})
	require.NoError(t, err)
	assert.False(t, sp.InMemory(), "with no memory free, NoWait spills")
	requireContent(t, sp, want)
	require.NoError(t, sp.Close())
	requireEmptyDir(t, dir)
	budget.ReleaseBytes(budget.MaxBytes())
	requireBudgetFree(t, budget)
}

func TestFillWaitsForMemory(t *testing.T) {
	// Without NoWait, Fill waits for its first chunk of memory: with the
	// budget exhausted, only the context ends the wait.
	budget := store.NewBudget(1, 1<<20)
	require.True(t, budget.TryAcquireBytes(budget.MaxBytes()))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := spool.Fill(ctx, bytes.NewReader(pattern(100)), budget, spool.Options{SizeHint: -1})
	require.ErrorIs(t, err, context.Canceled)
	budget.ReleaseBytes(budget.MaxBytes())

	// Once memory is returned, a waiting Fill goes on in memory.
	require.True(t, budget.TryAcquireBytes(budget.MaxBytes()))
	type result struct {
		sp  *spool.Spool
		err error
	}
	done := make(chan result)
	go func() {
		sp, err := spool.Fill(t.Context(), stream(pattern(100)), budget, spool.Options{SizeHint: 100})
		done <- result{sp, err}
	}()
	budget.ReleaseBytes(budget.MaxBytes())
	r := <-done
	require.NoError(t, r.err)
	assert.True(t, r.sp.InMemory())
	require.NoError(t, r.sp.Close())
	requireBudgetFree(t, budget)
}

// cancellingReader serves r and calls cancel once it has served after
// bytes.
type cancellingReader struct {
	r      io.Reader
	after  int64
	n      int64
	cancel context.CancelFunc
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n >= c.after {
		c.cancel()
	}
	return n, err
}

func TestFillCancelled(t *testing.T) {
	for _, tc := range []struct {
		name      string
		threshold int64
	}{
		{"memory", 0},
		{"file", 1 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			budget := store.NewBudget(1, 1<<20)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			src := &cancellingReader{r: iotest.OneByteReader(bytes.NewReader(pattern(1 << 20))), after: 2 << 10, cancel: cancel}
			_, err := spool.Fill(ctx, src, budget, spool.Options{MemoryThreshold: tc.threshold, TempDir: dir, SizeHint: -1})
			require.ErrorIs(t, err, context.Canceled)
			assert.Less(t, src.n, int64(1<<20), "Fill read on after its context was cancelled")
			requireEmptyDir(t, dir)
			requireBudgetFree(t, budget)
		})
	}
}

func TestFillReadErrorLeavesNothing(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name      string
		before    int
		threshold int64
	}{
		{"in memory", 100, 0},
		{"after spilling", 8 << 10, 1 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			budget := store.NewBudget(1, 1<<20)
			src := io.MultiReader(bytes.NewReader(pattern(tc.before)), iotest.ErrReader(boom))
			sp, err := spool.Fill(t.Context(), src, budget, spool.Options{MemoryThreshold: tc.threshold, TempDir: dir, SizeHint: -1})
			require.ErrorIs(t, err, boom)
			assert.Nil(t, sp)
			requireEmptyDir(t, dir)
			requireBudgetFree(t, budget)
		})
	}
}

func TestFillMissingTempDir(t *testing.T) {
	budget := store.NewBudget(1, 1<<20)
	_, err := spool.Fill(t.Context(), bytes.NewReader(pattern(4<<10)), budget, spool.Options{
		MemoryThreshold: 1 << 10, TempDir: t.TempDir() + "/missing", SizeHint: -1,
	})
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.Contains(t, err.Error(), "spool:")
	requireBudgetFree(t, budget)
}

func TestReaderAtConcurrent(t *testing.T) {
	want := pattern(64 << 10)
	for _, threshold := range []int64{0, 1 << 10} {
		sp, err := spool.Fill(t.Context(), bytes.NewReader(want), store.NewBudget(1, 0), spool.Options{
			MemoryThreshold: threshold, TempDir: t.TempDir(), SizeHint: -1,
		})
		require.NoError(t, err)
		require.Equal(t, threshold == 0, sp.InMemory())
		ra := sp.ReaderAt()
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				buf := make([]byte, 1000+g)
				for off := int64(g * 97); off < int64(len(want)); off += int64(len(buf)) * 3 {
					n, err := ra.ReadAt(buf, off)
					end := min(off+int64(len(buf)), int64(len(want)))
					if n != int(end-off) || (err != nil && err != io.EOF) || !bytes.Equal(buf[:n], want[off:end]) {
						t.Errorf("ReadAt(%d bytes, %d) = %d, %v; want %d bytes", len(buf), off, n, err, end-off)
						return
					}
				}
			})
		}
		wg.Wait()

		n, err := ra.ReadAt(make([]byte, 10), int64(len(want)))
		assert.Equal(t, 0, n)
		assert.ErrorIs(t, err, io.EOF, "at the end")
		n, err = ra.ReadAt(make([]byte, 10), int64(len(want)-4))
		assert.Equal(t, 4, n)
		assert.ErrorIs(t, err, io.EOF, "across the end")
		_, err = ra.ReadAt(make([]byte, 10), -1)
		assert.Error(t, err, "negative offset")
		require.NoError(t, sp.Close())
	}
}

func TestFillReadsRandomAccessReadersInPlace(t *testing.T) {
	want := pattern(3<<20 + 17)
	f, err := os.Create(t.TempDir() + "/blob")
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Write(want)
	require.NoError(t, err)
	_, err = f.Seek(0, io.SeekStart)
	require.NoError(t, err)

	for name, r := range map[string]io.Reader{
		"file":    f,
		"bytes":   bytes.NewReader(want),
		"section": io.NewSectionReader(bytes.NewReader(append([]byte("head"), want...)), 4, int64(len(want))),
	} {
		t.Run(name, func(t *testing.T) {
			budget := store.NewBudget(4, 1<<20)
			tmp := t.TempDir()
			sp, err := spool.Fill(t.Context(), r, budget, spool.Options{SizeHint: int64(len(want)), MemoryThreshold: 1 << 20, TempDir: tmp})
			require.NoError(t, err)
			defer sp.Close()
			assert.True(t, sp.InPlace(), "a random-access reader of the announced size is not copied")
			assert.False(t, sp.InMemory())
			requireContent(t, sp, want)
			requireEmptyDir(t, tmp)
			requireBudgetFree(t, budget)
		})
	}
}

func TestFillStreamsReadersThatAreNotAtTheirStartOrOfAnotherSize(t *testing.T) {
	want := pattern(100 << 10)
	budget := store.NewBudget(4, 1<<20)

	moved := bytes.NewReader(want)
	_, err := moved.Read(make([]byte, 10))
	require.NoError(t, err)
	sp, err := spool.Fill(t.Context(), moved, budget, spool.Options{SizeHint: int64(len(want)) - 10})
	require.NoError(t, err)
	assert.False(t, sp.InPlace(), "a reader read past its start is streamed from its position")
	requireContent(t, sp, want[10:])
	sp.Close()

	for name, hint := range map[string]int64{"longer than announced": int64(len(want)) - 1, "shorter than announced": int64(len(want)) + 1} {
		sp, err := spool.Fill(t.Context(), bytes.NewReader(want), budget, spool.Options{SizeHint: hint})
		require.NoError(t, err, name)
		assert.False(t, sp.InPlace(), name)
		assert.Equal(t, int64(len(want)), sp.Size(), "%s: the stream counts the real size", name)
		sp.Close()
	}
	requireBudgetFree(t, budget)
}

func TestFillInPlaceStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	budget := store.NewBudget(4, 1<<20)
	_, err := spool.Fill(ctx, bytes.NewReader(pattern(4<<20)), budget, spool.Options{SizeHint: 4 << 20})
	require.ErrorIs(t, err, context.Canceled)
	requireBudgetFree(t, budget)
}

// openFiles returns how many descriptors the process has open.
func openFiles(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd to count descriptors: %v", err)
	}
	return len(entries)
}

// TestFilesWrittenOver spools a blob to a file, closes it, and spools a
// smaller one: the second writes over the first's file, kept open in
// between, and hands out its own bytes only, none of the first's past
// its end. Once the Files is closed, no file stays open.
func TestFilesWrittenOver(t *testing.T) {
	budget := store.NewBudget(4, 1<<20)
	files := spool.NewFiles(2)
	opts := spool.Options{MemoryThreshold: 64 << 10, TempDir: t.TempDir(), Files: files}
	before := openFiles(t)

	first := pattern(300 << 10)
	opts.SizeHint = int64(len(first))
	sp, err := spool.Fill(t.Context(), stream(first), budget, opts)
	require.NoError(t, err)
	require.False(t, sp.InMemory())
	requireContent(t, sp, first)
	require.NoError(t, sp.Close())
	assert.Equal(t, before+1, openFiles(t), "the closed spool's file is kept")

	second := bytes.Repeat([]byte("second"), 20_000)
	opts.SizeHint = int64(len(second))
	sp, err = spool.Fill(t.Context(), stream(second), budget, opts)
	require.NoError(t, err)
	assert.Equal(t, before+1, openFiles(t), "the kept file is written over, no new one opened")
	requireContent(t, sp, second)
	n, err := sp.ReaderAt().ReadAt(make([]byte, 16), int64(len(second)))
	assert.Zero(t, n, "bytes past the spool's end")
	assert.ErrorIs(t, err, io.EOF)
	require.NoError(t, sp.Close())

	require.NoError(t, files.Close())
	assert.Equal(t, before, openFiles(t), "Files.Close closes the files kept")
	sp, err = spool.Fill(t.Context(), stream(first), budget, opts)
	require.NoError(t, err)
	require.NoError(t, sp.Close())
	assert.Equal(t, before, openFiles(t), "a spool closed after Files.Close closes its file")
	requireEmptyDir(t, opts.TempDir)
	requireBudgetFree(t, budget)
}
