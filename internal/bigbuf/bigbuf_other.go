//go:build !linux

package bigbuf

const supported = false

func alignOffset([]byte) int { return 0 }

func advise([]byte) {}

func discard([]byte) {}

func mmap(int) ([]byte, func(), bool) { return nil, nil, false }
