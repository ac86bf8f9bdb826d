package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/integration/testserver"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/s3store"
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

// scaleServices is how many services the populated snapshots spread over.
const scaleServices = 10

// populateSnapshots commits n snapshots of tiny states into r straight
// through the repository layer, a view and a manifest each (their blobs
// are not stored: listing does not read them), conc at a time. Snapshot i
// is of service "svc-<i%10>" and was created i milliseconds after a fixed
// time, so the newest is the last. It returns the manifests.
func populateSnapshots(ctx context.Context, r *snapshot.Repo, n, conc int) ([]*manifest.Manifest, error) {
	rr := repo.New(r.Store(), nil)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := make([]*manifest.Manifest, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for i := range n {
		g.Go(func() error {
			view := fmt.Appendf(nil, `{"snapshot":%d}`, i)
			var blobs []manifest.Entry
			for j := range 3 {
				key := fmt.Sprintf("bucket/obj-%d-%d", i, j)
				blobs = append(blobs, manifest.Entry{Key: key, Digest: digest.FromBytes([]byte(key)), Size: int64(len(key))})
			}
			m, err := manifest.New(fmt.Sprintf("svc-%d", i%scaleServices), acct, region,
				manifest.Object{Digest: digest.FromBytes(view), Size: int64(len(view))}, blobs)
			if err != nil {
				return err
			}
			m.Created = base.Add(time.Duration(i) * time.Millisecond)
			if err := rr.PutView(gctx, m, view); err != nil {
				return err
			}
			ms[i], err = rr.CommitManifest(gctx, m)
			return err
		})
	}
	return ms, g.Wait()
}

// bareReadManifests is the listing baseline: list snapshots/ and read
// every manifest object whole at conc concurrency, no decoding.
func bareReadManifests(ctx context.Context, st *store.Store, conc int) (int, error) {
	var names []string
	err := st.List(ctx, "snapshots/", func(info store.ObjectInfo) error {
		if _, ok := repo.ParseManifestName(info.Name); ok {
			names = append(names, info.Name)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for _, name := range names {
		g.Go(func() error {
			_, err := st.GetBytes(gctx, name, manifest.DefaultMaxBytes)
			return err
		})
	}
	return len(names), g.Wait()
}

// benchList populates a repository with n snapshots, then times, twice
// and alternating, the bare baseline, List, and resolving "latest" of one
// service.
func benchList(b *testing.B, target string, r *snapshot.Repo, n int) {
	ctx := b.Context()
	conc := r.Store().Budget().MaxRequests()
	start := time.Now()
	ms, err := populateSnapshots(ctx, r, n, conc)
	require.NoError(b, err)
	b.Logf("%s: populated %d snapshots in %v", target, n, time.Since(start))
	name := fmt.Sprintf("%s list %d snapshots", target, n)
	var secs [3]float64
	for range 2 {
		s := startScale()
		got, err := bareReadManifests(ctx, r.Store(), conc)
		require.NoError(b, err)
		require.Equal(b, n, got)
		secs[0] += s.end(name, "bare list+get", n).secs

		s = startScale()
		list, err := r.List(ctx, snapshot.Filter{})
		require.NoError(b, err)
		secs[1] += s.end(name, "List", n).secs
		require.Len(b, list, n)
		require.Equal(b, ms[n-1].ID, list[0].ID)

		s = startScale()
		latest, err := r.Show(ctx, snapshot.Latest, snapshot.Filter{Service: "svc-3"})
		require.NoError(b, err)
		secs[2] += s.end(name, "Show latest", n).secs
		require.Equal(b, "svc-3", latest.Service)
	}
	recordRatio("%s: List / bare list+get = %.2f, Show latest / bare = %.2f", name, secs[1]/secs[0], secs[2]/secs[0])
}

// BenchmarkScaleList lists a repository of 10,000 snapshots in a local
// directory and on MinIO.
func BenchmarkScaleList(b *testing.B) {
	const n = 10_000
	b.Run("file", func(b *testing.B) {
		for b.Loop() {
			r, err := snapshot.Open(b.Context(), filepath.Join(b.TempDir(), "repo"))
			require.NoError(b, err)
			b.Cleanup(func() { r.Close() })
			benchList(b, "file", r, n)
		}
	})
	b.Run("s3", func(b *testing.B) {
		t := s3Target(b, "s3", nil, nil)
		for b.Loop() {
			benchList(b, "s3", t.newRepo(b), n)
		}
	})
}

// TestScaleList checks, at a small size, what the list benchmark relies
// on: every populated snapshot listed, newest first, and "latest" of a
// service its newest snapshot.
func TestScaleList(t *testing.T) {
	const n = 200
	r, err := snapshot.Open(t.Context(), filepath.Join(t.TempDir(), "repo"))
	require.NoError(t, err)
	defer r.Close()
	ms, err := populateSnapshots(t.Context(), r, n, 8)
	require.NoError(t, err)
	list, err := r.List(t.Context(), snapshot.Filter{})
	require.NoError(t, err)
	want := slices.Clone(ms)
	slices.Reverse(want)
	require.Equal(t, want, list)
	latest, err := r.Show(t.Context(), snapshot.Latest, snapshot.Filter{Service: "svc-3"})
	require.NoError(t, err)
	require.Equal(t, ms[n-scaleServices+3].ID, latest.ID)
}

// exportTarget is a backend the export scale benchmarks run on.
type exportTarget struct {
	name    string
	newRepo func(b *testing.B) *snapshot.Repo // a fresh, empty repository
	// bare stores count 4 KiB blobs in r without statebucket, as the
	// bench's bare loop does, and records the time under name and op;
	// nil where the benchmark has none.
	bare func(tb testing.TB, r *snapshot.Repo, count int, name, op string) scaleFigure
	// bareWhat names what the bare loop measures the growth of.
	bareWhat string
}

func fileExportTarget() exportTarget {
	return exportTarget{name: "file", newRepo: func(b *testing.B) *snapshot.Repo {
		r, err := snapshot.Open(b.Context(), filepath.Join(b.TempDir(), "repo"))
		require.NoError(b, err)
		b.Cleanup(func() { r.Close() })
		return r
	}, bare: bareFileBlobs, bareWhat: "file system"}
}

// bareFileBlobs writes count 4 KiB files, none of any other run's, under
// their blob names in the directory repository r, 32 at a time, made
// durable as the directory driver makes small blobs (one syncfs per
// group of 1,024; on other systems, an fsync each), then syncs the
// directories written, and records the time under name and op: the file
// system's own cost of adding as many blobs, without temporary names.
func bareFileBlobs(tb testing.TB, r *snapshot.Repo, count int, name, op string) scaleFigure {
	u, err := url.Parse(r.Location())
	require.NoError(tb, err)
	require.Equal(tb, "file", u.Scheme, r.Location())
	root := filepath.FromSlash(u.Path)
	base := scaleBase
	scaleBase += 1 << 30
	var dirs sync.Map // each directory written into, with the func that makes it
	s := startScale()
	for group := 0; group < count; group += 1024 {
		g, _ := errgroup.WithContext(tb.Context())
		g.SetLimit(32)
		for i := group; i < min(count, group+1024); i++ {
			g.Go(func() error {
				data := make([]byte, 4<<10)
				binary.LittleEndian.PutUint64(data, uint64(base+int64(i)))
				name := filepath.Join(root, filepath.FromSlash(repo.BlobName(digest.FromBytes(data))))
				dir := filepath.Dir(name)
				mkdir, _ := dirs.LoadOrStore(dir, sync.OnceValue(func() error { return os.MkdirAll(dir, 0o777) }))
				if err := mkdir.(func() error)(); err != nil {
					return err
				}
				f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
				if err != nil {
					return err
				}
				_, err = f.Write(data)
				if err == nil && !groupSyncs {
					err = f.Sync()
				}
				return errors.Join(err, f.Close())
			})
		}
		require.NoError(tb, g.Wait())
		if groupSyncs {
			require.NoError(tb, groupSync(root))
		}
	}
	dirs.Store(filepath.Join(root, "blobs", "sha256"), nil)
	dirs.Range(func(dir, _ any) bool {
		f, err := os.Open(dir.(string))
		if err == nil {
			err = errors.Join(f.Sync(), f.Close())
		}
		require.NoError(tb, err)
		return true
	})
	return s.end(name, op, count)
}

func s3ExportTarget(b *testing.B) exportTarget {
	client := testserver.S3(b).Client(b, nil)
	return exportTarget{name: "s3", newRepo: s3Target(b, "s3", nil, nil).newRepo,
		bare: func(tb testing.TB, r *snapshot.Repo, count int, name, op string) scaleFigure {
			return bareS3Blobs(tb, client, r, count, name, op)
		}, bareWhat: "server"}
}

// bareS3Blobs puts count 4 KiB objects, none of any other run's, under
// their blob names in the S3 repository r with client, s3Concurrency at
// a time, as plain PutObjects (the harness's bare PUT loop: no
// precondition, no hash of ours), and records the time under name and
// op: the server's own cost of adding as many objects.
func bareS3Blobs(tb testing.TB, client *s3.Client, r *snapshot.Repo, count int, name, op string) scaleFigure {
	u, err := url.Parse(r.Location())
	require.NoError(tb, err)
	require.Equal(tb, "s3", u.Scheme, r.Location())
	bucket, prefix := u.Host, strings.Trim(u.Path, "/")
	base := scaleBase
	scaleBase += 1 << 30
	s := startScale()
	g, ctx := errgroup.WithContext(tb.Context())
	g.SetLimit(s3Concurrency)
	for i := range count {
		g.Go(func() error {
			data := make([]byte, 4<<10)
			binary.LittleEndian.PutUint64(data, uint64(base+int64(i)))
			key := path.Join(prefix, repo.BlobName(digest.FromBytes(data)))
			_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data)))})
			return err
		})
	}
	require.NoError(tb, g.Wait())
	return s.end(name, op, count)
}

