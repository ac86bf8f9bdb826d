//go:build unix

package repo

import (
	"errors"
	"syscall"
)

// processAlive reports whether a process pid runs on this host: signal 0
// checks that it exists without signalling it. A process of another user
// exists too (EPERM).
func processAlive(pid int) bool {
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
