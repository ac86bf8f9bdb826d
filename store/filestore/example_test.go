package filestore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
)

func Example() {
	dir, err := os.MkdirTemp("", "statebucket-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	drv, err := filestore.New(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	st := store.New(drv, dir, nil)
	defer st.Close()
	ctx := context.Background()

	// Any valid object name is a path under the directory. Here an
	// object is named by its digest, which the driver verifies.
	data := []byte("hello, bucket")
	sum := sha256.Sum256(data)
	blob := "blobs/" + hex.EncodeToString(sum[:])
	if err := st.PutBytes(ctx, blob, data, store.PutOptions{SHA256: sum[:]}); err != nil {
		log.Fatal(err)
	}

	// A create-only Put never replaces what is there.
	tag := "tags/latest.json"
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

	err = st.List(ctx, "blobs/", func(info store.ObjectInfo) error {
		fmt.Println(info.Name, info.Size)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// second create: true
	// tag: {"v":1}
	// blobs/6d873981e6d689bccd6a6fde3a2baf97332581d9ec47dce1436dae537e0b7f24 13
}
