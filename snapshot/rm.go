package snapshot

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
)

// RemoveOptions configure [Repo.Remove]. nil means the zero value.
type RemoveOptions struct {
	// KeepTags leaves the tags that point at removed snapshots; they then
	// name no snapshot.
	KeepTags bool
	// SigningKey, if set, requires refs that are tags to be signed with it.
	SigningKey []byte
	// Filter selects the snapshot when a ref is "latest".
	Filter Filter
	// OnRemoved, if set, is called after each snapshot is removed.
	OnRemoved func(Removed)
}

// Removed is a snapshot [Repo.Remove] removed.
type Removed struct {
	ID   digest.Digest `json:"id"`
	Tags []string      `json:"tags"` // the tags that pointed at it, removed
	// View is false when the snapshot had no view left to remove.
	View bool `json:"view"`
}

// Remove removes the snapshots that refs name (each a full id, a unique
// id prefix, a tag or "latest", see [Repo.Show]) and, unless
// opts.KeepTags, the tags that point at them, and returns what it
// removed, in the order of refs. Every ref is resolved first: a ref that
// names no snapshot is an error matching core.ErrNotFound, and nothing is
// removed. A snapshot goes in this order: its manifest, the commit point,
// first, so that it disappears whole at once; then its view; then its
// tags, each only if it still points at it. Its blobs stay until a
// garbage collection (see [Repo.GC]) finds them unreferenced. A snapshot
// whose manifest is invalid can be removed by its id.
func (r *Repo) Remove(ctx context.Context, refs []string, opts *RemoveOptions) ([]Removed, error) {
	if opts == nil {
		opts = &RemoveOptions{}
	}
	var ids []digest.Digest
	for _, ref := range refs {
		id, err := r.resolve(ctx, ref, opts.Filter, &manifest.DecodeOptions{HMACKey: opts.SigningKey})
		if err == nil {
			_, err = r.r.StatManifest(ctx, id)
		}
		if repo.IsNotFound(err) {
			return nil, fmt.Errorf("snapshot: rm: no snapshot matches ref %q: %w", ref, err)
		}
		if err != nil {
			return nil, fmt.Errorf("snapshot: rm: ref %q: %w", ref, err)
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	tagged := map[digest.Digest][]string{}
	if !opts.KeepTags {
		tags, err := r.Tags(ctx, nil)
		var terr *TagsError // damaged tags point at nothing known
		if err != nil && !errors.As(err, &terr) {
			return nil, fmt.Errorf("snapshot: rm: %w", err)
		}
		for _, t := range tags {
			tagged[t.Snapshot] = append(tagged[t.Snapshot], t.Name)
		}
	}
	removed := make([]Removed, 0, len(ids))
	for _, id := range ids {
		rm, err := r.remove(ctx, id, tagged[id])
		if err != nil {
			return removed, fmt.Errorf("snapshot: rm %s: %w", id, err)
		}
		removed = append(removed, rm)
		if opts.OnRemoved != nil {
			opts.OnRemoved(rm)
		}
	}
	return removed, nil
}

// remove removes the snapshot id: its manifest, its view, and those of
// tags that still point at it.
func (r *Repo) remove(ctx context.Context, id digest.Digest, tags []string) (Removed, error) {
	rm := Removed{ID: id, Tags: []string{}}
	if err := r.r.DeleteManifest(ctx, id); err != nil && !repo.IsNotFound(err) {
		return rm, err
	}
	switch err := r.r.DeleteView(ctx, id); {
	case err == nil:
		rm.View = true
	case !repo.IsNotFound(err):
		return rm, err
	}
	for _, name := range tags {
		// Read again: a tag moved since it was listed stays.
		t, err := r.r.ReadTag(ctx, name)
		switch {
		case repo.IsNotFound(err) || err == nil && t.Snapshot != id:
			continue
		case err != nil:
			return rm, err
		}
		if err := r.r.DeleteTag(ctx, name); err != nil && !repo.IsNotFound(err) {
			return rm, err
		}
		rm.Tags = append(rm.Tags, name)
	}
	return rm, nil
}
