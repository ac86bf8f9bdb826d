package store_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/url"
	"os"
	"path/filepath"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
	_ "github.com/statebucket/statebucket/store/filestore" // registers "file"
)

func ExampleRedact() {
	u, err := url.Parse("s3://AKIAEXAMPLE:secret@fixtures/ci?endpoint=http%3A%2F%2Fuser%3Apass%40minio%3A9000&region=eu-west-3")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(store.Redact(u))
	// Output: s3://REDACTED@fixtures/ci?endpoint=http%3A%2F%2FREDACTED%40minio%3A9000&region=eu-west-3
}

func ExampleOpen() {
	dir, err := os.MkdirTemp("", "statebucket-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	// A plain path opens a local directory; opening never creates it.
	st, err := store.Open(ctx, filepath.Join(dir, "repo"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	_, err = st.Stat(ctx, "any/object")
	fmt.Println("missing repository:", errors.Is(err, core.ErrBucketNotFound))

	// The first write creates it. Names are any safe object names.
	if err := st.PutBytes(ctx, "notes/hello.txt", []byte("hello"), store.PutOptions{}); err != nil {
		log.Fatal(err)
	}
	data, err := st.GetBytes(ctx, "notes/hello.txt", 1<<10)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(data))

	_, err = store.Open(ctx, "nosuch://bucket/prefix")
	fmt.Println("unknown scheme:", errors.Is(err, core.ErrInvalid))
	// Output:
	// missing repository: true
	// hello
	// unknown scheme: true
}
