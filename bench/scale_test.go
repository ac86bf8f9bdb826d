package bench

import (
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
)

// scaleFigure is one measured operation of the scale benchmarks.
type scaleFigure struct {
	name     string  // what was measured, e.g. "manifest 1000000 entries"
	op       string  // e.g. "encode"
	secs     float64 // wall time
	count    int     // items handled (entries, snapshots, blobs)
	heapMiB  float64 // peak sampled heap during the operation
	allocMiB float64 // bytes allocated during the operation
}

var (
	scaleMu      sync.Mutex
	scaleFigures []scaleFigure
	scaleRatios  []string
)

// scaleMeter measures one operation: wall time, peak heap and allocation.
type scaleMeter struct {
	p     *peak
	alloc uint64
	start time.Time
}

func startScale() *scaleMeter {
	p := startPeak()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return &scaleMeter{p: p, alloc: ms.TotalAlloc, start: time.Now()}
}

// end records the operation and returns its figure.
func (s *scaleMeter) end(name, op string, count int) scaleFigure {
	secs := time.Since(s.start).Seconds()
	heap, _ := s.p.end()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	f := scaleFigure{name: name, op: op, secs: secs, count: count, heapMiB: heap, allocMiB: float64(ms.TotalAlloc-s.alloc) / (1 << 20)}
	scaleMu.Lock()
	scaleFigures = append(scaleFigures, f)
	scaleMu.Unlock()
	return f
}

// recordRatio records a ratio line printed under the scale table.
func recordRatio(format string, args ...any) {
	scaleMu.Lock()
	scaleRatios = append(scaleRatios, fmt.Sprintf(format, args...))
	scaleMu.Unlock()
}

// printScaleTable prints every scale figure, then the ratios.
func printScaleTable(w io.Writer) {
	scaleMu.Lock()
	defer scaleMu.Unlock()
	if len(scaleFigures) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scale case\top\tcount\tseconds\tµs/item\tpeak heap MiB\talloc MiB\t")
	for _, f := range scaleFigures {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.3f\t%.1f\t%.1f\t%.1f\t\n", f.name, f.op, f.count, f.secs, f.secs/float64(max(f.count, 1))*1e6, f.heapMiB, f.allocMiB)
	}
	tw.Flush()
	for _, r := range scaleRatios {
		fmt.Fprintln(w, r)
	}
}

// scaleManifest returns a manifest of n entries shaped like a real S3
// mock's: "bucket-07/path/0123/obj-000123\x00v1" keys, distinct digests,
// sizes of a few KiB.
func scaleManifest(tb testing.TB, n int) *manifest.Manifest {
	tb.Helper()
	blobs := make([]manifest.Entry, n)
	var seed [8]byte
	for i := range blobs {
		binary.LittleEndian.PutUint64(seed[:], uint64(i))
		blobs[i] = manifest.Entry{
			Key:    fmt.Sprintf("bucket-%02d/path/%04d/obj-%06d\x00v1", i%16, i/1000, i),
			Digest: digest.FromBytes(seed[:]),
			Size:   int64(1024 + i%8192),
		}
	}
	view := manifest.Object{Digest: digest.FromBytes([]byte("view")), Size: 4096}
	m, err := manifest.New("s3", acct, region, view, blobs)
	require.NoError(tb, err)
	return m
}

// BenchmarkScaleManifest encodes, decodes, validates, signs and verifies
// a 1,000,000-entry manifest (target: encode and decode under 3 s each).
func BenchmarkScaleManifest(b *testing.B) {
	const n = 1_000_000
	m := scaleManifest(b, n)
	name := fmt.Sprintf("manifest %d entries", n)
	key := []byte("bench-key")
	for b.Loop() {
		s := startScale()
		data, err := manifest.Encode(m)
		require.NoError(b, err)
		s.end(name, "encode", n)

		s = startScale()
		got, err := manifest.Decode(data, nil)
		require.NoError(b, err)
		s.end(name, "decode", n)
		require.Equal(b, m.ID, got.ID)

		s = startScale()
		require.NoError(b, m.Validate())
		s.end(name, "validate", n)

		s = startScale()
		_, err = m.Canonical()
		require.NoError(b, err)
		s.end(name, "canonical", n)

		signed := *m
		s = startScale()
		require.NoError(b, signed.Sign(key))
		s.end(name, "sign", n)

		sdata, err := manifest.Encode(&signed)
		require.NoError(b, err)
		s = startScale()
		_, err = manifest.Decode(sdata, &manifest.DecodeOptions{HMACKey: key})
		require.NoError(b, err)
		s.end(name, "decode+verify", n)
		recordRatio("manifest %d entries: %.1f MiB encoded", n, float64(len(data))/(1<<20))
	}
}

// TestScaleManifestRoundTrip checks that a manifest of 100,000 entries
// (10,000 with -short) survives encoding and decoding, signature included.
func TestScaleManifestRoundTrip(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	m := scaleManifest(t, n)
	key := []byte("k")
	require.NoError(t, m.Sign(key))
	data, err := manifest.Encode(m)
	require.NoError(t, err)
	got, err := manifest.Decode(data, &manifest.DecodeOptions{HMACKey: key})
	require.NoError(t, err)
	require.Equal(t, m, got)
	again, err := manifest.Encode(got)
	require.NoError(t, err)
	require.Equal(t, data, again)
}
