package sources

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"unsafe"

	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/internal/spool"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
)

func TestChunkPoolReuses(t *testing.T) {
	p := &chunkPool{size: 64 << 10}
	a := p.get()
	if len(a.b) != p.size {
		t.Fatalf("buffer of %d bytes, want %d", len(a.b), p.size)
	}
	a.b[len(a.b)-1] = 1
	p.put(a)
	b := p.get()
	if unsafe.SliceData(b.b) != unsafe.SliceData(a.b) {
		t.Fatal("a buffer put back was not reused")
	}
	c := p.get() // none free: a new one
	if unsafe.SliceData(c.b) == unsafe.SliceData(b.b) {
		t.Fatal("a buffer in use was handed out again")
	}
	p.put(c)
	p.close()
	if len(p.free) != 0 {
		t.Fatalf("%d buffers kept after close", len(p.free))
	}
	p.put(b) // a reader closed after its Source: freed, not kept
	if len(p.free) != 0 {
		t.Fatalf("%d buffers kept after close", len(p.free))
	}
}

// TestPoolsTrimEachOther: a Source's chunk buffers and spool memory are
// kept for reuse, but before either maps more, the other's free memory
// is given back, so that the two keep about what the budget lets them
// use at once.
func TestPoolsTrimEachOther(t *testing.T) {
	fs, err := filestore.New(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	budget := store.NewBudget(4, 64<<20)
	r := repo.New(store.New(struct{ store.Driver }{fs}, "test", &store.Options{Budget: budget}), nil)
	defer r.Close()
	s := New(r, nil, nil) // no manifest: only its pools are used
	defer s.memory.Close()
	defer s.chunks.close()
	spoolOf := func(n int) *spool.Spool {
		sp, err := spool.Fill(t.Context(), struct{ io.Reader }{bytes.NewReader(make([]byte, n))}, budget,
			spool.Options{MemoryThreshold: 4 << 20, TempDir: t.TempDir(), SizeHint: int64(n), Memory: s.memory, NoWait: true})
		if err != nil {
			t.Fatal(err)
		}
		return sp
	}
	spoolOf(1 << 20).Close()
	if s.memory.Idle() == 0 {
		t.Fatal("a closed spool's memory is not kept for reuse")
	}
	c := s.chunks.get() // maps a buffer: the spools' free memory goes
	if s.memory.Idle() != 0 {
		t.Fatalf("%d bytes of spool memory kept as a chunk buffer was mapped", s.memory.Idle())
	}
	s.chunks.put(c)
	if len(s.chunks.free) != 1 {
		t.Fatal("a chunk buffer put back is not kept for reuse")
	}
	held := spoolOf(1 << 20) // the pieces trimmed serve it: nothing mapped
	if len(s.chunks.free) != 1 {
		t.Fatal("chunk buffers freed though the spools mapped nothing")
	}
	spoolOf(3 << 20).Close() // more than a slab: maps, after freeing the chunk buffer
	held.Close()
	if len(s.chunks.free) != 0 {
		t.Fatalf("%d chunk buffers kept as spool memory was mapped", len(s.chunks.free))
	}
}

func TestInOrderChunks(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		size, chunk int64
		want        int
	}{
		{5 * mib, 4 * mib, 2},    // at least one downloaded beside one read
		{32 * mib, 4 * mib, 4},   // half of the blob
		{33 * mib, 4 * mib, 5},   // half rounded up to a chunk
		{64 * mib, 4 * mib, 8},   // half of the blob, inOrderBytes
		{200 * mib, 4 * mib, 8},  // inOrderBytes
		{64 * mib, 8 * mib, 4},   // inOrderBytes in larger chunks
		{200 * mib, 64 * mib, 2}, // chunks larger than inOrderBytes
		{1 << 10, 64 << 10, 2},   // a blob smaller than a chunk
	} {
		if got := inOrderChunks(c.size, c.chunk); got != c.want {
			t.Errorf("inOrderChunks(%d, %d) = %d, want %d", c.size, c.chunk, got, c.want)
		}
	}
}

