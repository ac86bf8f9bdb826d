package snapshot

import (
	"context"
	"fmt"

	"github.com/statebucket/statebucket/store"
	// The local directory, S3 and GCS backends register their schemes.
	_ "github.com/statebucket/statebucket/store/filestore"
	_ "github.com/statebucket/statebucket/store/gcsstore"
	_ "github.com/statebucket/statebucket/store/s3store"
)

// Repo is a snapshot repository: a directory or bucket prefix holding
// blobs, snapshots and tags (see the package documentation for the
// layout). A Repo is safe for concurrent use; close it when done.
type Repo struct {
	st *store.Store
}

// New returns a Repo over st, for drivers built by the caller (for
// example an s3store.Driver around an existing *s3.Client).
func New(st *store.Store) *Repo { return &Repo{st: st} }

// Store returns the repository's store.
func (r *Repo) Store() *store.Store { return r.st }

// Location returns the repository's URL, without credentials.
func (r *Repo) Location() string { return r.st.Location() }

// Close releases the repository's resources.
func (r *Repo) Close() error { return r.st.Close() }

// Open opens the repository at rawURL through the driver registered for
// its scheme (see [store.Open]):
//
//   - a plain path, or file:///abs/path: a local directory, created if it
//     does not exist;
//   - s3://bucket/prefix?endpoint=URL&region=R: Amazon S3 or an
//     S3-compatible server (see package s3store);
//   - gs://bucket/prefix: Google Cloud Storage, or the emulator
//     STORAGE_EMULATOR_HOST names (see package gcsstore).
func Open(ctx context.Context, rawURL string) (*Repo, error) {
	st, err := store.Open(ctx, rawURL)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return New(st), nil
}
