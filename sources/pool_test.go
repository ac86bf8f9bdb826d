package sources

import (
	"testing"
	"unsafe"
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
