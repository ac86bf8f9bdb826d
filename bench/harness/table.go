package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// results are the samples of a run, by contender.
type results struct {
	Started   time.Time `json:"started"`
	CPUs      int       `json:"cpus"`
	Rounds    int       `json:"rounds"`
	Statistic string    `json:"statistic"` // of the rounds, per contender
	Levels    []int     `json:"bare_levels"`
	// CachesDropped says the page cache was dropped before each run.
	CachesDropped bool `json:"caches_dropped,omitempty"`
	// FreshPageMicros is the time to touch a page of fresh memory, at the
	// start of the run and at its end (see probeFreshMemory).
	FreshPageMicros []float64 `json:"fresh_page_us,omitempty"`
	// Warmups are the uncounted runs before the rounds (see warmUp).
	Warmups []warmup `json:"warmups,omitempty"`
	Rows    []row    `json:"rows"`
	Targets []target `json:"targets"`

	runs []*runs
}

// warmup is a run before the rounds, shown and not counted.
type warmup struct {
	Workload  string  `json:"workload"`
	Backend   string  `json:"backend"`
	Op        string  `json:"op"`
	Contender string  `json:"contender"`
	Seconds   float64 `json:"seconds"`
	Err       string  `json:"error,omitempty"`
}

// runs are the samples of one contender on one workload and backend.
type runs struct {
	w       *workload
	backend string
	c       contender
	samples []sample
}

// row is one line of the table: the median run of one contender.
type row struct {
	Workload  string  `json:"workload"`
	Backend   string  `json:"backend"`
	Op        string  `json:"op"`
	Contender string  `json:"contender"`
	Family    string  `json:"family"`
	Objects   int     `json:"objects"`
	Bytes     int64   `json:"bytes"`
	Seconds   float64 `json:"seconds"`
	// CallSeconds is the median run's time of statebucket's own call
	// (see sample.CallSeconds), 0 for other contenders.
	CallSeconds float64  `json:"call_seconds,omitempty"`
	ObjectsPS   float64  `json:"objects_per_s"`
	MiBPS       float64  `json:"mib_per_s"`
	PeakRSSMiB  float64  `json:"peak_rss_mib"`
	CPUSeconds  float64  `json:"cpu_seconds"`
	VsBare      float64  `json:"vs_bare,omitempty"` // bare loop's time / this row's
	VsPeer      float64  `json:"vs_peer,omitempty"` // best peer's time / this row's
	Samples     []sample `json:"samples"`
	Note        string   `json:"note,omitempty"`
}

// target is one of issue 11's targets, checked on one row.
type target struct {
	Text  string `json:"text"`
	Holds bool   `json:"holds"`
}

// add records a sample of c on w and backend.
func (r *results) add(w *workload, backend string, c contender, s sample) {
	for _, x := range r.runs {
		if x.w.Name == w.Name && x.backend == backend && x.c.id() == c.id() {
			x.samples = append(x.samples, s)
			return
		}
	}
	r.runs = append(r.runs, &runs{w: w, backend: backend, c: c, samples: []sample{s}})
}

