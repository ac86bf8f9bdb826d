package testserver

import "syscall"

// sysProcAttr makes the server die with the test binary even if Main is
// not called.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