// TestWindowEnd checks how far ahead a Source downloads by default: past
// the request limit only while the blobs to spool there are small.
func TestWindowEnd(t *testing.T) {
	fs, err := filestore.New(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	const requests, budget = 4, 64 << 10 // a window of 16 KiB
	st := store.New(struct{ store.Driver }{fs}, "test", &store.Options{Budget: store.NewBudget(requests, budget)})
	defer st.Close()
	window := func(sizes ...int64) int {
		entries := make([]manifest.Entry, len(sizes))
		for i, n := range sizes {
			entries[i] = manifest.Entry{Key: fmt.Sprint(i), Digest: digest.FromBytes([]byte{byte(i)}), Size: n}
		}
		m, err := manifest.New("s3", "123456789012", "eu-west-1", manifest.Object{Digest: digest.FromSum(make([]byte, 32))}, entries)
		if err != nil {
			t.Fatal(err)
		}
		s := New(repo.New(st, nil), m, &Options{LargeThreshold: 1 << 20})
		defer s.Close()
		return s.windowEnd(0) - 1
	}
	for _, c := range []struct {
		name  string
		sizes []int64
		want  int
	}{
		{"small blobs: 4 × requests", repeat(30, 100), 4 * requests},
		{"fewer entries than the window", repeat(6, 100), 5},
		{"blobs past 16 KiB: the request limit", repeat(30, 8<<10), requests},
		{"up to 16 KiB in all", repeat(30, 2<<10), requests + 4},
		{"chunked blobs do not count", repeat(30, 2<<20), 4 * requests},
	} {
		if got := window(c.sizes...); got != c.want {
			t.Errorf("%s: %d entries ahead, want %d", c.name, got, c.want)
		}
	}
}

// repeat returns n sizes of size bytes.
func repeat(n int, size int64) []int64 {
	sizes := make([]int64, n)
	for i := range sizes {
		sizes[i] = size
	}
	return sizes
}

// TestScheduleLarge checks which large blobs a Fetch starts reading
// ahead: the next ones while the buffers they may hold fit in half the
// budget together, and always the next one, whatever it may hold.
func TestScheduleLarge(t *testing.T) {
	const chunk = 64 << 10
	fs, err := filestore.New(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Half the budget: 8 chunks, so four blobs of 4 chunks read in order
	// (2 buffers each: see inOrderChunks), or one of 32.
	st := store.New(struct{ store.Driver }{fs}, "test", &store.Options{Budget: store.NewBudget(8, 16*chunk)})
	defer st.Close()
	r := repo.New(st, nil)
	aheadOf := func(sizes ...int64) []int {
		entries := make([]manifest.Entry, len(sizes))
		for i, n := range sizes {
			data := bytes.Repeat([]byte{byte(i)}, int(n))
			d := digest.FromBytes(data)
			if err := r.PutBlob(t.Context(), d, bytes.NewReader(data), n); err != nil {
				t.Fatal(err)
			}
			entries[i] = manifest.Entry{Key: fmt.Sprint(i), Digest: d, Size: n}
		}
		m, err := manifest.New("s3", "123456789012", "eu-west-1", manifest.Object{Digest: digest.FromSum(make([]byte, 32))}, entries)
		if err != nil {
			t.Fatal(err)
		}
		s := New(r, m, &Options{LargeThreshold: 4 * chunk, ChunkSize: chunk, Prefetch: 8})
		defer s.Close()
		rc, err := s.Fetch(t.Context(), "0")
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		var ahead []int
		for i := range sizes {
			if sl := s.slots[i]; sl != nil && sl.cr != nil {
				ahead = append(ahead, i)
			}
		}
		return ahead
	}
	const small, big = 4 * chunk, 64 * chunk // 2 buffers; 16
	for _, c := range []struct {
		name  string
		sizes []int64
		want  []int
	}{
		{"small ones share half the budget", []int64{small, small, small, small, small, small, small}, []int{1, 2, 3, 4}},
		{"a big one alone", []int64{small, big, small, small}, []int{1}},
		{"small ones up to a big one", []int64{small, small, small, big, small}, []int{1, 2}},
		{"blobs spooled in between", []int64{small, 100, small, 100, small}, []int{2, 4}},
	} {
		if got := aheadOf(c.sizes...); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: blobs %v read ahead, want %v", c.name, got, c.want)
		}
	}
}
