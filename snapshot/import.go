package snapshot

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/sources"
)

// ImportOptions configure [Import] and [ImportState]. The zero value is
// ready to use; nil means the zero value.
type ImportOptions struct {
	// Merge makes [Import] and [ImportState] add the snapshot to the
	// service's state through Merge instead of replacing it through
	// Restore. Merging a blob-backed snapshot needs a service whose
	// RestoreWithBlobs leaves the visible state alone (see
	// [core.BlobBackedService]); one that replaces its state there, as the
	// Rust original's S3 and EBS mocks do, ends up holding the snapshot
	// alone.
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
// region, replacing its state (or adding to it, with opts.Merge), and
// returns the snapshot's manifest.
//
// ref is a full id, a unique id prefix, a tag, or "latest" (the newest
// snapshot of svc's service for accountID and region). The manifest is
// read and validated and the view fetched and verified before the service
// is called. Then, in the order of the Rust original, svc.RestoreWithBlobs
// imports the snapshot's blobs into the service's backing store, each
// verified while it streams (a mismatch fails the import with a
// [*repo.MismatchError] naming the key), and only once every blob is in
// does svc.Restore, or svc.Merge, make the view visible.
//
// A failed import therefore leaves the service's visible state as it was,
// provided the service keeps the contract of [core.BlobBackedService]; its
// backing store may keep blobs imported before the failure, which nothing
// references (see the service's documentation for what becomes of them).
//
// The snapshot must be of svc's service; it may come from another account
// or region.
func Import[V any](ctx context.Context, r *Repo, svc core.BlobBackedService[V], accountID, region, ref string, opts *ImportOptions) (*manifest.Manifest, error) {
	if opts == nil {
		opts = &ImportOptions{}
	}
	m, view, err := load[V](ctx, r, svc.ServiceName(), accountID, region, ref, opts)
	if err != nil {
		return nil, err
	}
	src := sources.New(r.r, m, &opts.Source)
	err = svc.RestoreWithBlobs(ctx, accountID, region, view, src)
	src.Close()
	if opts.Stats != nil {
		*opts.Stats = src.Stats()
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: import %s into %s %s/%s: %w", m.ID, m.Service, accountID, region, err)
	}
	if err := apply(ctx, svc, accountID, region, m, view, opts.Merge); err != nil {
		return nil, err
	}
	return m, nil
}

// ImportState loads the snapshot named by ref into a service without
// blobs, replacing its state through Restore, or adding to it through
// Merge when opts.Merge is set (see [Import]).
func ImportState[V any](ctx context.Context, r *Repo, svc core.StatefulService[V], accountID, region, ref string, opts *ImportOptions) (*manifest.Manifest, error) {
	if opts == nil {
		opts = &ImportOptions{}
	}
	m, view, err := load[V](ctx, r, svc.ServiceName(), accountID, region, ref, opts)
	if err != nil {
		return nil, err
	}
	if len(m.Blobs) > 0 {
		return nil, fmt.Errorf("snapshot: import %s: it references %d blobs, and %s is not a blob-backed service: %w", m.ID, len(m.Blobs), m.Service, core.ErrInvalid)
	}
	if err := apply(ctx, svc, accountID, region, m, view, opts.Merge); err != nil {
		return nil, err
	}
	return m, nil
}

// apply makes view, the view of m, the visible state of svc: through
// Merge if merge is set, else through Restore.
func apply[V any](ctx context.Context, svc core.StatefulService[V], accountID, region string, m *manifest.Manifest, view V, merge bool) error {
	op, do := "restore", svc.Restore
	if merge {
		op, do = "merge", svc.Merge
	}
	if err := do(ctx, accountID, region, view); err != nil {
		return fmt.Errorf("snapshot: import %s into %s %s/%s: %s: %w", m.ID, m.Service, accountID, region, op, err)
	}
	return nil
}

// load resolves ref, reads and validates the manifest, and fetches,
// verifies and decodes the view.
func load[V any](ctx context.Context, r *Repo, service, accountID, region, ref string, opts *ImportOptions) (*manifest.Manifest, V, error) {
	var view V
	m, err := r.lookup(ctx, ref, Filter{Service: service, Account: accountID, Region: region}, &opts.Manifest)
	if err != nil {
		return nil, view, fmt.Errorf("snapshot: import: %w", err)
	}
	if m.Service != service {
		return nil, view, fmt.Errorf("snapshot: import %q: snapshot %s holds service %q, not %q: %w", ref, m.ID, m.Service, service, core.ErrInvalid)
	}
	data, err := r.r.ReadView(ctx, m)
	if err != nil {
		return nil, view, fmt.Errorf("snapshot: import %q: %w", ref, err)
	}
	if err := json.Unmarshal(data, &view); err != nil {
		return nil, view, fmt.Errorf("snapshot: import %q: view of %s: %w", ref, m.ID, core.NewViewError(core.KindSerialize, service, err))
	}
	return m, view, nil
}
