package gcsstore_test

import (
	"context"
	"log"

	"cloud.google.com/go/storage"

	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/gcsstore"
)

// Open a repository in a GCS bucket through an existing client, to set
// driver options; snapshot.Open("gs://fixtures/ci/state") does the same
// with a client of its own and the defaults. The client finds Application
// Default Credentials, or the emulator STORAGE_EMULATOR_HOST names. The
// example needs a server, so it is not run.
func ExampleNew() {
	ctx := context.Background()
	client, err := storage.NewClient(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	drv := gcsstore.New(client, "fixtures", "ci/state", &gcsstore.Options{MaxConcurrency: 64, ChunkSize: 32 << 20})
	repo := snapshot.New(store.New(drv, "gs://fixtures/ci/state", nil))
	defer repo.Close()

	if _, err := repo.List(ctx, snapshot.Filter{Service: "s3"}); err != nil {
		log.Fatal(err)
	}
}
