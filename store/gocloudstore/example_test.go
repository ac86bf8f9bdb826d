package gocloudstore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log"

	"gocloud.dev/blob/memblob"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/gocloudstore"
)

// An in-memory repository, opened by URL as users do: a Put whose
// content does not have the digest it claims stores nothing.
func Example() {
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://")
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	data := []byte("hello, bucket")
	sum := sha256.Sum256(data)
	blob := "blobs/" + hex.EncodeToString(sum[:])
	err = st.PutBytes(ctx, blob, []byte("tampered"), store.PutOptions{SHA256: sum[:]})
	fmt.Println("tampered:", errors.Is(err, core.ErrChecksumMismatch))
	if err := st.PutBytes(ctx, blob, data, store.PutOptions{SHA256: sum[:]}); err != nil {
		log.Fatal(err)
	}
	info, err := st.Stat(ctx, blob)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored:", info.Size, "bytes")
	// Output:
	// tampered: true
	// stored: 13 bytes
}

// A bucket the caller opened and keeps: the driver does not close it.
func ExampleNew() {
	ctx := context.Background()
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()

	st := store.New(gocloudstore.New(bucket, nil), "memblob", nil)
	defer st.Close()
	if err := st.PutBytes(ctx, "tags/v1.json", []byte("{}"), store.PutOptions{}); err != nil {
		log.Fatal(err)
	}

	obj, err := bucket.List(nil).Next(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(obj.Key, obj.Size)
	// Output: tags/v1.json 2
}
