package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/visitors"
)

// ExportOptions configure [Export] and [ExportState]. The zero value is
// ready to use; nil means the zero value.
type ExportOptions struct {
	// Tag, if set, is pointed at the snapshot once it is committed, by
	// compare-and-swap (see [Repo.Tag]): if another writer moves it at the
	// same time, the export fails with an error matching core.ErrConflict,
	// its snapshot committed.
	Tag string
	// Parent, if set, names a snapshot of the repository to deduplicate
	// against: a ref (a full id, a unique id prefix, a tag, or "latest",
	// the newest snapshot of the export's service, account and region).
	// The blobs its manifest records are taken as stored, and cost no
	// request. A ref that names no snapshot fails the export with an
	// error matching core.ErrNotFound that names it. Whether Parent is set
	// or not, the snapshot Tag points at, if it exists, and the head of
	// the export's scope (the snapshot last committed for the same
	// service, account and region), if it is still there, are parents
	// too. A dry run reads no parent. See docs/design.md,
	// "Deduplication".
	Parent string
	// SigningKey, if set, signs the manifest and the tag with
	// HMAC-SHA256 (see manifest.Manifest.Sign and repo.Tag.Sign). A
	// parent whose manifest, or tag, is not signed with it is not used.
	SigningKey []byte
	// Visitor configures the blob engine (spool threshold, temporary
	// directory, per-blob events).
	Visitor visitors.Options
	// Stats, if not nil, receives what the blob engine did.
	Stats *visitors.Stats
	// DryRun computes the snapshot the export would commit, and returns
	// its manifest, without touching the repository: every blob is hashed
	// as it streams, and nothing is listed, read, locked or written, not
	// even the tag. The id is the one a real export of the same state
	// commits, so a CI job can key a cache on it and skip work when that
	// snapshot exists already. The manifest's creation time is the dry
	// run's. The repository may be nil.
	DryRun bool
}

// check returns o, or the defaults when o is nil, after validating it.
func (o *ExportOptions) check() (*ExportOptions, error) {
	if o == nil {
		return &ExportOptions{}, nil
	}
	if o.Tag != "" {
		if err := repo.ValidTag(o.Tag); err != nil {
			return nil, fmt.Errorf("snapshot: export: %w", err)
		}
	}
	return o, nil
}

// Export writes the state of svc for accountID and region into r as a
// snapshot and returns its manifest. Blobs stream through the export
// engine; the view follows, then the manifest, written create-only, which
// commits the snapshot. The same state exported twice yields the same id,
// and the second export uploads nothing. If ctx is cancelled, or anything
// fails, no manifest is written.
//
// Blobs the repository holds are not uploaded again: those of the parent
// snapshots (see ExportOptions.Parent) cost no request, and the others
// are found stored as they are written or looked up (see package
// visitors); nothing is listed, so the cost follows the state, not the
// repository. Once committed, the snapshot becomes the head of its scope,
// the parent of the next export of the same service, account and region.
//
// The export holds a shared lock on the repository from before it reads
// its parents until the manifest is committed, so that a garbage
// collection cannot delete blobs it relies on; an exclusive lock (a
// collection running) makes it fail with an error matching
// core.ErrConflict that names that lock. Once it holds the lock, if
// another lock is stale (a writer was killed), it removes the temporary
// files that writers killed long ago left behind, on drivers that leave
// such files (see store.Cleaner).
func Export[V any](ctx context.Context, r *Repo, svc core.BlobBackedService[V], accountID, region string, opts *ExportOptions) (*manifest.Manifest, error) {
	opts, err := opts.check()
	if err != nil {
		return nil, err
	}
	where := fmt.Sprintf("%s %s/%s", svc.ServiceName(), accountID, region)
	return r.locked(ctx, where, opts.DryRun, func(lock *repo.Lock) (*manifest.Manifest, error) {
		vopts := opts.Visitor
		vopts.DryRun = opts.DryRun
		v := visitors.New(r.layer(), &vopts)
		var head digest.Digest
		var parent *manifest.Manifest // the head's manifest, as read
		if !opts.DryRun {
			// Under the shared lock: the blobs of a manifest read now stay
			// stored until the lock is released (docs/design.md,
			// "Deduplication").
			p := r.parents(v, opts.SigningKey)
			p.manifests = map[digest.Digest]*manifest.Manifest{}
			if opts.Parent != "" {
				if err := p.addRef(ctx, opts.Parent, Filter{Service: svc.ServiceName(), Account: accountID, Region: region}); err != nil {
					return nil, fmt.Errorf("snapshot: export %s: parent: %w", where, err)
				}
			}
			if opts.Tag != "" {
				p.addTag(ctx, opts.Tag)
			}
			head = p.addHead(ctx, svc.ServiceName(), accountID, region)
			parent = p.manifests[head]
			p.manifests = nil // the others are not kept for the export's length
		}
		view, err := svc.SnapshotWithBlobs(ctx, accountID, region, v)
		if werr := v.Wait(); err == nil {
			err = werr // an upload that failed after the last Visit
		}
		if opts.Stats != nil {
			*opts.Stats = v.Stats()
		}
		if err != nil {
			return nil, fmt.Errorf("snapshot: export %s: %w", where, err)
		}
		return commit(ctx, r, lock, head, parent, svc.ServiceName(), accountID, region, view, v.Entries(), opts)
	})
}

