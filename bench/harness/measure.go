package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// sample is one run of one contender, as a child process.
type sample struct {
	Seconds float64 `json:"seconds"` // wall time
	// CallSeconds is the time of statebucket's own call in an in-process
	// contender, timed by the child (see timeCall): from opening the
	// repository to closing it, without starting the process and loading
	// the workload, which the wall time holds too. 0 for other contenders.
	CallSeconds float64 `json:"call_seconds,omitempty"`
	CPUSeconds  float64 `json:"cpu_seconds"`  // user + system
	PeakRSSMiB  float64 `json:"peak_rss_mib"` // the child's maximum resident set
	Err         string  `json:"error,omitempty"`
}

// run runs cmd to the end and measures it: wall time from start to exit,
// the CPU time and peak RSS the kernel accounts to the process, and the
// time of statebucket's call if the child reports one.
//
// cmd runs under launch, the program of bench/harness/launch, which
// starts it, waits for it and reports: Linux counts in a child's peak RSS
// the peak of the process that started it, and the harness holds tens of
// MiB where launch holds a few.
func run(ctx context.Context, launch string, cmd *exec.Cmd) sample {
	r, w, err := os.Pipe()
	if err != nil {
		return sample{Err: err.Error()}
	}
	defer r.Close()
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	callTime, err := os.CreateTemp("", "statebucket-bench-call-")
	if err != nil {
		return sample{Err: err.Error()}
	}
	callTime.Close()
	defer os.Remove(callTime.Name())
	env = append(env[:len(env):len(env)], envCallTime+"="+callTime.Name())
	launcher := exec.CommandContext(ctx, launch, append([]string{cmd.Path}, cmd.Args[1:]...)...)
	launcher.Env = env
	launcher.ExtraFiles = []*os.File{w}
	var stderr tail
	launcher.Stderr = &stderr
	// The launcher and the command form a process group, stopped as one.
	launcher.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	launcher.Cancel = func() error { return syscall.Kill(-launcher.Process.Pid, syscall.SIGKILL) }
	err = launcher.Start()
	w.Close()
	if err != nil {
		return sample{Err: err.Error()}
	}
	report, rerr := io.ReadAll(r)
	err = errors.Join(launcher.Wait(), rerr)
	var s sample
	if jerr := json.Unmarshal(report, &s); jerr != nil {
		return sample{Err: strings.TrimSpace(fmt.Sprintf("launcher: %v: %s", errors.Join(err, jerr), stderr.String()))}
	}
	if s.Err != "" {
		s.Err = strings.TrimSpace(s.Err + ": " + stderr.String())
	}
	if data, err := os.ReadFile(callTime.Name()); err == nil && len(data) > 0 {
		s.CallSeconds, _ = strconv.ParseFloat(string(data), 64)
	}
	return s
}

// childCmd returns the command that runs spec in a new process of the
// harness binary bin, or of this very one if bin is "" (see childMain).
func childCmd(ctx context.Context, bin string, spec childSpec) (*exec.Cmd, error) {
	self := bin
	if self == "" {
		var err error
		if self, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	data, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), envChild+"="+string(data))
	return cmd, nil
}

// tail keeps the last bytes written to it: the end of a child's stderr.
type tail struct{ buf []byte }

const tailSize = 600

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailSize {
		t.buf = t.buf[len(t.buf)-tailSize:]
	}
	return len(p), nil
}

func (t *tail) String() string { return string(bytes.ToValidUTF8(t.buf, []byte("?"))) }

// harnessTB lets the harness use package testserver outside a test: it
// implements the methods testserver calls; a failure panics with a
// tbFailure, which do turns into an error. The embedded TB is nil, so a
// method testserver starts calling fails loudly.
type harnessTB struct {
	testing.TB
	cleanups []func()
}

// tbFailure is a Fatal or Skip of a harnessTB.
type tbFailure struct{ msg string }

func (t *harnessTB) Helper()          {}
func (t *harnessTB) Cleanup(f func()) { t.cleanups = append(t.cleanups, f) }
func (t *harnessTB) Fatal(args ...any) {
	panic(tbFailure{fmt.Sprint(args...)})
}
func (t *harnessTB) Fatalf(format string, args ...any) {
	panic(tbFailure{fmt.Sprintf(format, args...)})
}
func (t *harnessTB) Skip(args ...any) { t.Fatal(args...) }
func (t *harnessTB) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

// do calls fn, returning a Fatal or Skip of t as an error.
func (t *harnessTB) do(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(tbFailure)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("%s", f.msg)
		}
	}()
	fn()
	return nil
}

// cleanup runs the functions registered with Cleanup, last first.
func (t *harnessTB) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	t.cleanups = nil
}

// withTB calls fn with a new harnessTB, and cleans it up.
func withTB(fn func(tb *harnessTB)) error {
	tb := &harnessTB{}
	defer tb.cleanup()
	return tb.do(func() { fn(tb) })
}
