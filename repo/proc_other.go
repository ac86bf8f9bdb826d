//go:build !unix

package repo

// processAlive reports true: without a portable way to ask, a process is
// taken to run, and its lock goes stale by age alone.
func processAlive(int) bool { return true }

// pidNamespace returns "": this system has no PID namespaces.
func pidNamespace() string { return "" }
