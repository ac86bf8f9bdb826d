// Command statebucket exports, imports, lists and verifies snapshots of
// mock cloud service state in a repository: a local directory or a bucket.
//
// Usage:
//
//	statebucket [--repo URL] [--json] <command>
//
// Commands: demo, ls, show REF, verify [--read-data] REF, tag [--force]
// NAME REF, tags, untag NAME..., rm [--keep-tags] REF..., gc [--dry-run]
// [--grace DURATION], copy --to URL [--from URL] REF....
// Run `statebucket help` for details and the exit codes.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
