package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain lets the test binary serve as the harness's child: the
// in-process contenders re-execute it.
func TestMain(m *testing.M) {
	childMain()
	os.Exit(m.Run())
}

func TestBlobSizes(t *testing.T) {
	sizes, err := blobSizes("3x4KiB")
	require.NoError(t, err)
	assert.Equal(t, []int64{4 << 10, 4 << 10, 4 << 10}, sizes)

	sizes, err = blobSizes("1x1GiB")
	require.NoError(t, err)
	assert.Equal(t, []int64{1 << 30}, sizes)

	tail, err := blobSizes(longTail)
	require.NoError(t, err)
	require.Len(t, tail, tailCount+1)
	assert.Equal(t, int64(tailBig), tail[tailCount])
	for _, s := range tail[:tailCount] {
		assert.True(t, s >= tailMin && s <= tailMax, "size %d out of range", s)
	}
	again, err := blobSizes(longTail)
	require.NoError(t, err)
	assert.Equal(t, tail, again, "the long tail is the same on every run")
	total, err := totalSize(longTail)
	require.NoError(t, err)
	assert.InDelta(t, 16.5, float64(total)/(1<<30), 2, "the long tail is about 16 GiB")

	for _, bad := range []string{"", "10x", "x4KiB", "0x4KiB", "10x4kb", "tail"} {
		_, err := blobSizes(bad)
		assert.Error(t, err, "workload %q", bad)
	}
}

func TestPattern(t *testing.T) {
	read := func(seed uint64, size int64, chunk int) []byte {
		var out bytes.Buffer
		p := newPattern(seed, size)
		buf := make([]byte, chunk)
		for {
			n, err := p.Read(buf)
			out.Write(buf[:n])
			if err == io.EOF {
				return out.Bytes()
			}
			require.NoError(t, err)
		}
	}
	a := read(1, 1000, 7)
	assert.Len(t, a, 1000)
	assert.Equal(t, a, read(1, 1000, 4096), "the bytes do not depend on the reads' sizes")
	assert.NotEqual(t, a, read(2, 1000, 7), "blobs differ")
}

func TestMedian(t *testing.T) {
	s := median([]sample{{Seconds: 3}, {Err: "boom"}, {Seconds: 1}, {Seconds: 2}, {Seconds: 9}})
	assert.Equal(t, 2.0, s.Seconds, "the failed run is left out; of four, the lower middle")
	assert.Equal(t, "boom", median([]sample{{Err: "boom"}}).Err)
}

// TestLocalDirectory runs the local-directory contenders, through the
// launcher, on two tiny workloads for two rounds, and checks the table.
func TestLocalDirectory(t *testing.T) {
	ctx := context.Background()
	launch := filepath.Join(t.TempDir(), "launch")
	require.NoError(t, goBuild(ctx, launch, "bench/harness/launch"))
	cfg := config{
		workloads: []string{"40x4KiB", "2x1MiB"},
		backends:  []string{"file"},
		levels:    []int{1, 4},
		rounds:    2,
		data:      t.TempDir(),
		warmup:    true,
		tools:     tools{launch: launch},
		log:       io.Discard,
	}
	res, err := measureAll(ctx, cfg)
	require.NoError(t, err)
	res.compute()
	require.Len(t, res.Warmups, len(cfg.workloads), "one uncounted writer per workload and backend")
	for i, u := range res.Warmups {
		assert.Equal(t, cfg.workloads[i], u.Workload)
		assert.Equal(t, opWrite, u.Op, "the first writer of the first round warms up")
		assert.Positive(t, u.Seconds)
		assert.Empty(t, u.Err)
	}

	type key struct{ workload, op, family string }
	got := map[key]row{}
	for _, r := range res.Rows {
		got[key{r.Workload, r.Op, r.Family}] = r
		assert.Empty(t, r.Note, "%s %s %s", r.Workload, r.Op, r.Contender)
		assert.Len(t, r.Samples, cfg.rounds, "%s %s %s", r.Workload, r.Op, r.Contender)
		assert.Positive(t, r.Seconds)
		assert.Positive(t, r.MiBPS)
		assert.InDelta(t, float64(r.Bytes)/(1<<20)/r.Seconds, r.MiBPS, 1e-9)
		assert.InDelta(t, float64(r.Objects)/r.Seconds, r.ObjectsPS, 1e-9)
		if r.Op == opReexport {
			assert.Zero(t, r.VsBare, "a re-export is compared with the first export, not a bare loop")
		} else {
			assert.Positive(t, r.VsBare)
		}
		assert.Zero(t, r.VsPeer, "no peer runs on a local directory")
		// The launcher's own few MiB are the floor; a Go child holds more.
		assert.Greater(t, r.PeakRSSMiB, 4.0)
		assert.Less(t, r.PeakRSSMiB, 1024.0)
		assert.GreaterOrEqual(t, r.CPUSeconds, 0.0)
	}
	for _, w := range []struct {
		name  string
		count int
		bytes int64
	}{{"40x4KiB", 40, 40 << 12}, {"2x1MiB", 2, 2 << 20}} {
		for _, op := range []string{opWrite, opReadHash} {
			r, ok := got[key{w.name, op, familyBare}]
			require.True(t, ok, "%s %s: bare row", w.name, op)
			assert.True(t, strings.HasSuffix(r.Contender, "(best)"), r.Contender)
			assert.Equal(t, 1.0, r.VsBare, "the best bare loop is its own reference")
		}
		for _, op := range []string{opExport, opReexport, opImport} {
			r, ok := got[key{w.name, op, familyStatebucket}]
			require.True(t, ok, "%s %s: statebucket row", w.name, op)
			assert.Equal(t, w.count, r.Objects)
			assert.Equal(t, w.bytes, r.Bytes)
			assert.Positive(t, r.CallSeconds, "%s %s: the child timed its call", w.name, op)
			assert.Less(t, r.CallSeconds, r.Seconds, "%s %s: the call is part of the run", w.name, op)
		}
		for _, op := range []string{opWrite, opReadHash} {
			assert.Zero(t, got[key{w.name, op, familyBare}].CallSeconds, "a bare loop has no call to time")
		}
	}
	assert.Len(t, res.Rows, 10, "one row per workload and op: the bare loops at their best level only")
	assert.Len(t, res.Targets, 12, "a speed and a memory target per statebucket row")

	var out bytes.Buffer
	res.print(&out, false)
	assert.Contains(t, out.String(), "2x1MiB    file     export")
	assert.Contains(t, out.String(), "rounds s")
	assert.Contains(t, out.String(), "targets of issue 11")
	assert.Contains(t, out.String(), "the page cache as the runs before left it")
	assert.Contains(t, out.String(), "Warm-up runs, before the rounds, not counted: 40x4KiB file write+fsync bare c=1 ")

	path := filepath.Join(t.TempDir(), "results.json")
	require.NoError(t, res.writeJSON(path))
	again, err := readResults(path)
	require.NoError(t, err)
	assert.Equal(t, res.Rows, again.Rows)
	assert.Equal(t, res.Targets, again.Targets, "a report read back checks the same targets")
	var md bytes.Buffer
	again.print(&md, true)
	assert.Contains(t, md.String(), "| 2x1MiB | file | export | statebucket |")

	res.CachesDropped = true // as -drop-caches records it, and a report says
	require.NoError(t, res.writeJSON(path))
	again, err = readResults(path)
	require.NoError(t, err)
	md.Reset()
	again.print(&md, true)
	assert.Contains(t, md.String(), "the page cache dropped before each run")
	assert.Len(t, again.FreshPageMicros, 2, "the run probed fresh memory at its start and end")
	assert.Contains(t, md.String(), fmt.Sprintf("First touch of a fresh page of memory: %.2f µs at the start, %.2f µs at the end", again.FreshPageMicros[0], again.FreshPageMicros[1]))
}