// median returns the run of median wall time (the lower of the two middle
// ones for an even count) among those that succeeded, or the failure.
func median(samples []sample) sample {
	var ok []sample
	for _, s := range samples {
		if s.Err == "" {
			ok = append(ok, s)
		}
	}
	if len(ok) == 0 {
		return samples[len(samples)-1]
	}
	slices.SortFunc(ok, func(a, b sample) int { return cmpFloat(a.Seconds, b.Seconds) })
	return ok[(len(ok)-1)/2]
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compute turns the runs into rows: the median of each contender, the
// bare loops at their best level only, and the ratios. It fills Rows and
// Targets.
func (r *results) compute() {
	r.CPUs = runtime.NumCPU()
	r.Rows = nil
	for _, x := range r.runs {
		m := median(x.samples)
		row := row{Workload: x.w.Name, Backend: x.backend, Op: x.c.op, Contender: x.c.name, Family: x.c.family,
			Objects: len(x.w.Blobs), Bytes: x.w.bytes(), Samples: x.samples, Note: m.Err}
		if m.Err == "" {
			row.Seconds, row.CallSeconds, row.PeakRSSMiB, row.CPUSeconds = m.Seconds, m.CallSeconds, m.PeakRSSMiB, m.CPUSeconds
			row.ObjectsPS = float64(row.Objects) / m.Seconds
			row.MiBPS = float64(row.Bytes) / (1 << 20) / m.Seconds
		}
		if x.c.family == familyBare {
			if best, ok := r.bestBare(row); !ok || best != x.c.name {
				continue
			}
			row.Contender += " (best)"
		}
		r.Rows = append(r.Rows, row)
	}
	for i := range r.Rows {
		row := &r.Rows[i]
		if row.Seconds == 0 || row.Op == opReexport { // compared with the first export (see targets)
			continue
		}
		up := row.Op == opPut || row.Op == opWrite || row.Op == opExport || row.Op == opUpload
		if bare, ok := r.reference(*row, up); ok {
			row.VsBare = bare / row.Seconds
		}
		if peer, ok := r.bestPeer(*row, up); ok {
			row.VsPeer = peer / row.Seconds
		}
	}
	r.Targets = r.targets()
}

// bestBare returns the name of the fastest bare loop of row's workload,
// backend and operation.
func (r *results) bestBare(row row) (string, bool) {
	best, name := 0.0, ""
	for _, x := range r.runs {
		if x.c.family != familyBare || x.w.Name != row.Workload || x.backend != row.Backend || x.c.op != row.Op {
			continue
		}
		if m := median(x.samples); m.Err == "" && (name == "" || m.Seconds < best) {
			best, name = m.Seconds, x.c.name
		}
	}
	return name, name != ""
}

// reference returns the time of the bare loop a row of that direction is
// compared with: the best PUT (or write + fsync) for writers, the best
// GET + SHA-256 (or read + SHA-256) for readers.
func (r *results) reference(row row, up bool) (float64, bool) {
	ops := []string{opGetHash, opReadHash}
	if up {
		ops = []string{opPut, opWrite}
	}
	return r.fastest(row, func(x *runs) bool { return x.c.family == familyBare && slices.Contains(ops, x.c.op) })
}

// bestPeer returns the time of the faster of rclone tuned and the aws CLI
// in row's direction.
func (r *results) bestPeer(row row, up bool) (float64, bool) {
	return r.fastest(row, func(x *runs) bool {
		return x.c.family == familyPeer && x.c.up == up && (x.c.name == peerRcloneTuned || x.c.name == peerAWS)
	})
}

// fastest returns the least median time of the runs of row's workload and
// backend that match.
func (r *results) fastest(row row, match func(*runs) bool) (float64, bool) {
	best, found := 0.0, false
	for _, x := range r.runs {
		if x.w.Name != row.Workload || x.backend != row.Backend || !match(x) {
			continue
		}
		if m := median(x.samples); m.Err == "" && (!found || m.Seconds < best) {
			best, found = m.Seconds, true
		}
	}
	return best, found
}

// The targets of issue 11 this harness measures.
const (
	minVsBare   = 0.9
	minCopyPeer = 1.2
	maxRSSMiB   = 128
	maxReexport = 0.1 // of the first export's time
)

// targets checks issue 11's targets on the statebucket rows.
func (r *results) targets() []target {
	var ts []target
	for _, row := range r.Rows {
		if row.Family != familyStatebucket {
			continue
		}
		where := fmt.Sprintf("%s %s %s, %s", row.Workload, row.Backend, row.Op, row.Contender)
		if row.Seconds == 0 {
			ts = append(ts, target{Text: where + ": did not run: " + row.Note})
			continue
		}
		switch row.Op {
		case opExport, opImport:
			ts = append(ts, target{Text: fmt.Sprintf("%s: %.2fx the bare loop (want >= %.1f)", where, row.VsBare, minVsBare), Holds: row.VsBare >= minVsBare})
		case opUpload, opDownload:
			t := target{Text: where + ": no peer ran"}
			if row.VsPeer > 0 {
				t = target{Text: fmt.Sprintf("%s: %.2fx the faster of rclone tuned and the aws CLI (want >= %.1f)", where, row.VsPeer, minCopyPeer), Holds: row.VsPeer >= minCopyPeer}
			}
			ts = append(ts, t)
		case opReexport:
			t := target{Text: where + ": no export ran"}
			if first, ok := r.firstExport(row); ok {
				t = reexportTarget(where, row, first)
			}
			ts = append(ts, t)
		}
		ts = append(ts, target{Text: fmt.Sprintf("%s: peak RSS %.0f MiB (want < %d)", where, row.PeakRSSMiB, maxRSSMiB), Holds: row.PeakRSSMiB < maxRSSMiB})
	}
	return ts
}

// firstExport returns the row of statebucket's first export of row's
// workload on its backend, from the rows, which a report read back from
// JSON has too.
func (r *results) firstExport(row row) (row, bool) {
	for _, x := range r.Rows {
		if x.Workload == row.Workload && x.Backend == row.Backend && x.Family == familyStatebucket && x.Op == opExport && x.Seconds > 0 {
			return x, true
		}
	}
	return row, false
}

// reexportTarget checks the re-export of row against the first export:
// by the time of statebucket's calls when both were timed (a run's wall
// time also holds the start of its process and the loading of the
// workload, a fixed cost that is most of a re-export's), by wall time
// otherwise; the text gives both ratios.
func reexportTarget(where string, re, first row) target {
	wall := re.Seconds / first.Seconds
	if re.CallSeconds <= 0 || first.CallSeconds <= 0 {
		return target{Text: fmt.Sprintf("%s: %.3fx the time of the first export (want <= %.1f)", where, wall, maxReexport), Holds: wall <= maxReexport}
	}
	call := re.CallSeconds / first.CallSeconds
	return target{Text: fmt.Sprintf("%s: %.3fx the time of the first export's call, %.3fs against %.3fs (want <= %.1f; %.3fx their processes' wall times)",
		where, call, re.CallSeconds, first.CallSeconds, maxReexport, wall), Holds: call <= maxReexport}
}

// print writes the table, then the targets: aligned text, or Markdown
// (for docs/benchmarks.md).
func (r *results) print(w io.Writer, markdown bool) {
	cache := "the page cache as the runs before left it"
	if r.CachesDropped {
		cache = "the page cache dropped before each run"
	}
	fmt.Fprintf(w, "\n%s: %d CPUs, %d round(s), the %s of the rounds per row, %s; bare loops at the best of concurrency %v; ratios are speed ratios (reference time / row time); call s is statebucket's own call, timed in its process, whose time s also holds the process's start and the loading of the workload\n\n",
		r.Started.Format(time.DateTime+" MST"), r.CPUs, r.Rounds, r.Statistic, cache, r.Levels)
	if len(r.FreshPageMicros) == 2 {
		fmt.Fprintf(w, "First touch of a fresh page of memory: %.2f µs at the start, %.2f µs at the end (a fraction of a microsecond where the kernel owns the memory; more where a virtual machine's host gives free memory back lazily: the runs pay it for each page they take from free memory, the page cache they fill among them, docs/benchmarks.md)\n\n",
			r.FreshPageMicros[0], r.FreshPageMicros[1])
	}
	if len(r.Warmups) > 0 {
		runs := make([]string, len(r.Warmups))
		for i, u := range r.Warmups {
			runs[i] = fmt.Sprintf("%s %s %s %s %.2f s", u.Workload, u.Backend, u.Op, u.Contender, u.Seconds)
			if u.Err != "" {
				runs[i] += " (" + oneLine(u.Err) + ")"
			}
		}
		fmt.Fprintf(w, "Warm-up runs, before the rounds, not counted: %s\n\n", strings.Join(runs, "; "))
	}
	header := []string{"workload", "backend", "op", "contender", "time s", "rounds s", "call s", "objects/s", "MiB/s", "peak RSS MiB", "CPU s", "vs bare", "vs best peer", "note"}
	lines := [][]string{header}
	for _, row := range r.Rows {
		cells := []string{row.Workload, row.Backend, row.Op, row.Contender, "-", "-", "-", "-", "-", "-", "-", "-", "-", oneLine(row.Note)}
		if row.Seconds > 0 {
			call := "-"
			if row.CallSeconds > 0 {
				call = fmt.Sprintf("%.3f", row.CallSeconds)
			}
			cells = []string{row.Workload, row.Backend, row.Op, row.Contender,
				fmt.Sprintf("%.2f", row.Seconds), spread(row.Samples), call, perSecond(row.ObjectsPS), fmt.Sprintf("%.1f", row.MiBPS),
				fmt.Sprintf("%.0f", row.PeakRSSMiB), fmt.Sprintf("%.2f", row.CPUSeconds), ratio(row.VsBare), ratio(row.VsPeer), ""}
		}
		lines = append(lines, cells)
	}
	if markdown {
		for i, cells := range lines {
			fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
			if i == 0 {
				fmt.Fprintf(w, "|%s\n", strings.Repeat("---|", len(cells)))
			}
		}
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, cells := range lines {
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "\ntargets of issue 11 this run measured:")
	fmt.Fprintln(w)
	for _, t := range r.Targets {
		verdict := "does not hold"
		if t.Holds {
			verdict = "holds"
		}
		fmt.Fprintf(w, "- %s: %s\n", t.Text, verdict)
	}
	fmt.Fprintln(w, "- 100,000 blobs, the 1,000,000-entry manifest, listing 10,000 snapshots, export into a 1,000,000-blob repository: not measured by this harness; see `go test -run '^$' -bench Scale ./bench/` (docs/benchmarks.md, Scale)")
}

// spread returns the fastest and the slowest of the rounds that ran
// through, "min–max", or "-" for fewer than two: how far apart a row's
// rounds were, beside their median.
func spread(samples []sample) string {
	var secs []float64
	for _, s := range samples {
		if s.Err == "" && s.Seconds > 0 {
			secs = append(secs, s.Seconds)
		}
	}
	if len(secs) < 2 {
		return "-"
	}
	return fmt.Sprintf("%.2f–%.2f", slices.Min(secs), slices.Max(secs))
}

// readResults reads results writeJSON wrote.
func readResults(path string) (*results, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r results
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.Targets = r.targets()
	return &r, nil
}

// perSecond formats a rate with a decimal below 10, so that a workload of
// one blob does not read 0 objects/s.
func perSecond(x float64) string {
	if x < 10 {
		return fmt.Sprintf("%.2f", x)
	}
	return fmt.Sprintf("%.0f", x)
}

func ratio(x float64) string {
	if x == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", x)
}

// oneLine shortens a failure to one line of the table.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// writeJSON writes the results to path.
func (r *results) writeJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
