package store_test

import (
	"fmt"
	"log"
	"net/url"

	"github.com/statebucket/statebucket/store"
)

func ExampleRedact() {
	u, err := url.Parse("s3://AKIAEXAMPLE:secret@fixtures/ci?endpoint=http%3A%2F%2Fuser%3Apass%40minio%3A9000&region=eu-west-3")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(store.Redact(u))
	// Output: s3://REDACTED@fixtures/ci?endpoint=http%3A%2F%2FREDACTED%40minio%3A9000&region=eu-west-3
}
