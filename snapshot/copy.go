package snapshot

import (
	"context"
	"errors"
	"fmt"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/visitors"
)

// CopyOptions configure [Copy]. The zero value is ready to use; nil means
// the zero value.
type CopyOptions struct {
	// Filter selects the snapshot the ref "latest" names: the newest
	// matching it. The zero Filter matches every snapshot.
	Filter Filter
	// NoTags copies the snapshots without the tags that point at them.
	NoTags bool
	// Manifest configures the decoding of the source's manifests: caps,
	// and the HMAC key that verifies signed ones.
	Manifest manifest.DecodeOptions
	// Visitor configures the blob engine that writes to the target (spool
	// threshold, temporary directory, per-blob events). Its OnBlob is
	// called once per blob entry of each snapshot copied, Uploaded set
	// for the blobs transferred. DryRun is not allowed.
	Visitor visitors.Options
	// OnStart, if set, is called once the source's manifests are read,
	// before any blob is copied, with the number of blob entries and
	// their total size over the snapshots the target does not hold yet:
	// the number of OnBlob events to come.
	OnStart func(blobs int, bytes int64)
}

// CopyReport says what [Copy] did.
type CopyReport struct {
	// Snapshots are the snapshots the refs named, each once, in the order
	// of the refs; on failure, those handled before it.
	Snapshots []CopiedSnapshot
	// Tags are the tags written on the target, in the order of the
	// snapshots, each by name.
	Tags []CopiedTag
	// Blobs is the number of blob entries of the snapshots copied, and
	// Bytes their total size.
	Blobs int
	Bytes int64
	// Transferred is the number of blobs downloaded from the source and
	// stored on the target, and TransferredBytes their size; the others
	// (Skipped) the target held already, or they shared a digest with a
	// blob transferred.
	Transferred      int
	TransferredBytes int64
	Skipped          int
}

// CopiedSnapshot is one snapshot [Copy] handled.
type CopiedSnapshot struct {
	Manifest *manifest.Manifest
	// Existed reports a snapshot the target held already: nothing of it
	// was copied.
	Existed bool
}

// CopiedTag is a tag [Copy] wrote on the target.
type CopiedTag struct {
	Name     string
	Snapshot digest.Digest // the snapshot it points at, as on the source
	// Previous is the snapshot the tag pointed at on the target before
	// it was moved, or "" when the target had no such tag. A tag already
	// pointing at Snapshot is left alone and not reported.
	Previous digest.Digest
}

// Copy copies the snapshots the refs name from from to to, with the
// tags that point at them on from (unless opts.NoTags), and returns what
// it did. A ref is a full id, a unique id prefix, a tag, or "latest"
// (the newest snapshot matching opts.Filter); refs naming one snapshot
// copy it once.
//
// Every manifest named, and every tag to copy, is read and validated
// before any blob moves. For each snapshot the target does not hold yet,
// the blobs the target lacks move from source to target, concurrently
// under the target's budget, each checked against the size and digest
// its entry records as it is stored: small ones spooled in memory, larger
// ones streamed from source to target without a copy on disk (see
// [visitors.Visitor.Copy]). The target's blobs are never listed: those of
// the snapshots the target's copies of the same tags point at, and of the
// target's head of the snapshot's scope (see [ExportOptions].Parent),
// cost no request, and the others are found stored as they are written or
// looked up. A copied snapshot becomes the head of its scope on the
// target. Then the
// view, checked too, and last the manifest, create-only, with the
// source's exact bytes, so that the id and any signature stay valid.
// Tags are written on the target after the manifest they point at: a tag
// the target has pointing elsewhere is moved to follow the source, and
// the report says where it pointed.
//
// Copy holds a shared lock on the target from before it reads the
// target's parents until its last tag is written, as [Export] does; it
// takes no lock on the source, which it only reads. A damaged source
// blob fails the copy with a [*repo.MismatchError] naming its key, and
// leaves no manifest and no tag of that snapshot on the target;
// snapshots handled before it stay copied. Interrupted at any point, a
// copy leaves the target holding only whole snapshots, and run again it
// transfers only what is missing.
func Copy(ctx context.Context, from, to *Repo, refs []string, opts *CopyOptions) (*CopyReport, error) {
	if opts == nil {
		opts = &CopyOptions{}
	}
	if opts.Visitor.DryRun {
		return nil, fmt.Errorf("snapshot: copy: CopyOptions.Visitor.DryRun: a copy always writes: %w", core.ErrInvalid)
	}
	if len(refs) == 0 {
		return nil, fmt.Errorf("snapshot: copy: no ref given: %w", core.ErrInvalid)
	}
	srcs, err := from.copySources(ctx, refs, opts)
	if err != nil {
		return nil, err
	}
	lock, err := to.r.Lock(ctx, repo.SharedLock)
	if err != nil {
		return nil, fmt.Errorf("snapshot: copy to %s: %w", to.Location(), err)
	}
	rep := &CopyReport{}
	err = to.copyLocked(ctx, lock, from, srcs, opts, rep)
	// Released even when ctx is done, as an export releases its lock.
	if uerr := lock.Unlock(context.WithoutCancel(ctx)); uerr != nil {
		err = errors.Join(err, fmt.Errorf("snapshot: copy to %s: %w", to.Location(), uerr))
	}
	return rep, err
}

// copySource is a snapshot to copy: its manifest as stored on the
// source, and the source's tags that point at it.
type copySource struct {
	m    *manifest.Manifest
	data []byte
	tags []repo.Tag
}