// s3Others is how many blobs of other snapshots the S3 repository of
// BenchmarkScaleExportIntoFull holds: STATEBUCKET_SCALE_S3_OTHERS, or
// 100,000 (storing them on MinIO takes about 4 minutes; 1,000,000 about
// 40).
func s3Others(tb testing.TB) int {
	v := os.Getenv("STATEBUCKET_SCALE_S3_OTHERS")
	if v == "" {
		return 100_000
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		tb.Fatalf("STATEBUCKET_SCALE_S3_OTHERS=%q: want a count of blobs, such as 1000000", v)
	}
	return n
}

// scaleBase numbers the synthetic states of the export benchmarks, so
// that no two exports of one run share a blob.
var scaleBase int64 = 1 << 40

// exportScale exports count 4 KiB blobs of a state no other export of
// the run has into r, and records the time under name and op.
func exportScale(b *testing.B, r *snapshot.Repo, count int, name, op string) scaleFigure {
	svc := &synthService{count: count, size: 4 << 10, base: scaleBase}
	scaleBase += 1 << 30
	s := startScale()
	m, err := snapshot.Export(b.Context(), r, svc, acct, region, nil)
	require.NoError(b, err)
	f := s.end(name, op, count)
	require.Len(b, m.Blobs, count)
	return f
}

