package bench

import (
	"context"
	"io"
	"net/url"
	"testing"

	"cloud.google.com/go/storage"

	"github.com/statebucket/statebucket/integration/testserver"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store/gcsstore"
)

// gcsConcurrency is the engine's request limit and the baseline's loop
// width alike.
const gcsConcurrency = gcsstore.DefaultMaxConcurrency

// gcsRaw is the GCS baseline: a bare cloud.google.com/go/storage Writer
// and Reader of the same bytes, with the client's own checks (a CRC32C it
// computes on upload, and verifies on download), no hashing of ours, no
// manifest. Each Writer's ChunkSize follows the driver's rule, so that
// both send the same requests: one request, from a buffer the object's
// size, for an object smaller than gcsstore.DefaultChunkSize (the client's
// own default would buffer 16 MiB for every 4 KiB object); resumable
// chunks of that size otherwise.
type gcsRaw struct{ bucket *storage.BucketHandle }

func (r gcsRaw) Put(ctx context.Context, name string, body io.Reader, size int64) error {
	w := r.bucket.Object(name).NewWriter(ctx)
	w.ChunkSize = int(min(size+1, gcsstore.DefaultChunkSize))
	if _, err := io.Copy(w, body); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

func (r gcsRaw) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	return r.bucket.Object(name).NewReader(ctx)
}

// BenchmarkGCS measures the driver's defaults against fake-gcs-server, on
// gs:// URLs opened as users open them (STORAGE_EMULATOR_HOST set).
func BenchmarkGCS(b *testing.B) {
	srv := testserver.GCS(b)
	srv.SetEnv(b)
	run(b, target{
		name:        "gcs",
		cases:       []benchCase{{count: 10000, size: 4 << 10}, {count: 4, size: 256 << 20}},
		concurrency: gcsConcurrency,
		newRepo: func(b *testing.B) *snapshot.Repo {
			return openRepo(b, srv.URL(srv.NewBucket(b), "repo"), func(ctx context.Context, u *url.URL) (*gcsstore.Driver, error) {
				return gcsstore.Open(ctx, u, &gcsstore.Options{MaxConcurrency: gcsConcurrency})
			})
		},
		newRaw: func(b *testing.B) rawStore {
			return gcsRaw{bucket: srv.Client(b).Bucket(srv.NewBucket(b))}
		},
	})
}