// parentSet reads the parents of an export or a copy in a repository, and
// tells its blob engine the blobs they record (see
// [visitors.Visitor.AddStored]). Its callers hold a shared lock on the
// repository.
type parentSet struct {
	r    *Repo
	v    *visitors.Visitor
	key  []byte
	read map[digest.Digest]bool
	// manifests are the parents read, by id, if not nil: an export's,
	// until it has read its head.
	manifests map[digest.Digest]*manifest.Manifest
}

// parents returns an empty set of the parents of v's writes into r; with
// key, only manifests, and tags, signed with it count.
func (r *Repo) parents(v *visitors.Visitor, key []byte) *parentSet {
	return &parentSet{r: r, v: v, key: key, read: map[digest.Digest]bool{}}
}

// decodeOptions verify the signature of a parent, with a key.
func (p *parentSet) decodeOptions() *manifest.DecodeOptions {
	return &manifest.DecodeOptions{HMACKey: p.key}
}

// addRef adds the snapshot ref names, "latest" being the newest matching
// f. A ref that names no snapshot is an error matching core.ErrNotFound;
// one whose manifest or tag is damaged, or not signed with the key, is
// not used, and no error: a parent only saves work.
func (p *parentSet) addRef(ctx context.Context, ref string, f Filter) error {
	m, err := p.r.lookup(ctx, ref, f, p.decodeOptions())
	switch {
	case errors.Is(err, core.ErrCorrupt):
		return nil
	case err != nil:
		return err
	}
	p.addManifest(m)
	return nil
}

// addTag adds the snapshot the tag name points at, if it exists and, with
// a key, tag and manifest are signed with it.
func (p *parentSet) addTag(ctx context.Context, name string) {
	if id, err := p.r.r.Resolve(ctx, name, p.key); err == nil {
		p.add(ctx, id)
	}
}

// addHead adds the head of the scope (service, account, region), if it is
// there and its snapshot is, and returns the id the head names, or ""
// when it has none: a head is a hint, whatever is wrong with it means no
// parent.
func (p *parentSet) addHead(ctx context.Context, service, account, region string) digest.Digest {
	h, err := p.r.r.ReadHead(ctx, service, account, region)
	if err != nil {
		return ""
	}
	p.add(ctx, h.Snapshot)
	return h.Snapshot
}

// add adds the committed snapshot id, unless its manifest cannot be read
// (it was removed, it is damaged) or, with a key, is not signed with it.
func (p *parentSet) add(ctx context.Context, id digest.Digest) {
	if p.read[id] {
		return
	}
	p.read[id] = true
	if m, err := p.r.r.ReadManifest(ctx, id, p.decodeOptions()); err == nil {
		p.addManifest(m)
	}
}

func (p *parentSet) addManifest(m *manifest.Manifest) {
	p.read[m.ID] = true
	if p.manifests != nil {
		p.manifests[m.ID] = m
	}
	p.v.AddStored(m.Blobs)
}

// ExportState writes the state of a service without blobs into r as a
// snapshot and returns its manifest (see [Export]). A service that is
// also a core.BlobBackedService is refused with an error matching
// core.ErrInvalid: its snapshot would lack the blobs its view references.
// Use [Export] for it.
func ExportState[V any](ctx context.Context, r *Repo, svc core.StatefulService[V], accountID, region string, opts *ExportOptions) (*manifest.Manifest, error) {
	where := fmt.Sprintf("%s %s/%s", svc.ServiceName(), accountID, region)
	if _, ok := svc.(core.BlobBackedService[V]); ok {
		return nil, fmt.Errorf("snapshot: export %s: %T is a blob-backed service (core.BlobBackedService), and ExportState would commit its view without its blobs: use snapshot.Export: %w",
			where, svc, core.ErrInvalid)
	}
	opts, err := opts.check()
	if err != nil {
		return nil, err
	}
	return r.locked(ctx, where, opts.DryRun, func(lock *repo.Lock) (*manifest.Manifest, error) {
		view, err := svc.Snapshot(ctx, accountID, region)
		if err != nil {
			return nil, fmt.Errorf("snapshot: export %s: %w", where, err)
		}
		return commit(ctx, r, lock, "", nil, svc.ServiceName(), accountID, region, view, nil, opts)
	})
}

