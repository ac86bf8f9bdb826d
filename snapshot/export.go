package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/visitors"
)

// ExportOptions configure [Export] and [ExportState]. The zero value is
// ready to use; nil means the zero value.
type ExportOptions struct {
	// Tag, if set, is pointed at the snapshot once it is committed.
	Tag string
	// SigningKey, if set, signs the manifest with HMAC-SHA256.
	SigningKey []byte
	// Visitor configures the blob engine (spool threshold, temporary
	// directory, per-blob events).
	Visitor visitors.Options
	// Stats, if not nil, receives what the blob engine did.
	Stats *visitors.Stats
}

// check returns o, or the defaults when o is nil, after validating it.
func (o *ExportOptions) check() (*ExportOptions, error) {
	if o == nil {
		return &ExportOptions{}, nil
	}
	if o.Tag != "" {
		if err := store.ValidTag(o.Tag); err != nil {
			return nil, fmt.Errorf("snapshot: export: %w", err)
		}
	}
	return o, nil
}

// Export writes the state of svc for accountID and region into repo as a
// snapshot and returns its manifest. Blobs stream through the export
// engine; the view follows, then the manifest, written create-only, which
// commits the snapshot. The same state exported twice yields the same id,
// and the second export uploads nothing. If ctx is cancelled, or anything
// fails, no manifest is written.
func Export[V any](ctx context.Context, repo *Repo, svc core.BlobBackedService[V], accountID, region string, opts *ExportOptions) (*manifest.Manifest, error) {
	opts, err := opts.check()
	if err != nil {
		return nil, err
	}
	v := visitors.New(repo.st, &opts.Visitor)
	view, err := svc.SnapshotWithBlobs(ctx, accountID, region, v)
	if opts.Stats != nil {
		*opts.Stats = v.Stats()
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: export %s %s/%s: %w", svc.ServiceName(), accountID, region, err)
	}
	return commit(ctx, repo, svc.ServiceName(), accountID, region, view, v.Entries(), opts)
}

// ExportState writes the state of a service without blobs into repo as a
// snapshot and returns its manifest (see [Export]). A service that is
// also a core.BlobBackedService is refused with an error matching
// core.ErrInvalid: its snapshot would lack the blobs its view references.
// Use [Export] for it.
func ExportState[V any](ctx context.Context, repo *Repo, svc core.StatefulService[V], accountID, region string, opts *ExportOptions) (*manifest.Manifest, error) {
	if _, ok := svc.(core.BlobBackedService[V]); ok {
		return nil, fmt.Errorf("snapshot: export %s %s/%s: %T is a blob-backed service (core.BlobBackedService), and ExportState would commit its view without its blobs: use snapshot.Export: %w",
			svc.ServiceName(), accountID, region, svc, core.ErrInvalid)
	}
	opts, err := opts.check()
	if err != nil {
		return nil, err
	}
	view, err := svc.Snapshot(ctx, accountID, region)
	if err != nil {
		return nil, fmt.Errorf("snapshot: export %s %s/%s: %w", svc.ServiceName(), accountID, region, err)
	}
	return commit(ctx, repo, svc.ServiceName(), accountID, region, view, nil, opts)
}

// commit writes the view and then the manifest, create-only.
func commit(ctx context.Context, repo *Repo, service, accountID, region string, view any, blobs []manifest.Entry, opts *ExportOptions) (*manifest.Manifest, error) {
	where := fmt.Sprintf("%s %s/%s", service, accountID, region)
	viewJSON, err := json.Marshal(view)
	if err != nil {
		return nil, fmt.Errorf("snapshot: export %s: %w", where, core.NewViewError(core.KindSerialize, service, err))
	}
	sum := sha256.Sum256(viewJSON)
	m, err := manifest.New(service, accountID, region, manifest.Object{Digest: store.Digest(sum[:]), Size: int64(len(viewJSON))}, blobs)
	if err != nil {
		return nil, fmt.Errorf("snapshot: export %s: %w", where, err)
	}
	if opts.SigningKey != nil {
		if err := m.Sign(opts.SigningKey); err != nil {
			return nil, fmt.Errorf("snapshot: export %s: %w", where, err)
		}
	}
	data, err := manifest.Encode(m)
	if err != nil {
		return nil, fmt.Errorf("snapshot: export %s: %w", where, err)
	}
	hexID := m.HexID()
	if stored, err := repo.readManifest(ctx, hexID, nil); err == nil {
		if !stored.Equal(m) {
			return nil, fmt.Errorf("snapshot: export %s: stored snapshot %s differs from its own id: %w", where, m.ID, core.ErrCorrupt)
		}
		return stored, repo.tagAfterExport(ctx, opts.Tag, stored)
	} else if !errors.Is(err, core.ErrNotFound) && !errors.Is(err, core.ErrBucketNotFound) {
		return nil, fmt.Errorf("snapshot: export %s: %w", where, err)
	}
	// Blobs first, durable, then the view, then the manifest: a snapshot
	// whose manifest survives a crash has all it references.
	if err := repo.st.Sync(ctx); err != nil {
		return nil, fmt.Errorf("snapshot: export %s: %w", where, err)
	}
	if err := repo.st.PutBytes(ctx, store.ViewName(hexID), viewJSON, store.PutOptions{SHA256: sum[:], ContentType: "application/json"}); err != nil {
		return nil, fmt.Errorf("snapshot: export %s: view: %w", where, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("snapshot: export %s: %w", where, context.Cause(ctx))
	}
	msum := sha256.Sum256(data)
	err = repo.st.PutBytes(ctx, store.ManifestName(hexID), data, store.PutOptions{CreateOnly: true, SHA256: msum[:], ContentType: "application/json"})
	if errors.Is(err, core.ErrExists) {
		// A concurrent exporter of the same state, or our own retried
		// request whose first try landed: identical content is success.
		stored, rerr := repo.readManifest(ctx, hexID, nil)
		if rerr != nil {
			return nil, fmt.Errorf("snapshot: export %s: manifest exists, reading it back: %w", where, rerr)
		}
		if !stored.Equal(m) {
			return nil, fmt.Errorf("snapshot: export %s: a different manifest is stored under %s: %w", where, m.ID, core.ErrConflict)
		}
		return stored, repo.tagAfterExport(ctx, opts.Tag, stored)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: export %s: manifest: %w", where, err)
	}
	return m, repo.tagAfterExport(ctx, opts.Tag, m)
}

func (r *Repo) tagAfterExport(ctx context.Context, tag string, m *manifest.Manifest) error {
	if tag == "" {
		return nil
	}
	if _, err := r.Tag(ctx, tag, m.ID); err != nil {
		return fmt.Errorf("snapshot: export: snapshot %s committed, but: %w", m.ID, err)
	}
	return nil
}
