package snapshot_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/snapshot"
)

func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "statebucket-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// A mock S3 with one object.
	svc := coretest.NewObjectStore()
	if err := svc.CreateBucket(ctx, "000000000000", "us-east-1", "fixtures", false); err != nil {
		log.Fatal(err)
	}
	if _, err := svc.PutObject(ctx, "000000000000", "us-east-1", "fixtures", "hello.txt", []byte("hello")); err != nil {
		log.Fatal(err)
	}

	r, err := snapshot.Open(ctx, dir)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	// Export the state, then restore it into a fresh mock.
	m, err := snapshot.Export(ctx, r, svc, "000000000000", "us-east-1", &snapshot.ExportOptions{Tag: "hello"})
	if err != nil {
		log.Fatal(err)
	}
	fresh := coretest.NewObjectStore()
	if _, err := snapshot.Import(ctx, r, fresh, "000000000000", "us-east-1", "hello", nil); err != nil {
		log.Fatal(err)
	}
	data, err := fresh.GetObject(ctx, "000000000000", "us-east-1", "fixtures", "hello.txt")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.Service, len(m.Blobs), string(data))
	// Output: s3 1 hello
}
