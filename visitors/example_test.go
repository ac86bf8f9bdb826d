package visitors_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
	"github.com/statebucket/statebucket/visitors"
)

// Export the blobs of a mock S3 into a repository in a local directory.
// The entries are what a manifest records; identical bytes are stored once.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "statebucket-visitors-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	drv, err := filestore.New(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	r := repo.New(store.New(drv, dir, nil), nil)
	defer r.Close()

	svc := coretest.NewObjectStore()
	if err := svc.CreateBucket(ctx, "123456789012", "eu-west-1", "pets", false); err != nil {
		log.Fatal(err)
	}
	for _, o := range []struct{ key, data string }{{"cat.txt", "meow"}, {"kitten.txt", "meow"}, {"dog.txt", "woof!"}} {
		if _, err := svc.PutObject(ctx, "123456789012", "eu-west-1", "pets", o.key, []byte(o.data)); err != nil {
			log.Fatal(err)
		}
	}

	v := visitors.New(r, nil)
	if _, err := svc.SnapshotWithBlobs(ctx, "123456789012", "eu-west-1", v); err != nil {
		log.Fatal(err)
	}
	for _, e := range v.Entries() {
		fmt.Printf("%q %d %s\n", e.Key, e.Size, e.Digest.Short())
	}
	s := v.Stats()
	fmt.Printf("first export: %d blobs, %d uploaded, %d skipped\n", s.Blobs, s.Uploaded, s.Skipped)

	// A second export finds every blob already stored.
	again := visitors.New(r, nil)
	if _, err := svc.SnapshotWithBlobs(ctx, "123456789012", "eu-west-1", again); err != nil {
		log.Fatal(err)
	}
	if err := again.Wait(); err != nil { // did every upload succeed?
		log.Fatal(err)
	}
	s = again.Stats()
	fmt.Printf("second export: %d blobs, %d uploaded, %d skipped\n", s.Blobs, s.Uploaded, s.Skipped)
	// Output:
	// "pets/cat.txt\x00null" 4 404cdd7bc109
	// "pets/dog.txt\x00null" 5 60496ab92cc8
	// "pets/kitten.txt\x00null" 4 404cdd7bc109
	// first export: 3 blobs, 2 uploaded, 1 skipped
	// second export: 3 blobs, 0 uploaded, 3 skipped
}