// BenchmarkScaleExport compares the export time per blob of 100,000
// 4 KiB blobs with that of 10,000 (target: at most 1.2x), each into a
// fresh repository: 10,000, 100,000, then 10,000 again.
func BenchmarkScaleExport(b *testing.B) {
	for _, t := range []func(b *testing.B) exportTarget{func(*testing.B) exportTarget { return fileExportTarget() }, s3ExportTarget} {
		tgt := t(b)
		b.Run(tgt.name, func(b *testing.B) {
			for b.Loop() {
				name := tgt.name + " export 4KiB blobs"
				small := exportScale(b, tgt.newRepo(b), 10_000, name, "10000 blobs")
				large := exportScale(b, tgt.newRepo(b), 100_000, name, "100000 blobs")
				again := exportScale(b, tgt.newRepo(b), 10_000, name, "10000 blobs")
				perSmall := (small.secs + again.secs) / 20_000
				recordRatio("%s: per-blob time at 100,000 / at 10,000 = %.2f (target <= 1.2)", name, large.secs/100_000/perSmall)
			}
		})
	}
}

// populateBlobs stores n small blobs, none of any export's, in r, conc at
// a time, through the store, made durable once at the end.
func populateBlobs(ctx context.Context, r *snapshot.Repo, n, conc int) error {
	st := r.Store()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for i := range n {
		g.Go(func() error {
			data := binary.LittleEndian.AppendUint64([]byte("other snapshot blob "), uint64(i))
			d := digest.FromBytes(data)
			return st.PutBytes(gctx, repo.BlobName(d), data, store.PutOptions{SHA256: d.Sum(), DeferSync: true})
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return st.Sync(ctx)
}

// intoFullRounds is how many times benchExportIntoFull exports into
// each repository after its warm-up round.
const intoFullRounds = 3

// benchExportIntoFull exports 10,000 blobs into an empty repository and
// into one holding others blobs of other snapshots, alternating: a
// warm-up round, whose times are shown and not counted (storing the
// others leaves the server, or the file system's journal, with work to
// finish, which the first export would pay for), then intoFullRounds
// rounds, whose medians it compares. Where the target has a bare loop,
// each round runs it too, into a new repository and into the full one.
func benchExportIntoFull(b *testing.B, tgt exportTarget, others int) {
	full := tgt.newRepo(b)
	start := time.Now()
	require.NoError(b, populateBlobs(b.Context(), full, others, 4*full.Store().Budget().MaxRequests()))
	b.Logf("%s: stored %d blobs in %v", tgt.name, others, time.Since(start))
	name := fmt.Sprintf("%s export 10000 blobs", tgt.name)
	into := fmt.Sprintf("into %d others", others)
	exportScale(b, tgt.newRepo(b), 10_000, name, "warm-up: into empty")
	exportScale(b, full, 10_000, name, "warm-up: "+into)
	var empty, crowded, bareEmpty, bareCrowded []float64
	for range intoFullRounds {
		empty = append(empty, exportScale(b, tgt.newRepo(b), 10_000, name, "into empty").secs)
		crowded = append(crowded, exportScale(b, full, 10_000, name, into).secs)
		if tgt.bare != nil {
			bareEmpty = append(bareEmpty, tgt.bare(b, tgt.newRepo(b), 10_000, bareName(tgt.name), "into empty").secs)
			bareCrowded = append(bareCrowded, tgt.bare(b, full, 10_000, bareName(tgt.name), into).secs)
		}
	}
	recordRatio("%s: %s / into empty = %.2f, medians of %d rounds (target <= 1.2)", name, into, median(crowded)/median(empty), intoFullRounds)
	if tgt.bare != nil {
		recordRatio("%s: %s / into empty = %.2f: the %s's own growth", bareName(tgt.name), into, median(bareCrowded)/median(bareEmpty), tgt.bareWhat)
		recordRatio("%s %s / %s = %.2f", name, into, bareName(tgt.name), median(crowded)/median(bareCrowded))
	}
}

// TestBareBlobs: the bare loops of the export benchmarks store their
// 4 KiB blobs under the repository's blob names, which a listing finds.
func TestBareBlobs(t *testing.T) {
	check := func(t *testing.T, r *snapshot.Repo, bare func(tb testing.TB, r *snapshot.Repo, count int, name, op string) scaleFigure) {
		f := bare(t, r, 100, "test", "bare")
		require.Equal(t, 100, f.count)
		var names []string
		require.NoError(t, r.Store().List(t.Context(), "blobs/sha256/", func(info store.ObjectInfo) error {
			require.EqualValues(t, 4<<10, info.Size, info.Name)
			names = append(names, info.Name)
			return nil
		}))
		require.Len(t, names, 100)
	}
	t.Run("file", func(t *testing.T) {
		r, err := snapshot.Open(t.Context(), filepath.Join(t.TempDir(), "repo"))
		require.NoError(t, err)
		defer r.Close()
		check(t, r, bareFileBlobs)
	})
	t.Run("s3", func(t *testing.T) {
		srv := testserver.S3(t)
		srv.SetEnv(t)
		r := openRepo(t, srv.URL(srv.NewBucket(t), "repo"), func(ctx context.Context, u *url.URL) (*s3store.Driver, error) {
			return s3store.Open(ctx, u, nil)
		})
		client := srv.Client(t, nil)
		check(t, r, func(tb testing.TB, r *snapshot.Repo, count int, name, op string) scaleFigure {
			return bareS3Blobs(tb, client, r, count, name, op)
		})
	})
}

// bareName names the bare loop's figures on the backend called target.
func bareName(target string) string {
	return target + " bare loop 10000 blobs"
}

// median returns the median of xs.
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkScaleExportIntoFull compares exporting 10,000 blobs into a
// repository holding 1,000,000 blobs of other snapshots (on MinIO
// 100,000, or as many as STATEBUCKET_SCALE_S3_OTHERS says) with
// exporting them into an empty one (target: at most 1.2x).
// The repository holding 1,000,000 blobs takes about 4 GiB of disk,
// mostly file system blocks of one small file each.
func BenchmarkScaleExportIntoFull(b *testing.B) {
	b.Run("file", func(b *testing.B) {
		for b.Loop() {
			benchExportIntoFull(b, fileExportTarget(), 1_000_000)
		}
	})
	b.Run("s3", func(b *testing.B) {
		tgt := s3ExportTarget(b)
		for b.Loop() {
			benchExportIntoFull(b, tgt, s3Others(b))
		}
	})
}