// locked runs export, the export of where, holding a shared lock on the
// repository, and releases it after, whatever happened. A dry run takes
// no lock: export gets a nil one.
func (r *Repo) locked(ctx context.Context, where string, dryRun bool, export func(*repo.Lock) (*manifest.Manifest, error)) (*manifest.Manifest, error) {
	if dryRun {
		return export(nil)
	}
	if r == nil {
		return nil, fmt.Errorf("snapshot: export %s: nil repository: %w", where, core.ErrInvalid)
	}
	lock, err := r.r.Lock(ctx, repo.SharedLock)
	if err != nil {
		return nil, fmt.Errorf("snapshot: export %s: %w", where, err)
	}
	r.cleanAfterDeadWriters(ctx, lock)
	m, err := export(lock)
	// Released even when ctx is done: a lock left behind would hold off
	// garbage collection until it goes stale.
	switch uerr := lock.Unlock(context.WithoutCancel(ctx)); {
	case uerr == nil:
	case err == nil:
		err = fmt.Errorf("snapshot: export %s: snapshot %s committed, but: %w", where, m.ID, uerr)
	default:
		err = fmt.Errorf("%w (and then: %w)", err, uerr)
	}
	return m, err
}

// cleanAfterDeadWriters removes the temporary files that writers killed
// long ago left behind (see store.Cleaner), when a writer may have been
// killed: when another lock on the repository is stale. A killed writer
// leaves its lock, which stays until a collection removes it (see
// [Repo.GC]), so every export until then sweeps. Otherwise an export does
// not: sweeping reads every name a directory repository holds, and an
// export must cost what its state costs, not what the repository holds.
// A failure here is no reason to fail the export.
func (r *Repo) cleanAfterDeadWriters(ctx context.Context, own *repo.Lock) {
	locks, err := r.r.Locks(ctx)
	if err != nil {
		return
	}
	for _, l := range locks {
		if l.Stale && l.ID != own.Info().ID {
			_, _ = r.r.Store().CleanStale(ctx, 0)
			return
		}
	}
}

// layer returns the repository layer of r, or nil for a nil r (a dry
// run's).
func (r *Repo) layer() *repo.Repo {
	if r == nil {
		return nil
	}
	return r.r
}

// commit writes the view and then the manifest, create-only, unless the
// snapshot is already committed; then it makes it the head of its scope,
// unless head, the head read before the export, names it already, and
// moves the tag, if asked to.
func commit(ctx context.Context, r *Repo, lock *repo.Lock, head digest.Digest, parent *manifest.Manifest, service, accountID, region string, view any, blobs []manifest.Entry, opts *ExportOptions) (*manifest.Manifest, error) {
	where := fmt.Sprintf("%s %s/%s", service, accountID, region)
	viewJSON, err := json.Marshal(view)
	if err != nil {
		return nil, fmt.Errorf("snapshot: export %s: %w", where, core.NewViewError(core.KindSerialize, service, err))
	}
	m, err := manifest.New(service, accountID, region, manifest.Object{Digest: digest.FromBytes(viewJSON), Size: int64(len(viewJSON))}, blobs)
	if err != nil {
		return nil, fmt.Errorf("snapshot: export %s: %w", where, err)
	}
	if len(opts.SigningKey) > 0 {
		if err := m.Sign(opts.SigningKey); err != nil {
			return nil, fmt.Errorf("snapshot: export %s: %w", where, err)
		}
	}
	if opts.DryRun {
		return m, nil
	}
	stored, err := r.storedManifest(ctx, m.ID, parent)
	switch {
	case err == nil:
		if !stored.Equal(m) {
			return nil, fmt.Errorf("snapshot: export %s: stored snapshot %s differs from its own id: %w", where, m.ID, core.ErrCorrupt)
		}
		if stored, err = r.resign(ctx, stored, opts.SigningKey); err != nil {
			return nil, fmt.Errorf("snapshot: export %s: %w", where, err)
		}
		if err := r.ensureView(ctx, stored, viewJSON); err != nil {
			return nil, fmt.Errorf("snapshot: export %s: %w", where, err)
		}
		r.moveHead(ctx, stored, head)
		return stored, r.tagAfterExport(ctx, stored, opts)
	case !errors.Is(err, core.ErrNotFound) && !errors.Is(err, core.ErrBucketNotFound):
		return nil, fmt.Errorf("snapshot: export %s: %w", where, err)
	}
	stored, err = r.commitAfterBlobs(ctx, lock, m, viewJSON, nil)
	if err != nil {
		return nil, fmt.Errorf("snapshot: export %s: %w", where, err)
	}
	r.moveHead(ctx, stored, head)
	return stored, r.tagAfterExport(ctx, stored, opts)
}

