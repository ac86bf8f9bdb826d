package bench

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/statebucket/statebucket/integration/testserver"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store"
)

// rawStore is the baseline: a bare put and get of the same bytes.
type rawStore interface {
	Put(ctx context.Context, name string, r io.Reader, size int64) error
	Get(ctx context.Context, name string) (io.ReadCloser, error)
}

// target is one backend under measurement.
type target struct {
	name        string
	cases       []benchCase
	concurrency int
	newRepo     func(b *testing.B) *snapshot.Repo // a fresh, empty repository
	newRaw      func(b *testing.B) rawStore       // a fresh, empty baseline store
}

// openRepo opens the repository at rawURL with a driver's open function;
// the repository is closed when the benchmark ends.
func openRepo[D store.Driver](b testing.TB, rawURL string, open func(context.Context, *url.URL) (D, error)) *snapshot.Repo {
	u, err := url.Parse(rawURL)
	if err != nil {
		b.Fatal(err)
	}
	drv, err := open(b.Context(), u)
	if err != nil {
		b.Fatal(err)
	}
	r := snapshot.New(store.New(drv, store.Redact(u), nil))
	b.Cleanup(func() { r.Close() })
	return r
}

type benchCase struct {
	count int
	size  int64
}

func (c benchCase) String() string {
	switch {
	case c.size >= 1<<20:
		return fmt.Sprintf("%dx%dMiB", c.count, c.size>>20)
	case c.size >= 1<<10:
		return fmt.Sprintf("%dx%dKiB", c.count, c.size>>10)
	}
	return fmt.Sprintf("%dx%dB", c.count, c.size)
}

func (c benchCase) bytes() int64 { return int64(c.count) * c.size }

// result is one measured operation.
type result struct {
	target, bcase, op string
	mibps             float64
	peakHeapMiB       float64
	peakRSSMiB        float64
}

var (
	resultsMu sync.Mutex
	results   = map[string]result{}
)

func record(r result) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	results[r.target+"|"+r.bcase+"|"+r.op] = r
}

func TestMain(m *testing.M) {
	code := m.Run()
	printTable(os.Stdout)
	printRefMockTable(os.Stdout)
	printScaleTable(os.Stdout)
	testserver.StopAll()
	os.Exit(code)
}

// printTable prints every engine result next to its baseline.
func printTable(w io.Writer) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if len(results) == 0 {
		return
	}
	keys := sortedResultKeys()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tcase\top\tMiB/s\tbaseline MiB/s\tratio\tbaseline+SHA-256 MiB/s\tratio\tpeak heap MiB\tpeak RSS MiB\t")
	for _, k := range keys {
		r := results[k]
		base, ok := results[r.target+"|"+r.bcase+"|"+baselineOf(r.op)]
		if r.op != "export" && r.op != "import" || !ok {
			continue
		}
		hashed := "-\t-"
		if h, ok := results[r.target+"|"+r.bcase+"|"+baselineOf(r.op)+"-sha256"]; ok {
			hashed = fmt.Sprintf("%.1f\t%.2f", h.mibps, r.mibps/h.mibps)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%.1f\t%.2f\t%s\t%.1f\t%.1f\t\n", r.target, r.bcase, r.op, r.mibps, base.mibps, r.mibps/base.mibps, hashed, r.peakHeapMiB, r.peakRSSMiB)
	}
	tw.Flush()
}