// TestSpread gives the fastest and the slowest of the rounds that ran
// through.
func TestSpread(t *testing.T) {
	assert.Equal(t, "-", spread([]sample{{Seconds: 2}}), "one round has no spread")
	assert.Equal(t, "-", spread([]sample{{Seconds: 2}, {Err: "exit status 1"}}))
	assert.Equal(t, "1.50–3.25", spread([]sample{{Seconds: 2}, {Seconds: 3.25}, {Err: "killed"}, {Seconds: 1.5}}))
}

// TestProbeFreshMemory times the first touch of fresh pages.
func TestProbeFreshMemory(t *testing.T) {
	us, err := probeFreshMemory()
	require.NoError(t, err)
	assert.Positive(t, us, "touching %d MiB takes time", probeSize>>20)
}

// TestReexportTarget compares a re-export with the first export by the
// time of their calls when both were timed, by wall time otherwise.
func TestReexportTarget(t *testing.T) {
	first := row{Seconds: 2, CallSeconds: 1.8}
	got := reexportTarget("w", row{Seconds: 0.25, CallSeconds: 0.09}, first)
	assert.True(t, got.Holds, got.Text)
	assert.Contains(t, got.Text, "0.050x the time of the first export's call")
	assert.Contains(t, got.Text, "0.125x their processes' wall times")
	got = reexportTarget("w", row{Seconds: 0.25, CallSeconds: 0.2}, first)
	assert.False(t, got.Holds, got.Text)
	got = reexportTarget("w", row{Seconds: 0.25}, first) // a report from before call times
	assert.False(t, got.Holds, got.Text)
	assert.Contains(t, got.Text, "0.125x the time of the first export")
	got = reexportTarget("w", row{Seconds: 0.15}, row{Seconds: 2})
	assert.True(t, got.Holds, got.Text)
}

// TestMissingPeer shows a peer that is not installed as a row saying so,
// with no figures and no ratio.
func TestMissingPeer(t *testing.T) {
	w := &workload{Name: "1x4KiB", Blobs: []blob{{Key: "k", Size: 4096}}}
	res := &results{}
	res.add(w, "s3", contender{name: peerAWS, family: familyPeer, op: opUpload, up: true}, sample{Err: "not installed: run scripts/bench-tools.sh"})
	res.add(w, "s3", contender{name: "statebucket copy", family: familyStatebucket, op: opUpload, up: true}, sample{Seconds: 2, PeakRSSMiB: 40})
	res.compute()
	require.Len(t, res.Rows, 2)
	assert.Equal(t, "not installed: run scripts/bench-tools.sh", res.Rows[0].Note)
	assert.Zero(t, res.Rows[0].Seconds)
	assert.Zero(t, res.Rows[1].VsPeer, "no peer ran")
	var out bytes.Buffer
	res.print(&out, false)
	assert.Contains(t, out.String(), "not installed: run scripts/bench-tools.sh")
	assert.Contains(t, out.String(), "1x4KiB s3 copy to, statebucket copy: no peer ran: does not hold")
}
