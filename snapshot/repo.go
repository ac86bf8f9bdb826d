package snapshot

import (
	"context"
	"fmt"

	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/store"
	// The local directory, S3 and GCS backends register their schemes.
	_ "github.com/statebucket/statebucket/store/filestore"
	_ "github.com/statebucket/statebucket/store/gcsstore"
	_ "github.com/statebucket/statebucket/store/s3store"
)

// Repo is a snapshot repository: a directory or bucket prefix holding
// blobs, snapshots, tags and locks (see the package documentation for the
// layout, which package repo keeps). A Repo is safe for concurrent use;
// close it when done.
type Repo struct {
	r *repo.Repo
}

// New returns a Repo over st, for drivers built by the caller (for
// example an s3store.Driver around an existing *s3.Client).
func New(st *store.Store) *Repo { return &Repo{r: repo.New(st, nil)} }

// FromRepo returns a Repo over the repository layer r, for one built with
// repo.Options: other lock timings, or a clock.
func FromRepo(r *repo.Repo) *Repo { return &Repo{r: r} }

// Store returns the repository's store.
func (r *Repo) Store() *store.Store { return r.r.Store() }

// Location returns the repository's URL, without credentials.
func (r *Repo) Location() string { return r.r.Location() }

// Close releases the repository's resources.
func (r *Repo) Close() error { return r.r.Close() }

// Open opens the repository at rawURL through the driver registered for
// its scheme (see [store.Open]):
//
//   - a plain path, or file:///abs/path: a local directory, created by
//     the first write (reading a missing one fails, naming it);
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
