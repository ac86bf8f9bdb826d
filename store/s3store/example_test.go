package s3store_test

import (
	"context"
	"log"
	"net/url"

	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/s3store"
)

// Open a repository in a MinIO bucket through the driver, to set driver
// options; credentials come from the environment (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY) or a profile. snapshot.Open does the same with
// the defaults. The example needs a server, so it is not run.
func ExampleOpen() {
	ctx := context.Background()
	u, err := url.Parse("s3://fixtures/ci/state?endpoint=http://127.0.0.1:9000&region=us-east-1")
	if err != nil {
		log.Fatal(err)
	}
	drv, err := s3store.Open(ctx, u, &s3store.Options{MaxConcurrency: 64})
	if err != nil {
		log.Fatal(err)
	}
	repo := snapshot.New(store.New(drv, store.Redact(u), nil))
	defer repo.Close()

	if _, err := repo.List(ctx, snapshot.Filter{Service: "s3"}); err != nil {
		log.Fatal(err)
	}
}