// copySources resolves refs on r, the source, and reads their manifests
// and, unless opts.NoTags, the tags pointing at them.
func (r *Repo) copySources(ctx context.Context, refs []string, opts *CopyOptions) ([]*copySource, error) {
	var srcs []*copySource
	byID := map[digest.Digest]*copySource{}
	for _, ref := range refs {
		m, data, err := r.lookupBytes(ctx, ref, opts.Filter, &opts.Manifest)
		if err != nil {
			return nil, fmt.Errorf("snapshot: copy from %s: %w", r.Location(), err)
		}
		if byID[m.ID] == nil {
			byID[m.ID] = &copySource{m: m, data: data}
			srcs = append(srcs, byID[m.ID])
		}
	}
	if opts.NoTags {
		return srcs, nil
	}
	tags, err := r.Tags(ctx, &TagsOptions{SigningKey: opts.Manifest.HMACKey})
	if err != nil {
		return nil, fmt.Errorf("snapshot: copy from %s: %w", r.Location(), err)
	}
	for _, t := range tags {
		if src := byID[t.Snapshot]; src != nil {
			src.tags = append(src.tags, t)
		}
	}
	return srcs, nil
}

// copyLocked copies srcs from from to r, the target, on which lock is
// held, recording in rep what it does.
func (r *Repo) copyLocked(ctx context.Context, lock *repo.Lock, from *Repo, srcs []*copySource, opts *CopyOptions, rep *CopyReport) error {
	var todo []*copySource
	for _, src := range srcs {
		held, err := r.holds(ctx, src.m)
		if err != nil {
			return fmt.Errorf("snapshot: copy %s to %s: %w", src.m.ID, r.Location(), err)
		}
		if held {
			rep.Snapshots = append(rep.Snapshots, CopiedSnapshot{Manifest: src.m, Existed: true})
			if err := r.copyTags(ctx, src, rep); err != nil {
				return err
			}
			continue
		}
		todo = append(todo, src)
	}
	if opts.OnStart != nil {
		var blobs int
		var bytes int64
		for _, src := range todo {
			blobs += len(src.m.Blobs)
			bytes += src.m.TotalSize() - src.m.View.Size
		}
		opts.OnStart(blobs, bytes)
	}
	// One engine for every snapshot: a blob shared by several snapshots
	// moves once, and the parents of one serve the others.
	v := visitors.New(r.r, &opts.Visitor)
	p := r.parents(v, opts.Manifest.HMACKey)
	defer func() {
		st := v.Stats()
		rep.Blobs, rep.Bytes, rep.Skipped = st.Blobs, st.Bytes, st.Skipped
		rep.Transferred, rep.TransferredBytes = st.Uploaded, st.UploadedBytes
	}()
	for _, src := range todo {
		m := src.m
		// Under the shared lock, as an export reads its parents.
		for _, t := range src.tags {
			p.addTag(ctx, t.Name)
		}
		head := p.addHead(ctx, m.Service, m.Account, m.Region)
		if err := v.Copy(ctx, from.r, m.Blobs); err != nil {
			return fmt.Errorf("snapshot: copy %s from %s to %s: %w", m.ID, from.Location(), r.Location(), err)
		}
		view, err := from.r.ReadView(ctx, m)
		if err != nil {
			return fmt.Errorf("snapshot: copy %s from %s: %w", m.ID, from.Location(), err)
		}
		stored, err := r.commitAfterBlobs(ctx, lock, m, view, src.data)
		if err != nil {
			return fmt.Errorf("snapshot: copy %s to %s: %w", m.ID, r.Location(), err)
		}
		r.moveHead(ctx, stored, head)
		rep.Snapshots = append(rep.Snapshots, CopiedSnapshot{Manifest: m})
		if err := r.copyTags(ctx, src, rep); err != nil {
			return err
		}
	}
	return nil
}

// holds reports whether r holds the snapshot m describes already: a
// manifest stored under its id, with the same content.
func (r *Repo) holds(ctx context.Context, m *manifest.Manifest) (bool, error) {
	stored, err := r.r.ReadManifest(ctx, m.ID, nil)
	switch {
	case errors.Is(err, core.ErrNotFound), errors.Is(err, core.ErrBucketNotFound):
		return false, nil
	case err != nil:
		return false, err
	case !stored.Equal(m):
		return false, fmt.Errorf("stored snapshot %s differs from its own id: %w", m.ID, core.ErrCorrupt)
	}
	return true, nil
}

// copyTags points the tags of src at its snapshot on r, the target,
// moving those that point elsewhere by compare-and-swap, with their
// records as they are on the source, signatures included.
func (r *Repo) copyTags(ctx context.Context, src *copySource, rep *CopyReport) error {
	for _, t := range src.tags {
		ct := CopiedTag{Name: t.Name, Snapshot: t.Snapshot}
		old, err := r.r.ReadTag(ctx, t.Name)
		switch {
		case err == nil && old.Snapshot == t.Snapshot:
			continue
		case err == nil:
			ct.Previous = old.Snapshot
		case !repo.IsNotFound(err) && !errors.Is(err, core.ErrCorrupt):
			// A damaged tag on the target is replaced.
			return fmt.Errorf("snapshot: copy tag %q to %s: %w", t.Name, r.Location(), err)
		}
		if _, err := r.r.PutTag(ctx, t, nil); err != nil {
			return fmt.Errorf("snapshot: copy tag %q to %s: snapshot %s copied, but: %w", t.Name, r.Location(), t.Snapshot, err)
		}
		rep.Tags = append(rep.Tags, ct)
	}
	return nil
}
