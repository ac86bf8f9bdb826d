package spool

import (
	"bytes"
	"crypto/sha256"
	"io"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/statebucket/statebucket/store"
)

// piecesData returns n bytes that differ from one offset to the next.
func piecesData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>8)
	}
	return b
}

// fillIn spools data, announced as hint bytes, with m.
func fillIn(t *testing.T, m *Memory, budget *store.Budget, data []byte, hint int64) *Spool {
	t.Helper()
	sp, err := Fill(t.Context(), struct{ io.Reader }{bytes.NewReader(data)}, budget, Options{
		MemoryThreshold: 4 << 20, TempDir: t.TempDir(), SizeHint: hint, Memory: m, NoWait: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// checkContent checks every way sp hands out its bytes.
func checkContent(t *testing.T, sp *Spool, want []byte) {
	t.Helper()
	if sp.Size() != int64(len(want)) {
		t.Fatalf("size %d, want %d", sp.Size(), len(want))
	}
	if sum := sha256.Sum256(want); !bytes.Equal(sum[:], sp.Sum()) {
		t.Fatal("the sum differs")
	}
	got, err := io.ReadAll(sp.Reader())
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Reader returns other bytes (%v)", err)
	}
	if err := iotest.TestReader(io.NewSectionReader(sp.ReaderAt(), 0, sp.Size()), want); err != nil {
		t.Fatal(err)
	}
}

func TestMemoryHoldsPieces(t *testing.T) {
	for _, n := range []int{pieceSize, pieceSize + 1, 3*pieceSize - 1, 3 * pieceSize, 4 << 20} {
		m := NewMemory()
		budget := store.NewBudget(1, 8<<20)
		want := piecesData(n)
		sp := fillIn(t, m, budget, want, int64(n))
		if !sp.InMemory() || sp.pieces == nil {
			t.Fatalf("%d bytes: not held in pieces", n)
		}
		if wantPieces := n/pieceSize + 1; len(sp.pieces) != wantPieces && len(sp.pieces) != wantPieces-1 {
			t.Fatalf("%d bytes in %d pieces", n, len(sp.pieces))
		}
		checkContent(t, sp, want)
		if hb, ok := sp.ReaderAt().(store.HashedBody); !ok || !bytes.Equal(hb.SHA256(), sp.Sum()) {
			t.Fatalf("%d bytes in pieces: not a HashedBody of the spool's sum", n)
		}
		sp.Close()
		if m.out != 0 {
			t.Fatalf("%d pieces still out after Close", m.out)
		}
		if !budget.TryAcquireBytes(budget.MaxBytes()) {
			t.Fatal("budget bytes still held")
		}
		m.Close()
		if m.unmap != nil || m.free != nil {
			t.Fatal("memory kept after Close")
		}
	}
}

// TestMemoryOtherSizes checks blobs of another size than announced: a
// shorter one stays in pieces, a longer one spills to a file and gives
// its pieces back.
func TestMemoryOtherSizes(t *testing.T) {
	m := NewMemory()
	defer m.Close()
	budget := store.NewBudget(1, 8<<20)
	for _, c := range []struct {
		size, hint int
		inMemory   bool
	}{
		{pieceSize, 2 * pieceSize, true},
		{3*pieceSize + 1, 2 * pieceSize, false}, // past the pieces taken
		{5 * pieceSize, 2 * pieceSize, false},
	} {
		want := piecesData(c.size)
		sp := fillIn(t, m, budget, want, int64(c.hint))
		if sp.InMemory() != c.inMemory {
			t.Fatalf("%d bytes announced as %d: in memory %v", c.size, c.hint, sp.InMemory())
		}
		if !c.inMemory && m.out != 0 {
			t.Fatalf("a spilled spool holds %d pieces", m.out)
		}
		checkContent(t, sp, want)
		sp.Close()
	}
}

// TestMemoryReuses checks that spools one after another reuse the pieces
// of those before, mapping no more memory.
func TestMemoryReuses(t *testing.T) {
	m := NewMemory()
	defer m.Close()
	budget := store.NewBudget(1, 8<<20)
	for i := range 20 {
		want := piecesData(pieceSize + i*1000)
		sp := fillIn(t, m, budget, want, int64(len(want)))
		checkContent(t, sp, want)
		sp.Close()
	}
	if len(m.unmap) != 1 {
		t.Fatalf("%d slabs mapped for one spool at a time", len(m.unmap))
	}
}

// TestMemoryTrim: Trim gives back the memory of the free pieces only;
// the pieces serve spools again, warm ones first, and OnMap's function
// runs only before a slab is mapped.
func TestMemoryTrim(t *testing.T) {
	m := NewMemory()
	defer m.Close()
	maps := 0
	m.OnMap(func() { maps++ })
	budget := store.NewBudget(1, 8<<20)
	held := fillIn(t, m, budget, piecesData(pieceSize), pieceSize) // 2 pieces of 8
	if maps != 1 || m.Idle() != 6*pieceSize {
		t.Fatalf("after one spool: %d calls before a map, %d bytes idle", maps, m.Idle())
	}
	m.Trim()
	if m.Idle() != 0 {
		t.Fatalf("%d bytes idle after Trim", m.Idle())
	}
	want := piecesData(pieceSize + 100) // trimmed pieces serve it
	sp := fillIn(t, m, budget, want, int64(len(want)))
	checkContent(t, sp, want)
	sp.Close()
	if m.Idle() != 2*pieceSize {
		t.Fatalf("%d bytes idle, want the 2 pieces used since Trim", m.Idle())
	}
	checkContent(t, held, piecesData(pieceSize)) // Trim left the pieces in use alone
	held.Close()
	if maps != 1 || len(m.unmap) != 1 {
		t.Fatalf("%d calls before a map and %d slabs for spools that fit in one", maps, len(m.unmap))
	}
}

// TestMemoryClosedWhileHeld checks that a Memory closed while a spool
// holds pieces frees them when the spool closes, and that a read after
// Close fails rather than read memory given back.
func TestMemoryClosedWhileHeld(t *testing.T) {
	m := NewMemory()
	budget := store.NewBudget(1, 8<<20)
	want := piecesData(pieceSize)
	sp := fillIn(t, m, budget, want, pieceSize)
	r := sp.ReaderAt()
	m.Close()
	if m.unmap == nil {
		t.Fatal("memory freed while a spool holds it")
	}
	checkContent(t, sp, want)
	sp.Close()
	if m.unmap != nil {
		t.Fatal("memory kept after its last spool closed")
	}
	if _, err := r.ReadAt(make([]byte, 1), 0); err == nil {
		t.Fatal("a read after Close succeeded")
	}
}

// TestMemoryOffHeap checks that spools in pieces leave the Go heap as it
// was.
func TestMemoryOffHeap(t *testing.T) {
	const n, count = 1 << 20, 16
	m := NewMemory()
	defer m.Close()
	budget := store.NewBudget(1, 64<<20)
	data := piecesData(n)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	spools := make([]*Spool, 0, count)
	for range count {
		spools = append(spools, fillIn(t, m, budget, data, n))
	}
	runtime.ReadMemStats(&after)
	for _, sp := range spools {
		sp.Close()
	}
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 4*n {
		t.Fatalf("the heap grew by %d bytes for %d spools of %d", grew, count, n)
	}
}
