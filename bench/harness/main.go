// Command harness measures statebucket against bare SDK loops, rclone and
// the aws CLI on the same data, against the same servers, in one run, and
// prints one table (see docs/benchmarks.md). Run it with `make bench` or
// `make bench-quick`, or:
//
//	go run ./bench/harness -workloads 10000x4KiB,16x64MiB -backends s3 -rounds 3
//
// It starts MinIO and fake-gcs-server with package testserver (or uses the
// servers its environment variables name), generates each workload once as
// a statebucket file repository under -data, and runs every contender as a
// child process, so that its wall time, CPU time and peak RSS are its own.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/statebucket/statebucket/integration/testserver"
	"github.com/statebucket/statebucket/snapshot"
)

// config is what a run measures.
type config struct {
	workloads []string
	backends  []string
	levels    []int
	rounds    int
	ops       []string // the operations measured; nil means all
	data      string   // where workloads are generated, and kept
	jsonOut   string
	drop      bool // drop the page cache before each contender run (see dropCaches)
	warmup    bool // run each backend's first writer once, uncounted, per workload (see warmUp)
	tools     tools
	log       io.Writer // progress, one line per contender run
}

func main() {
	childMain()
	var cfg config
	var workloads, backends, levels, ops, compare, sbBin, rcloneBin, awsBin, report string
	var markdown bool
	flag.StringVar(&workloads, "workloads", "10000x4KiB,16x64MiB,1x1GiB,"+longTail, "comma-separated workloads: COUNTxSIZE (B, KiB, MiB, GiB) or "+longTail)
	flag.StringVar(&backends, "backends", "s3,gcs,file", "comma-separated backends: s3, gcs, file")
	flag.StringVar(&levels, "levels", "8,16,32,64", "concurrency levels of the bare loops; the table shows the best")
	flag.IntVar(&cfg.rounds, "rounds", 1, "rounds of every contender; the table shows the median")
	flag.StringVar(&ops, "ops", "", "comma-separated operations to measure (PUT, GET, GET+SHA-256, write+fsync, read+SHA-256, export, re-export, import, copy to, copy from); default all")
	flag.StringVar(&compare, "compare", "", "another build of this harness (go build -o FILE ./bench/harness): its export, re-export and import run as \"statebucket B\", alternating with this build's")
	flag.StringVar(&cfg.data, "data", filepath.Join(os.TempDir(), "statebucket-bench"), "directory of the generated workloads, kept for the next run")
	flag.StringVar(&cfg.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.StringVar(&sbBin, "statebucket", "", "statebucket CLI to run (default: built from ./cmd/statebucket)")
	flag.StringVar(&rcloneBin, "rclone", "", "rclone to run (default: ./bin/rclone, then PATH)")
	flag.StringVar(&awsBin, "aws", "", "aws CLI v2 to run (default: /usr/bin/aws, then PATH)")
	flag.StringVar(&report, "report", "", "measure nothing: print the table of the JSON results in this file")
	flag.BoolVar(&markdown, "markdown", false, "print the table in Markdown")
	flag.BoolVar(&cfg.warmup, "warmup", true, "before the rounds of each workload and backend, run the first writer once, uncounted, into a destination removed afterwards")
	flag.BoolVar(&cfg.drop, "drop-caches", false, "drop the page cache before each contender run, so that every run reads the workload from the disk (Linux, as root)")
	flag.Parse()
	if report != "" {
		res, err := readResults(report)
		if err != nil {
			fatalf("%v", err)
		}
		res.print(os.Stdout, markdown)
		return
	}
	cfg.workloads = split(workloads)
	cfg.backends = split(backends)
	for _, l := range split(levels) {
		n, err := strconv.Atoi(l)
		if err != nil || n <= 0 {
			fatalf("-levels: %q is not a positive number", l)
		}
		cfg.levels = append(cfg.levels, n)
	}
	cfg.log = os.Stderr
	if cfg.drop {
		if err := dropCaches(); err != nil {
			fatalf("-drop-caches: %v", err)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer testserver.StopAll()
	tmp, err := os.MkdirTemp("", "statebucket-bench-run-")
	if err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(tmp)
	cfg.tools = findTools(ctx, tmp, sbBin, rcloneBin, awsBin)
	cfg.tools.compare = compare
	cfg.ops = split(ops)
	for _, op := range cfg.ops {
		if !slices.Contains([]string{opPut, opGet, opGetHash, opWrite, opReadHash, opExport, opReexport, opImport, opUpload, opDownload}, op) {
			fatalf("-ops: unknown operation %q", op)
		}
	}
	cfg.tools.launch = filepath.Join(tmp, "launch")
	if err := goBuild(ctx, cfg.tools.launch, "bench/harness/launch"); err != nil {
		os.RemoveAll(tmp)
		fatalf("%v", err)
	}
	res, err := measureAll(ctx, cfg)
	if res != nil {
		res.compute()
		res.print(os.Stdout, markdown)
		if cfg.jsonOut != "" {
			if werr := res.writeJSON(cfg.jsonOut); werr != nil {
				err = errors.Join(err, werr)
			}
		}
	}
	if err != nil {
		testserver.StopAll()
		os.RemoveAll(tmp)
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "harness: "+format+"\n", args...)
	os.Exit(1)
}

func split(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// findTools builds the statebucket CLI into tmp unless sb names one, and
// finds rclone and the aws CLI v2; what is missing says why.
func findTools(ctx context.Context, tmp, sb, rclone, aws string) tools {
	var t tools
	t.statebucket = sb
	if sb == "" {
		t.statebucket = filepath.Join(tmp, "statebucket")
		if err := goBuild(ctx, t.statebucket, "cmd/statebucket"); err != nil {
			t.statebucketMissing = "not built: " + err.Error()
		}
	}
	t.rclone, t.rcloneMissing = findTool(ctx, rclone, "rclone", []string{"bin/rclone"}, "rclone v1.", "run scripts/bench-tools.sh")
	t.aws, t.awsMissing = findTool(ctx, aws, "aws", []string{"/usr/bin/aws"}, "aws-cli/2", "run scripts/bench-tools.sh (Debian's awscli)")
	return t
}

// goBuild builds the package of the module at pkg (a path under the
// module root) into the executable out.
func goBuild(ctx context.Context, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/statebucket/statebucket/"+pkg)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v: %s", pkg, err, strings.TrimSpace(string(msg)))
	}
	return nil
}

// findTool returns the first of explicit, candidates and name on PATH
// whose `--version` output holds want, or why there is none.
func findTool(ctx context.Context, explicit, name string, candidates []string, want, hint string) (string, string) {
	if explicit != "" {
		candidates = []string{explicit}
	} else if p, err := exec.LookPath(name); err == nil {
		candidates = append(candidates, p)
	}
	var seen []string
	for _, c := range candidates {
		out, err := exec.CommandContext(ctx, c, "--version").CombinedOutput()
		if err != nil {
			continue
		}
		if strings.Contains(string(out), want) {
			return c, ""
		}
		seen = append(seen, c+": "+strings.SplitN(string(out), "\n", 2)[0])
	}
	if len(seen) > 0 {
		return "", fmt.Sprintf("not installed (want %s; found %s): %s", want, strings.Join(seen, ", "), hint)
	}
	return "", "not installed: " + hint
}

// measureAll runs every contender of cfg and returns the results; after
// an error, it returns those it has.
func measureAll(ctx context.Context, cfg config) (*results, error) {
	res := &results{Started: time.Now().UTC(), Rounds: cfg.rounds, Statistic: "median", Levels: cfg.levels, CachesDropped: cfg.drop}
	var total int64
	for _, name := range cfg.workloads {
		n, err := totalSize(name)
		if err != nil {
			return nil, err
		}
		total += n
		fmt.Fprintf(cfg.log, "workload %s\n", describe(name))
	}
	fmt.Fprintf(cfg.log, "total %s of workloads, generated once under %s\n", humanBytes(total), cfg.data)
	before, err := probeFreshMemory()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.log, "first touch of a fresh page of memory: %.2f µs\n", before)
	defer func() {
		if after, err := probeFreshMemory(); err == nil {
			res.FreshPageMicros = []float64{before, after}
		}
	}()
	backends := make([]*backend, 0, len(cfg.backends))
	for _, name := range cfg.backends {
		b, err := startBackend(name, cfg.data)
		if err != nil {
			return nil, err
		}
		backends = append(backends, b)
	}
	for _, name := range cfg.workloads {
		w, err := loadWorkload(ctx, cfg.data, name)
		if err != nil {
			return res, err
		}
		for _, b := range backends {
			if err := measureBackend(ctx, cfg, res, w, b); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// startBackend starts (or finds) the server of the backend name.
func startBackend(name, data string) (*backend, error) {
	var b *backend
	tb := &harnessTB{}
	err := tb.do(func() {
		switch name {
		case "s3":
			b = s3Backend(testserver.S3(tb))
		case "gcs":
			b = gcsBackend(testserver.GCS(tb))
		}
	})
	switch {
	case err != nil:
		return nil, fmt.Errorf("backend %s: %w", name, err)
	case name == "file":
		if err := os.MkdirAll(data, 0o755); err != nil {
			return nil, err
		}
		return fileBackend(data), nil
	case b == nil:
		return nil, fmt.Errorf("backend %q: want s3, gcs or file", name)
	}
	return b, nil
}

// measureBackend runs every contender of b on w, cfg.rounds times: first
// those that write to b, then those that read from it, in an order that
// rotates from round to round. Readers read a seed: w's repository,
// copied to b once before the clock starts.
func measureBackend(ctx context.Context, cfg config, res *results, w *workload, b *backend) error {
	seed, removeSeed := filepath.Dir(w.Repo), func() {}
	if b.name != "file" {
		var err error
		seed, removeSeed, err = b.newDest()
		if err != nil {
			return err
		}
		if err := copyRepo(ctx, w.Repo, b.url(seed, "repo"), w.ID); err != nil {
			removeSeed()
			return fmt.Errorf("seed %s for %s: %w", b.name, w.Name, err)
		}
	}
	defer removeSeed()
	cs := contenders(b, cfg.levels, cfg.tools)
	if cfg.ops != nil {
		cs = slices.DeleteFunc(cs, func(c contender) bool { return !slices.Contains(cfg.ops, c.op) })
	}
	if cfg.warmup {
		if err := warmUp(ctx, cfg, res, w, b, seed, cs); err != nil {
			return err
		}
	}
	for round := range cfg.rounds {
		for _, up := range []bool{true, false} {
			group := slices.DeleteFunc(slices.Clone(cs), func(c contender) bool { return c.up != up })
			for i := range group {
				c := group[(i+round)%len(group)]
				if c.missing != "" {
					res.add(w, b.name, c, sample{Err: c.missing})
					continue
				}
				s, err := runOnce(ctx, cfg, w, b, seed, c)
				if err != nil {
					return err
				}
				fmt.Fprintf(cfg.log, "round %d %s %s %s %s: %.2fs %s\n", round+1, w.Name, b.name, c.op, c.name, s.Seconds, s.Err)
				res.add(w, b.name, c, s)
			}
		}
	}
	return ctx.Err()
}

// warmUp runs the first writer of the first round once before the
// rounds, and records it apart from the samples. A server that had
// removed nothing since the seed was copied to it ran the first timed
// writer up to twice as fast as the rest: one round of 10,000 small
// objects read MinIO's bare PUT loop at 11.1 s and then 20.9 and 20.4 s,
// fake-gcs-server's at 12.6 s and then 33-34 s (docs/benchmarks.md).
// After the warm-up, every timed writer follows a write and a removal,
// whichever comes first in the round.
func warmUp(ctx context.Context, cfg config, res *results, w *workload, b *backend, seed string, cs []contender) error {
	for _, c := range cs {
		if !c.up || c.missing != "" {
			continue
		}
		s, err := runOnce(ctx, cfg, w, b, seed, c)
		if err != nil {
			return err
		}
		fmt.Fprintf(cfg.log, "warm-up %s %s %s %s: %.2fs, not counted %s\n", w.Name, b.name, c.op, c.name, s.Seconds, s.Err)
		res.Warmups = append(res.Warmups, warmup{Workload: w.Name, Backend: b.name, Op: c.op, Contender: c.name, Seconds: s.Seconds, Err: s.Err})
		return nil
	}
	return nil
}

// runOnce runs c once on a fresh destination, removed afterwards.
func runOnce(ctx context.Context, cfg config, w *workload, b *backend, seed string, c contender) (sample, error) {
	s := setup{w: w, b: b, seed: seed}
	var remove func()
	var err error
	if c.up {
		s.dest, remove, err = b.newDest()
	} else {
		s.down, err = os.MkdirTemp(filepath.Dir(filepath.Dir(w.Repo)), "down-")
		remove = func() { os.RemoveAll(s.down) }
	}
	if err != nil {
		return sample{}, err
	}
	defer remove()
	cmd, err := c.cmd(ctx, s)
	if err != nil {
		return sample{}, err
	}
	syscall.Sync() // the previous contender's dirty pages are not this one's cost
	if cfg.drop {
		if err := dropCaches(); err != nil {
			return sample{}, err
		}
	}
	return run(ctx, cfg.tools.launch, cmd), ctx.Err()
}

// dropCaches writes back what is dirty and empties the page cache (and
// the caches of directory entries and inodes), so that the next run reads
// the workload and the repository from the disk, whatever the runs before
// it read: how much of a workload is cached moves a directory's rows and
// the readers' by more than the targets' margins (docs/benchmarks.md).
// It needs Linux and root.
func dropCaches() error {
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		return fmt.Errorf("drop the page cache (needs Linux and root): %w", err)
	}
	return nil
}

// copyRepo copies the snapshot id from the repository at from to the one
// at to.
func copyRepo(ctx context.Context, from, to, id string) error {
	src, err := snapshot.Open(ctx, from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := snapshot.Open(ctx, to)
	if err != nil {
		return err
	}
	defer dst.Close()
	_, err = snapshot.Copy(ctx, src, dst, []string{id}, nil)
	return err
}
