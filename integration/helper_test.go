package integration_test

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// helperRun is the outcome of a helper process run by [runHelper].
type helperRun struct {
	killed bool // SIGKILL landed; false: the helper finished first
	pid    int  // the helper's process id, gone once runHelper returns
}

// runHelper runs the test named test of this binary as a helper process,
// with env added to this process's environment, and calls killAt with
// each line the helper prints. Once killAt returns true, the helper is
// killed with SIGKILL, at whatever it was doing; a helper that waits for
// its kill reads its standard input, which stays open until then. It
// returns once the helper is gone, and fails the test if the helper
// failed on its own.
func runHelper(t *testing.T, test string, env []string, killAt func(line string) bool) helperRun {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if killAt(lines.Text()) {
			break
		}
	}
	// Killing a helper that has finished already is harmless: Wait has
	// not reaped it, so its pid is still its own.
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	for lines.Scan() {
	}
	err = cmd.Wait()
	run := helperRun{pid: cmd.Process.Pid}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if status, ok := exit.Sys().(syscall.WaitStatus); ok && status.Signaled() && status.Signal() == syscall.SIGKILL {
			run.killed = true
			return run
		}
	}
	require.NoError(t, err, "the helper failed before its kill:\n%s", stderr.String())
	return run
}

// killSeed returns the seed of a kill test's moments:
// $STATEBUCKET_KILL_SEED, or 2026, and logs it.
func killSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(2026)
	if s := os.Getenv(envKillSeed); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, envKillSeed)
	}
	t.Logf("seed %d (set %s to repeat with another)", seed, envKillSeed)
	return seed
}
