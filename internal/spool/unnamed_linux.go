package spool

import (
	"os"
	"syscall"
)

// oTmpfile is Linux's O_TMPFILE (see open(2)), which package syscall
// lacks: the same bits on every architecture Go supports on Linux.
const oTmpfile = 0o20000000 | syscall.O_DIRECTORY

// createUnnamed creates a file in the directory dir that has no name, or
// reports false if the file system or kernel cannot.
func createUnnamed(dir string) (*os.File, bool) {
	f, err := os.OpenFile(dir, os.O_RDWR|oTmpfile, 0o600)
	if err != nil {
		return nil, false
	}
	return f, true
}
