package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/sources"
	"github.com/statebucket/statebucket/visitors"
)

const (
	demoAccount = "000000000000"
	demoRegion  = "us-east-1"
)

type demoResult struct {
	Repository    string        `json:"repository"`
	Snapshot      digest.Digest `json:"snapshot"`
	Objects       int           `json:"objects"`
	Blobs         int           `json:"blobs"`
	Bytes         int64         `json:"bytes"`
	Uploaded      int           `json:"uploaded_blobs"`
	UploadedBytes int64         `json:"uploaded_bytes"`
	AlreadyStored int           `json:"already_stored_blobs"`
	ExportSeconds float64       `json:"export_seconds"`
	ImportSeconds float64       `json:"import_seconds"`
	ExportMiBps   float64       `json:"export_mib_per_s"`
	ImportMiBps   float64       `json:"import_mib_per_s"`
	Matches       bool          `json:"restored_state_matches"`
	DryRun        bool          `json:"dry_run,omitempty"`
}

func (a *app) demoCmd() *cobra.Command {
	var objects int
	var size string
	var seed int64
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Fill a mock S3, export it, import it into a fresh mock, and compare",
		Long: `demo fills the reference mock S3 with --objects objects of mixed sizes up to
--size bytes (some with awkward keys: NUL bytes, "..", invalid UTF-8, 4 KiB
long), exports it to the repository, imports the snapshot into a fresh mock,
checks that both hold the same state, and prints the snapshot id, counts,
bytes, time and throughput. Export and import throughput are both the
snapshot's bytes over the step's wall time, in MiB/s. Run it twice: the
second export uploads nothing and yields the same id.

With --dry-run, demo only computes the id the export would commit, hashing
every blob and touching no storage, and prints it: the id a CI job can key
a cache on.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			max, err := parseSize(size)
			if err != nil {
				return usageError{fmt.Errorf("--size: %w", err)}
			}
			if objects < 1 {
				return usageError{fmt.Errorf("--objects must be at least 1, not %d", objects)}
			}
			if err := checkDemoSize(objects, max); err != nil {
				return usageError{err}
			}
			return a.demo(cmd.Context(), objects, max, seed, dryRun)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the snapshot id the export would commit, writing nothing")
	cmd.Flags().IntVar(&objects, "objects", 1000, "number of objects to create")
	cmd.Flags().StringVar(&size, "size", "64KiB", "largest object size (bytes, or with KiB, MiB, GiB)")
	cmd.Flags().Int64Var(&seed, "seed", 1, "seed for keys, sizes and contents")
	return cmd
}

// Limits of the demo, which holds its whole state in memory.
const (
	maxDemoObjects = 10_000_000
	// demoObjectMemory is what an object costs the demo beyond its bytes
	// (keys of up to 4 KiB, maps, manifest entries), at most.
	demoObjectMemory = 8 << 10
	// defaultDemoMemory is the memory the demo may use where the
	// available memory is unknown.
	defaultDemoMemory = 4 << 30
)

// checkDemoSize refuses a demo the machine cannot hold. At its peak the
// demo holds four copies of the state (the filled mock, the restored one,
// and both read back to compare), and the filled objects average under
// 0.3 × --size bytes.
func checkDemoSize(objects int, maxSize int64) error {
	if objects > maxDemoObjects {
		return fmt.Errorf("--objects %d is more than the demo's limit of %d objects", objects, maxDemoObjects)
	}
	need := float64(objects) * (4*0.3*float64(maxSize) + demoObjectMemory)
	avail, source := availableMemory()
	if need > float64(avail) {
		return fmt.Errorf("%d objects of up to %s need about %s of memory, more than the limit of %s (%s); lower --objects or --size",
			objects, humanBytes(maxSize), humanBytes(int64(min(need, 1<<62))), humanBytes(avail), source)
	}
	return nil
}

// availableMemory returns the memory the demo may use, and where that
// figure comes from: MemAvailable in /proc/meminfo on Linux, else
// defaultDemoMemory.
func availableMemory() (int64, string) {
	data, err := os.ReadFile("/proc/meminfo")
	if err == nil {
		for line := range strings.Lines(string(data)) {
			if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
				kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				if err == nil && kb > 0 {
					return kb << 10, "available memory, by /proc/meminfo"
				}
			}
		}
	}
	return defaultDemoMemory, "the demo's limit where the available memory is unknown"
}

func (a *app) demo(ctx context.Context, objects int, maxSize int64, seed int64, dryRun bool) error {
	repo, err := a.openRepo(ctx)
	if err != nil {
		return err
	}
	defer repo.Close()

	src := coretest.NewObjectStore()
	n, total, err := coretest.Fill(ctx, src, demoAccount, demoRegion, coretest.FillOptions{Objects: objects, Size: int(maxSize), Seed: seed, Hostile: true})
	if err != nil {
		return fmt.Errorf("demo: fill the mock: %w", err)
	}
	res := demoResult{Repository: repo.Location(), Objects: n, Bytes: total}

	bar := a.newProgress("export", int64(n))
	var est visitors.Stats
	start := time.Now()
	m, err := snapshot.Export(ctx, repo, src, demoAccount, demoRegion, &snapshot.ExportOptions{
		SigningKey: a.signingKey,
		Stats:      &est,
		Visitor:    visitors.Options{OnBlob: func(visitors.Event) { bar.add(1) }},
		DryRun:     dryRun,
	})
	bar.finish()
	if err != nil {
		return err
	}
	res.ExportSeconds = time.Since(start).Seconds()
	res.Snapshot, res.Blobs = m.ID, len(m.Blobs)
	res.Uploaded, res.UploadedBytes, res.AlreadyStored = est.Uploaded, est.UploadedBytes, est.Skipped
	if dryRun {
		res.DryRun = true
		if a.json {
			a.writeJSON(a.stdout, res)
		} else {
			fmt.Fprintf(a.stdout, "%s\n", res.Snapshot)
		}
		return nil
	}

	dst := coretest.NewObjectStore()
	bar = a.newProgress("import", int64(len(m.Blobs)))
	start = time.Now()
	_, err = snapshot.Import(ctx, repo, dst, demoAccount, demoRegion, m.ID.String(), &snapshot.ImportOptions{
		Manifest: manifest.DecodeOptions{HMACKey: a.signingKey},
		Source:   sources.Options{OnBlob: func(string, int64) { bar.add(1) }},
	})
	bar.finish()
	if err != nil {
		return err
	}
	res.ImportSeconds = time.Since(start).Seconds()
	res.ExportMiBps = mibps(total, res.ExportSeconds)
	res.ImportMiBps = mibps(total, res.ImportSeconds)
	res.Matches, err = sameState(ctx, src, dst)
	if err != nil {
		return err
	}

	if a.json {
		a.writeJSON(a.stdout, res)
	} else {
		w := a.stdout
		fmt.Fprintf(w, "repository  %s\n", res.Repository)
		fmt.Fprintf(w, "snapshot    %s\n", res.Snapshot)
		fmt.Fprintf(w, "filled      %d objects, %s, in mock %s %s/%s\n", res.Objects, humanBytes(total), src.ServiceName(), demoAccount, demoRegion)
		// Both rates are the snapshot's bytes over the wall time of the
		// whole step, so export and import compare directly.
		fmt.Fprintf(w, "exported    %d blobs, %s, in %.2fs (%.1f MiB/s): %d uploaded (%s), %d already stored or duplicates\n",
			res.Blobs, humanBytes(total), res.ExportSeconds, res.ExportMiBps, res.Uploaded, humanBytes(res.UploadedBytes), res.AlreadyStored)
		fmt.Fprintf(w, "imported    %d blobs, %s, in %.2fs (%.1f MiB/s) into a fresh mock\n",
			res.Blobs, humanBytes(total), res.ImportSeconds, res.ImportMiBps)
	}
	if !res.Matches {
		return fmt.Errorf("demo: the restored state differs from the exported state")
	}
	if !a.json {
		fmt.Fprintln(a.stdout, "restored state matches the exported state")
	}
	return nil
}

// sameState compares two object stores' views and blob bytes.
func sameState(ctx context.Context, a, b *coretest.ObjectStore) (bool, error) {
	va, ba := &coretest.MemoryVisitor{}, &coretest.MemoryVisitor{}
	viewA, err := a.SnapshotWithBlobs(ctx, demoAccount, demoRegion, va)
	if err != nil {
		return false, err
	}
	viewB, err := b.SnapshotWithBlobs(ctx, demoAccount, demoRegion, ba)
	if err != nil {
		return false, err
	}
	if !reflect.DeepEqual(viewA, viewB) {
		return false, nil
	}
	blobsA, blobsB := va.Blobs(), ba.Blobs()
	if len(blobsA) != len(blobsB) {
		return false, nil
	}
	for k, v := range blobsA {
		if w, ok := blobsB[k]; !ok || !bytes.Equal(v, w) {
			return false, nil
		}
	}
	return true, nil
}

func mibps(bytes int64, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return float64(bytes) / (1 << 20) / seconds
}

// parseSize reads "1234", "64KiB", "1.5MiB", "2GiB" (also KB, MB, GB as
// powers of 1000, and K, M, G as powers of 1024).
func parseSize(arg string) (int64, error) {
	s := strings.TrimSpace(arg)
	units := []struct {
		suffix string
		mult   float64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1},
	}
	mult := 1.0
	for _, u := range units {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f*mult > 1<<40 {
		return 0, fmt.Errorf("size %q: want a number of bytes up to 1 TiB, optionally with KiB, MiB, GiB or TiB", arg)
	}
	return int64(f * mult), nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
