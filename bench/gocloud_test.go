package bench

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"testing"
	"text/tabwriter"

	"github.com/statebucket/statebucket/integration/testserver"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/gocloudstore"
)

// BenchmarkGocloudS3 measures the gocloud.dev path (gocloudstore over
// s3blob) beside the native S3 driver on the same MinIO, case by case in
// one run so that both see the same machine, and prints the ratio of the
// two. Its rows are "gocloud+s3" and "s3" in the table; the "s3" rows of
// BenchmarkS3, when it runs too, replace this benchmark's.
func BenchmarkGocloudS3(b *testing.B) {
	srv := testserver.S3(b)
	all := []benchCase{{count: 10000, size: 4 << 10}, {count: 4, size: 256 << 20}}
	for _, c := range all {
		cases := []benchCase{c}
		b.Run("s3", func(b *testing.B) { run(b, s3Target(b, "s3", cases, nil)) })
		b.Run("gocloud+s3", func(b *testing.B) {
			t := s3Target(b, "gocloud+s3", cases, nil)
			t.newRepo = func(b *testing.B) *snapshot.Repo {
				u := &url.URL{Scheme: "gocloud+s3", Host: srv.NewBucket(b), Path: "/repo", RawQuery: url.Values{
					"endpoint":       {srv.Endpoint},
					"region":         {srv.Region},
					"use_path_style": {"true"},
				}.Encode()}
				drv, err := gocloudstore.Open(b.Context(), u, &gocloudstore.Options{MaxConcurrency: s3Concurrency})
				if err != nil {
					b.Fatal(err)
				}
				r := snapshot.New(store.New(drv, store.Redact(u), nil))
				b.Cleanup(func() { r.Close() })
				return r
			}
			run(b, t)
		})
	}
	printRatios(os.Stdout, "gocloud+s3", "s3", all)
}

// printRatios prints the throughput of target's exports and imports over
// those of base, case by case.
func printRatios(w io.Writer, target, base string, cases []benchCase) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "case\top\t%s MiB/s\t%s MiB/s\tratio\t%s peak RSS MiB\t%s peak RSS MiB\t\n", target, base, target, base)
	for _, bc := range cases {
		c := bc.String()
		for _, op := range []string{"export", "import"} {
			t, ok1 := results[target+"|"+c+"|"+op]
			s, ok2 := results[base+"|"+c+"|"+op]
			if !ok1 || !ok2 {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t%.2f\t%.1f\t%.1f\t\n", c, op, t.mibps, s.mibps, t.mibps/s.mibps, t.peakRSSMiB, s.peakRSSMiB)
		}
	}
	tw.Flush()
}
