package gocloudstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"gocloud.dev/blob/memblob"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/gocloudstore"
)

// An in-memory repository, opened by URL as users do.
func Example() {
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://")
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	tag := store.TagName("latest")
	if err := st.PutBytes(ctx, tag, []byte(`{"v":1}`), store.PutOptions{CreateOnly: true}); err != nil {
		log.Fatal(err)
	}
	err = st.PutBytes(ctx, tag, []byte(`{"v":2}`), store.PutOptions{CreateOnly: true})
	fmt.Println("second create:", errors.Is(err, core.ErrExists))

	got, err := st.GetBytes(ctx, tag, 1<<10)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("tag:", string(got))
	// Output:
	// second create: true
	// tag: {"v":1}
}

// A bucket the caller opened and keeps: the driver does not close it.
func ExampleNew() {
	ctx := context.Background()
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()

	st := store.New(gocloudstore.New(bucket, nil), "memblob")
	defer st.Close()
	if err := st.PutBytes(ctx, store.TagName("v1"), []byte("{}"), store.PutOptions{}); err != nil {
		log.Fatal(err)
	}

	obj, err := bucket.List(nil).Next(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(obj.Key, obj.Size)
	// Output: tags/v1.json 2
}
