// Package bigbuf allocates the large buffers of the transfer engines
// (chunks of a large blob, upload chunks) so that the kernel can back
// them with huge pages.
//
// The first write to a fresh page of memory costs a page fault, and on
// virtual machines a fault can cost far more than the bytes it maps: on
// the 2-core Firecracker guest of docs/benchmarks.md, touching 64 MiB of
// fresh memory in 4 KiB pages took 240–290 ms, seven times as long as
// hashing 64 MiB with SHA-256. Most Linux systems back memory with huge
// pages only where a program asks for them (transparent huge pages in
// "madvise" mode), so a buffer from Alloc is aligned to a huge page and
// marked with madvise(MADV_HUGEPAGE): one fault then maps 2 MiB. Where
// that does not apply (other systems, huge pages turned off, buffers
// smaller than a huge page), Alloc is make.
package bigbuf

// hugePage is the size of a transparent huge page on x86-64 and arm64
// with 4 KiB base pages.
const hugePage = 2 << 20

// Alloc returns a zeroed buffer of n bytes. The memory is the Go
// runtime's, collected like any other once the buffer is unreachable.
func Alloc(n int) []byte {
	if n < hugePage || !supported {
		return make([]byte, n)
	}
	// Room to start on a huge-page boundary: the slack before it and
	// after the buffer is never touched, so it costs address space only.
	raw := make([]byte, n+hugePage)
	off := alignOffset(raw)
	b := raw[off : off+n : off+n]
	advise(b)
	return b
}

// Map returns a zeroed buffer of n bytes outside the Go heap, and the
// function that frees it. Such a buffer does not count toward the heap
// the garbage collector sizes itself by: a transfer engine that keeps a
// few large buffers for reuse then does not double the process's memory
// by making the collector wait for twice as much garbage. The caller
// must call free exactly once, after its last use of the buffer; a use
// after free faults. Where memory cannot be mapped, Map returns a buffer
// from Alloc and a free that does nothing.
func Map(n int) (b []byte, free func()) {
	if b, free, ok := mmap(n); ok {
		return b, free
	}
	return Alloc(n), func() {}
}

// Discard frees the memory of b, a buffer from Map or Alloc whose bytes
// are no longer needed, keeping b usable: its pages are given back to
// the system, and read as zeros when next touched, at the cost of a page
// fault. Where that does not apply, Discard does nothing.
func Discard(b []byte) { discard(b) }