// sortedResultKeys returns the keys of results, sorted. The caller holds
// resultsMu.
func sortedResultKeys() []string {
	keys := make([]string, 0, len(results))
	for k := range results {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func baselineOf(op string) string {
	if op == "export" {
		return "baseline-put"
	}
	return "baseline-get"
}

// peak samples the heap while an operation runs and reads the process's
// peak RSS (VmHWM, reset at the start where the kernel allows).
type peak struct {
	stop, done chan struct{}
	heap       uint64
}

func startPeak() *peak {
	syscall.Sync() // earlier cases' dirty pages are not this one's cost
	runtime.GC()
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // resets VmHWM; best effort
	p := &peak{stop: make(chan struct{}), done: make(chan struct{})}
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	go func() {
		defer close(p.done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			p.heap = max(p.heap, sample[0].Value.Uint64())
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

func (p *peak) end() (heapMiB, rssMiB float64) {
	close(p.stop)
	<-p.done
	return float64(p.heap) / (1 << 20), vmHWM()
}

func vmHWM() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

const acct, region = "000000000000", "us-east-1"

// run measures every case of t: baseline put, export, baseline get, import.
func run(b *testing.B, t target) {
	for _, c := range t.cases {
		b.Run(c.String(), func(b *testing.B) {
			parent := b
			svc := &synthService{count: c.count, size: c.size}
			var raw rawStore
			b.Run("baseline-put", func(b *testing.B) {
				b.SetBytes(c.bytes())
				for b.Loop() {
					b.StopTimer()
					raw = t.newRaw(parent)
					if p, ok := raw.(interface{ prepare(benchCase) error }); ok {
						if err := p.prepare(c); err != nil {
							b.Fatal(err)
						}
					}
					p := startPeak()
					b.StartTimer()
					start := time.Now()
					if err := rawPut(b.Context(), raw, c, t.concurrency); err != nil {
						b.Fatal(err)
					}
					measure(t, c, "baseline-put", start, p)
				}
			})
			var repo *snapshot.Repo
			var id string
			b.Run("export", func(b *testing.B) {
				b.SetBytes(c.bytes())
				for b.Loop() {
					b.StopTimer()
					repo = t.newRepo(parent)
					p := startPeak()
					b.StartTimer()
					start := time.Now()
					m, err := snapshot.Export(b.Context(), repo, svc, acct, region, nil)
					if err != nil {
						b.Fatal(err)
					}
					measure(t, c, "export", start, p)
					id = m.ID.String()
				}
			})
			b.Run("baseline-get", func(b *testing.B) {
				b.SetBytes(c.bytes())
				for b.Loop() {
					p := startPeak()
					start := time.Now()
					if err := rawGet(b.Context(), raw, c, t.concurrency, false); err != nil {
						b.Fatal(err)
					}
					measure(t, c, "baseline-get", start, p)
				}
			})
			b.Run("baseline-get-sha256", func(b *testing.B) {
				b.SetBytes(c.bytes())
				for b.Loop() {
					p := startPeak()
					start := time.Now()
					if err := rawGet(b.Context(), raw, c, t.concurrency, true); err != nil {
						b.Fatal(err)
					}
					measure(t, c, "baseline-get-sha256", start, p)
				}
			})
			b.Run("import", func(b *testing.B) {
				b.SetBytes(c.bytes())
				for b.Loop() {
					p := startPeak()
					start := time.Now()
					if _, err := snapshot.Import(b.Context(), repo, &synthService{}, acct, region, id, nil); err != nil {
						b.Fatal(err)
					}
					measure(t, c, "import", start, p)
				}
			})
			runRefMock(b, t, c, repo)
		})
	}
}

func measure(t target, c benchCase, op string, start time.Time, p *peak) {
	secs := time.Since(start).Seconds()
	heap, rss := p.end()
	record(result{target: t.name, bcase: c.String(), op: op, mibps: float64(c.bytes()) / (1 << 20) / secs, peakHeapMiB: heap, peakRSSMiB: rss})
}

func rawPut(ctx context.Context, raw rawStore, c benchCase, conc int) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for i := range c.count {
		g.Go(func() error { return raw.Put(gctx, rawName(i), newSynthReader(int64(i), c.size), c.size) })
	}
	return g.Wait()
}

// rawGet reads every object back at conc concurrency, into SHA-256 when
// hash is set (the least an import that verifies digests must do).
func rawGet(ctx context.Context, raw rawStore, c benchCase, conc int, hash bool) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for i := range c.count {
		g.Go(func() error {
			rc, err := raw.Get(gctx, rawName(i))
			if err != nil {
				return err
			}
			defer rc.Close()
			var w io.Writer = io.Discard
			if hash {
				w = sha256.New()
			}
			n, err := io.Copy(w, rc)
			if err == nil && n != c.size {
				err = fmt.Errorf("baseline get %s: %d bytes, want %d", rawName(i), n, c.size)
			}
			return err
		})
	}
	return g.Wait()
}

func rawName(i int) string { return fmt.Sprintf("raw/%02x/blob-%06d", i%256, i) }

// dirRaw is the local-directory baseline: create, write, fsync, close.
type dirRaw struct{ root string }

func (d dirRaw) Put(_ context.Context, name string, r io.Reader, _ int64) error {
	p := filepath.Join(d.root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (d dirRaw) Get(_ context.Context, name string) (io.ReadCloser, error) {
	return os.Open(filepath.Join(d.root, filepath.FromSlash(name)))
}

func BenchmarkFile(b *testing.B) {
	run(b, target{
		name:        "file",
		cases:       []benchCase{{count: 10000, size: 4 << 10}, {count: 4, size: 64 << 20}, {count: 6, size: 42 << 20}},
		concurrency: 16,
		newRepo: func(b *testing.B) *snapshot.Repo {
			r, err := snapshot.Open(b.Context(), filepath.Join(b.TempDir(), "repo"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { r.Close() })
			return r
		},
		newRaw: func(b *testing.B) rawStore { return dirRaw{root: b.TempDir()} },
	})
}
