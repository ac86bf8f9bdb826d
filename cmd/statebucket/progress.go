package main

import (
	"fmt"
	"io"
	"sync"

	"github.com/schollz/progressbar/v3"
)

// progress shows how far a transfer is: a bar on a terminal, a plain line
// every quarter otherwise, nothing with --json. It is safe for concurrent
// use, since blobs move in parallel.
type progress struct {
	mu      sync.Mutex
	bar     *progressbar.ProgressBar
	w       io.Writer
	label   string
	total   int64
	done    int64
	quarter int64
}

func (a *app) newProgress(label string, total int64) *progress {
	p := &progress{label: label, total: total}
	switch {
	case a.json || total <= 0:
	case a.tty:
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(a.stderr),
			progressbar.OptionSetDescription(label),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("blobs"),
			progressbar.OptionThrottle(100_000_000),
			progressbar.OptionClearOnFinish(),
		)
	default:
		p.w = a.stderr
	}
	return p
}

// add records n more items done.
func (p *progress) add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	switch {
	case p.bar != nil:
		p.bar.Add64(n)
	case p.w != nil:
		for p.quarter < 4 && p.done*4 >= p.total*(p.quarter+1) {
			p.quarter++
			fmt.Fprintf(p.w, "%s: %d%% (%d/%d)\n", p.label, p.quarter*25, min(p.done, p.total), p.total)
		}
	}
}

// finish removes the bar.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Finish()
	}
}
