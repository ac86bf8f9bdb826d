package testserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Bounds on starting and stopping a server.
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 10 * time.Second
	pollInterval = 50 * time.Millisecond
	logTailBytes = 4 << 10
)

// process is a server started by this package: its command, temporary
// directory (removed when it stops) and log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	dir     string
	logPath string
	exited  chan struct{}
	waitErr error
}

// startProcess runs bin with args and env in a new temporary directory,
// logging to a file there, and waits until GET readyURL answers 200. The
// function args receives the temporary directory and returns the
// arguments.
func startProcess(name, bin string, args func(dir string) []string, env []string, readyURL string) (*process, error) {
	dir, err := os.MkdirTemp("", "statebucket-"+name+"-*")
	if err != nil {
		return nil, fmt.Errorf("testserver: %s: %w", name, err)
	}
	p := &process{name: name, dir: dir, logPath: filepath.Join(dir, name+".log"), exited: make(chan struct{})}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("testserver: %s: %w", name, err)
	}
	defer logFile.Close()

	p.cmd = exec.Command(bin, args(dir)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = logFile
	p.cmd.Stderr = logFile
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("testserver: start %s: %w", bin, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitReady(readyURL); err != nil {
		err = fmt.Errorf("testserver: %s %s did not become ready: %w\n--- last lines of %s ---\n%s", name, bin, err, p.logPath, p.logTail())
		if stopErr := p.stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		return nil, err
	}
	return p, nil
}

// waitReady polls url until it answers 200, the process exits, or
// startTimeout passes.
func (p *process) waitReady(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("exited: %v", p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("no answer 200 from %s within %v", url, startTimeout)
		case <-tick.C:
		}
	}
}

// stop ends the process, with SIGTERM and then, if it lingers, SIGKILL,
// and removes its directory.
func (p *process) stop() error {
	select {
	case <-p.exited:
	default:
		timeout := time.After(stopTimeout)
		if p.cmd.Process.Signal(syscall.SIGTERM) != nil {
			timeout = time.After(0) // no SIGTERM on this system
		}
		select {
		case <-p.exited:
		case <-timeout:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	if err := os.RemoveAll(p.dir); err != nil {
		return fmt.Errorf("testserver: %s: remove %s: %w", p.name, p.dir, err)
	}
	return nil
}

// logTail returns the end of the process's log.
func (p *process) logTail() string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	if len(data) > logTailBytes {
		data = data[len(data)-logTailBytes:]
		if i := strings.IndexByte(string(data), '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	return string(data)
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// retryPortClash calls start, which starts a server on ports freeAddr
// found, up to three times while it fails because another process took
// one of them in the meantime.
func retryPortClash[T any](start func() (T, error)) (T, error) {
	for attempt := 1; ; attempt++ {
		srv, err := start()
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return srv, err
		}
	}
}
