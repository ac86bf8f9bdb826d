package autoexport_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/statebucket/statebucket/autoexport"
	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/snapshot"
)

// Export a parameter store once its changes settle, tagging each snapshot
// by region; Close exports the last change.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "statebucket-autoexport")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	repo, err := snapshot.Open(ctx, dir)
	if err != nil {
		log.Fatal(err)
	}
	defer repo.Close()

	svc := coretest.NewKV()
	exp, err := autoexport.New(repo, svc, &autoexport.Options{
		Debounce: time.Minute,
		Tag:      func(accountID, region string) string { return "fixture-" + region },
		OnExport: func(r autoexport.Result) {
			if r.Err != nil {
				log.Print(r.Err)
				return
			}
			fmt.Println("exported", r.Manifest.Service, r.AccountID, r.Region)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range []string{"1", "2", "3"} {
		if err := svc.Put(ctx, "000000000000", "us-east-1", "/app/version", v); err != nil {
			log.Fatal(err)
		}
	}
	if err := exp.Close(ctx); err != nil {
		log.Fatal(err)
	}

	fresh := coretest.NewKV()
	if _, err := snapshot.ImportState(ctx, repo, fresh, "000000000000", "us-east-1", "fixture-us-east-1", nil); err != nil {
		log.Fatal(err)
	}
	v, err := fresh.Get(ctx, "000000000000", "us-east-1", "/app/version")
	fmt.Println(v, err)
	// Output:
	// exported ssm 000000000000 us-east-1
	// 3 <nil>
}
