//go:build !linux

package bigbuf

const supported = false

func alignOffset([]byte) int { return 0 }

func advise([]byte) {}
