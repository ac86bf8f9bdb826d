// Command launch runs the command its arguments name, waits for it, and
// writes on file descriptor 3, as one JSON object, its wall time, its CPU
// time (user + system) and its peak RSS: the sample of one contender of
// the benchmark harness (package bench/harness), which builds and starts
// it.
//
// It is a program of its own, linking little, because Linux counts in a
// child's peak RSS the peak of the process that started it (whose memory
// the child shares until it calls exec): this one holds a few MiB, where
// the harness holds tens.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// report is what launch writes on descriptor 3.
type report struct {
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	Err        string  `json:"error,omitempty"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: launch COMMAND [ARG...] 3>REPORT")
		os.Exit(2)
	}
	out := os.NewFile(3, "report")
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stderr = os.Stderr
	start := time.Now()
	err := cmd.Run()
	r := report{Seconds: time.Since(start).Seconds()}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.CPUSeconds = seconds(ru.Utime) + seconds(ru.Stime)
			r.PeakRSSMiB = float64(ru.Maxrss) / 1024 // KiB on Linux
		}
	}
	if err != nil {
		r.Err = err.Error()
	}
	if err := json.NewEncoder(out).Encode(r); err != nil {
		fmt.Fprintf(os.Stderr, "launch: %v\n", err)
		os.Exit(1)
	}
}

func seconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}
