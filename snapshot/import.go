package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/sources"
	"github.com/statebucket/statebucket/store"
)

// ImportOptions configure [Import] and [ImportState]. The zero value is
// ready to use; nil means the zero value.
type ImportOptions struct {
	// Merge makes [ImportState] add the snapshot to the service's state
	// through Merge instead of replacing it through Restore. [Import]
	// always replaces.
	Merge bool
	// Manifest configures decoding: caps, and the HMAC key that verifies
	// signed manifests.
	Manifest manifest.DecodeOptions
	// Source configures the blob engine (prefetch, spool threshold, chunked
	// reads, per-blob events).
	Source sources.Options
	// Stats, if not nil, receives what the blob engine did.
	Stats *sources.Stats
}

// Import loads the snapshot named by ref into svc for accountID and
// region, replacing its state, and returns the snapshot's manifest.
//
// ref is a full id, a unique id prefix, a tag, or "latest" (the newest
// snapshot of svc's service for accountID and region). The manifest is
// read and validated and the view fetched and verified before the service
// is called; every blob is verified while it streams, and a mismatch fails
// the import with a [*sources.MismatchError] naming the key. A failed
// import leaves the service's visible state as it was, provided the
// service honours RestoreWithBlobs's contract.
//
// The snapshot must be of svc's service; it may come from another account
// or region.
func Import[V any](ctx context.Context, repo *Repo, svc core.BlobBackedService[V], accountID, region, ref string, opts *ImportOptions) (*manifest.Manifest, error) {
	if opts == nil {
		opts = &ImportOptions{}
	}
	m, view, err := load[V](ctx, repo, svc.ServiceName(), accountID, region, ref, opts)
	if err != nil {
		return nil, err
	}
	src := sources.New(repo.st, m, &opts.Source)
	err = svc.RestoreWithBlobs(ctx, accountID, region, view, src)
	src.Close()
	if opts.Stats != nil {
		*opts.Stats = src.Stats()
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: import %s into %s %s/%s: %w", m.ID, m.Service, accountID, region, err)
	}
	return m, nil
}

// ImportState loads the snapshot named by ref into a service without
// blobs, replacing its state through Restore, or adding to it through
// Merge when opts.Merge is set (see [Import]).
func ImportState[V any](ctx context.Context, repo *Repo, svc core.StatefulService[V], accountID, region, ref string, opts *ImportOptions) (*manifest.Manifest, error) {
	if opts == nil {
		opts = &ImportOptions{}
	}
	m, view, err := load[V](ctx, repo, svc.ServiceName(), accountID, region, ref, opts)
	if err != nil {
		return nil, err
	}
	if len(m.Blobs) > 0 {
		return nil, fmt.Errorf("snapshot: import %s: it references %d blobs, and %s is not a blob-backed service: %w", m.ID, len(m.Blobs), m.Service, core.ErrInvalid)
	}
	if opts.Merge {
		err = svc.Merge(ctx, accountID, region, view)
	} else {
		err = svc.Restore(ctx, accountID, region, view)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: import %s into %s %s/%s: %w", m.ID, m.Service, accountID, region, err)
	}
	return m, nil
}

// load resolves ref, reads and validates the manifest, and fetches,
// verifies and decodes the view.
func load[V any](ctx context.Context, repo *Repo, service, accountID, region, ref string, opts *ImportOptions) (*manifest.Manifest, V, error) {
	var view V
	hexID, err := repo.resolve(ctx, ref, Filter{Service: service, Account: accountID, Region: region})
	if err != nil {
		return nil, view, fmt.Errorf("snapshot: import %q: %w", ref, err)
	}
	m, err := repo.readManifest(ctx, hexID, &opts.Manifest)
	if err != nil {
		return nil, view, fmt.Errorf("snapshot: import %q: %w", ref, err)
	}
	if m.Service != service {
		return nil, view, fmt.Errorf("snapshot: import %q: snapshot %s holds service %q, not %q: %w", ref, m.ID, m.Service, service, core.ErrInvalid)
	}
	data, err := repo.readView(ctx, m)
	if err != nil {
		return nil, view, fmt.Errorf("snapshot: import %q: %w", ref, err)
	}
	if err := json.Unmarshal(data, &view); err != nil {
		return nil, view, fmt.Errorf("snapshot: import %q: view of %s: %w", ref, m.ID, core.NewViewError(core.KindSerialize, service, err))
	}
	return m, view, nil
}

// readView fetches the view of m and checks its size and digest.
func (r *Repo) readView(ctx context.Context, m *manifest.Manifest) ([]byte, error) {
	name := store.ViewName(m.HexID())
	data, err := r.st.GetBytes(ctx, name, m.View.Size+1)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != m.View.Size {
		return nil, &sources.MismatchError{Key: name, Expected: fmt.Sprintf("%d bytes", m.View.Size), Actual: fmt.Sprintf("%d bytes", len(data)), Err: core.ErrSizeMismatch}
	}
	sum := sha256.Sum256(data)
	if got := store.Digest(sum[:]); got != m.View.Digest {
		return nil, &sources.MismatchError{Key: name, Expected: m.View.Digest, Actual: got, Err: core.ErrChecksumMismatch}
	}
	return data, nil
}