// storedManifest returns the stored manifest of the snapshot id: parent,
// the manifest this export read and checked as it began, if it is that
// snapshot's and the snapshot is still committed (an unchanged state
// exported again reads its manifest once), or else the manifest as read
// now.
func (r *Repo) storedManifest(ctx context.Context, id digest.Digest, parent *manifest.Manifest) (*manifest.Manifest, error) {
	if parent != nil && parent.ID == id {
		if _, err := r.r.StatManifest(ctx, id); err == nil {
			return parent, nil
		}
	}
	return r.r.ReadManifest(ctx, id, nil)
}

// moveHead makes m, a committed snapshot, the head of its scope, unless
// head, the head as read before, names it already. A head is a hint: a
// failure to write it costs the next export its parent, not its
// correctness, and fails nothing.
func (r *Repo) moveHead(ctx context.Context, m *manifest.Manifest, head digest.Digest) {
	if head != m.ID {
		_ = r.r.WriteHead(ctx, m.Service, m.Account, m.Region, m.ID)
	}
}

// commitAfterBlobs commits m, whose blobs are stored, while holding lock:
// it makes the blobs durable, writes view, and then the manifest,
// create-only: data, the manifest's stored bytes as read from another
// repository, or m encoded when data is nil. It checks lock before the
// commit and after: a collection that took the lock for stale in between
// removed it before reading the manifests, and may be deleting blobs m
// relies on, so the commit is withdrawn (see docs/design.md, "Locks and
// garbage collection").
func (r *Repo) commitAfterBlobs(ctx context.Context, lock *repo.Lock, m *manifest.Manifest, view, data []byte) (*manifest.Manifest, error) {
	// Blobs first, durable, then the view, then the manifest: a snapshot
	// whose manifest survives a crash has all it references.
	if err := r.r.Sync(ctx); err != nil {
		return nil, err
	}
	if err := r.r.PutView(ctx, m, view); err != nil {
		return nil, fmt.Errorf("view: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	// The blobs listed as stored must still be: no collection may have
	// taken the lock for stale.
	if err := lock.Check(ctx); err != nil {
		return nil, err
	}
	var stored *manifest.Manifest
	var err error
	if data == nil {
		stored, err = r.r.CommitManifest(ctx, m)
	} else {
		stored, err = r.r.CommitManifestBytes(ctx, data)
	}
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if err := lock.Check(ctx); err != nil {
		if stored.Created.Equal(m.Created) { // this commit's manifest, not an earlier one's
			if derr := r.r.DeleteManifest(context.WithoutCancel(ctx), m.ID); derr != nil && !repo.IsNotFound(derr) {
				err = fmt.Errorf("%w; withdrawing snapshot %s failed too, and it may reference missing blobs (run verify on it, and rm it if so): %w", err, m.ID, derr)
			}
		}
		return nil, fmt.Errorf("lost the lock while committing snapshot %s, which is withdrawn: %w", m.ID, err)
	}
	if err := r.ensureView(ctx, stored, view); err != nil {
		return nil, err
	}
	return stored, nil
}

// resign signs m, a committed snapshot's manifest, with key, and stores
// it so, if key is set and m is not signed with it already: an export
// with a key of a state stored unsigned, or signed with another key,
// leaves it signed with its own. The creation time and producer stay.
func (r *Repo) resign(ctx context.Context, m *manifest.Manifest, key []byte) (*manifest.Manifest, error) {
	if len(key) == 0 || m.VerifySignature(key) == nil {
		return m, nil
	}
	signed := *m
	if err := signed.Sign(key); err != nil {
		return nil, err
	}
	if err := r.r.ReplaceManifest(ctx, &signed); err != nil {
		return nil, fmt.Errorf("sign stored snapshot %s: %w", m.ID, err)
	}
	return &signed, nil
}

// ensureView stores the view of m, a committed snapshot, again if it is
// missing: an rm of the same snapshot running concurrently with this
// export may have removed it between its upload and the commit.
func (r *Repo) ensureView(ctx context.Context, m *manifest.Manifest, view []byte) error {
	if _, err := r.r.StatView(ctx, m.ID); !repo.IsNotFound(err) {
		return err
	}
	return r.r.PutView(ctx, m, view)
}

// tagAfterExport points opts.Tag, if set, at m, signing it with
// opts.SigningKey, by compare-and-swap (see [Repo.Tag]).
func (r *Repo) tagAfterExport(ctx context.Context, m *manifest.Manifest, opts *ExportOptions) error {
	if opts.Tag == "" {
		return nil
	}
	if _, err := r.r.WriteTag(ctx, opts.Tag, m.ID, &repo.TagOptions{SigningKey: opts.SigningKey}); err != nil {
		return fmt.Errorf("snapshot: export: snapshot %s committed, but: %w", m.ID, err)
	}
	return nil
}
