//go:build unix

package repo

import (
	"errors"
	"os"
	"syscall"
)

// processAlive reports whether a process pid runs on this host: signal 0
// checks that it exists without signalling it. A process of another user
// exists too (EPERM).
func processAlive(pid int) bool {
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// pidNamespace returns the PID namespace of this process where the
// system has them (Linux), and "" elsewhere.
func pidNamespace() string {
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return ns
}
