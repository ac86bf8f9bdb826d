package main

import (
	"fmt"
	"syscall"
	"time"
)

// probeSize is how much fresh memory probeFreshMemory touches.
const probeSize = 256 << 20

// probeFreshMemory returns the microseconds it takes to touch a page of
// memory the process has never used: a page the kernel maps on first
// touch, outside the Go heap. On a machine whose memory the kernel owns
// that is a fraction of a microsecond; on a virtual machine that hands
// free memory back to its host (free page reporting, as the Firecracker
// VM these figures come from does) and gets it back lazily, each first
// touch of such a page waits on the host, up to tens of microseconds.
// The runs pay it for each page they take from free memory rather than
// from the page cache the kernel reclaims, the page cache they fill
// among them: a local directory's rows, which write gigabytes in a
// second, then move with the machine's state, not with what they do
// (docs/benchmarks.md). The table gives it for the start and the end of
// a run.
func probeFreshMemory() (float64, error) {
	b, err := syscall.Mmap(-1, 0, probeSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return 0, fmt.Errorf("probe fresh memory: %w", err)
	}
	defer syscall.Munmap(b)
	page := syscall.Getpagesize()
	start := time.Now()
	for i := 0; i < len(b); i += page {
		b[i] = 1
	}
	return float64(time.Since(start).Microseconds()) / float64(len(b)/page), nil
}
