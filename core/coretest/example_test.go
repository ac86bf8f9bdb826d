package coretest_test

import (
	"context"
	"fmt"

	"github.com/statebucket/statebucket/core/coretest"
)

// Move an object store's state, with its blobs, into another store, in
// the order snapshot.Import follows (RestoreWithBlobs imports the blobs,
// Restore makes the view visible), then run the round-trip checks on it.
func Example() {
	ctx := context.Background()
	src := coretest.NewObjectStore()
	_ = src.CreateBucket(ctx, "123456789012", "us-east-1", "photos", true)
	_, _ = src.PutObject(ctx, "123456789012", "us-east-1", "photos", "cat.jpg", []byte("meow"))
	_, _ = src.PutObject(ctx, "123456789012", "us-east-1", "photos", "cat.jpg", []byte("MEOW!"))

	visitor := &coretest.MemoryVisitor{}
	view, err := src.SnapshotWithBlobs(ctx, "123456789012", "us-east-1", visitor)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, key := range visitor.Keys() {
		fmt.Printf("exported %q\n", key)
	}

	dst := coretest.NewObjectStore()
	source := coretest.NewMemorySource(visitor.Blobs())
	if err := dst.RestoreWithBlobs(ctx, "123456789012", "us-east-1", view, source); err != nil {
		fmt.Println(err)
		return
	}
	if err := dst.Restore(ctx, "123456789012", "us-east-1", view); err != nil {
		fmt.Println(err)
		return
	}
	data, _ := dst.GetObject(ctx, "123456789012", "us-east-1", "photos", "cat.jpg")
	fmt.Printf("restored %s\n", data)

	fmt.Println("check:", coretest.CheckBlobRoundTrip(ctx, src, coretest.NewObjectStore(), "123456789012", "us-east-1"))
	// Output:
	// exported "photos/cat.jpg\x00v00000001"
	// exported "photos/cat.jpg\x00v00000002"
	// restored MEOW!
	// check: <nil>
}
