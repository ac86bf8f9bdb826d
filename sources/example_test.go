package sources_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/sources"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
	"github.com/statebucket/statebucket/visitors"
)

// Restore a mock S3 from the blobs of a repository in a local directory,
// then see a blob whose stored bytes were changed refused.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "statebucket-sources-example-")
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

	// Export a mock S3 with two objects and describe it in a manifest.
	src := coretest.NewObjectStore()
	if err := src.CreateBucket(ctx, "123456789012", "eu-west-1", "pets", false); err != nil {
		log.Fatal(err)
	}
	for _, key := range []string{"cat.txt", "dog.txt"} {
		if _, err := src.PutObject(ctx, "123456789012", "eu-west-1", "pets", key, []byte("hello from "+key)); err != nil {
			log.Fatal(err)
		}
	}
	v := visitors.New(r, nil)
	view, err := src.SnapshotWithBlobs(ctx, "123456789012", "eu-west-1", v)
	if err != nil {
		log.Fatal(err)
	}
	viewJSON, err := json.Marshal(view)
	if err != nil {
		log.Fatal(err)
	}
	m, err := manifest.New(src.ServiceName(), "123456789012", "eu-west-1",
		manifest.Object{Digest: digest.FromBytes(viewJSON), Size: int64(len(viewJSON))}, v.Entries())
	if err != nil {
		log.Fatal(err)
	}

	// Restore it into a fresh mock, every blob verified on the way.
	dst := coretest.NewObjectStore()
	source := sources.New(r, m, nil)
	err = dst.RestoreWithBlobs(ctx, "123456789012", "eu-west-1", view, source)
	source.Close()
	if err != nil {
		log.Fatal(err)
	}
	if err := dst.Restore(ctx, "123456789012", "eu-west-1", view); err != nil {
		log.Fatal(err)
	}
	data, err := dst.GetObject(ctx, "123456789012", "eu-west-1", "pets", "dog.txt")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("restored %q, %d blobs fetched\n", data, source.Stats().Fetched)

	// A key the manifest does not list is not found.
	source = sources.New(r, m, nil)
	defer source.Close()
	_, err = source.Fetch(ctx, "pets/bird.txt\x00null")
	fmt.Println("unknown key:", errors.Is(err, core.ErrNotFound))

	// Bytes that are not the recorded ones never reach the service.
	dog, _ := m.Lookup(coretest.BlobKey("pets", "dog.txt", coretest.NullVersionID))
	if err := r.Store().PutBytes(ctx, repo.BlobName(dog.Digest), []byte("HELLO FROM DOG.TXT"), store.PutOptions{}); err != nil {
		log.Fatal(err)
	}
	_, err = source.Fetch(ctx, dog.Key)
	var mismatch *repo.MismatchError
	if errors.As(err, &mismatch) {
		fmt.Printf("blob %q refused, checksum mismatch: %v\n", mismatch.Key, errors.Is(err, core.ErrChecksumMismatch))
	}
	// Output:
	// restored "hello from dog.txt", 2 blobs fetched
	// unknown key: true
	// blob "pets/dog.txt\x00null" refused, checksum mismatch: true
}
