package main

// The backends linked into the CLI, beyond the local directory and S3
// drivers that package snapshot links: each registers its URL schemes.
import (
	// mem:// and gocloud+<scheme>:// (s3, gs, file, azblob).
	_ "github.com/statebucket/statebucket/store/gocloudstore"
)
