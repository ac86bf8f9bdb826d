package snapshot

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
)

// TagOptions configure [Repo.Tag]. The zero value, like nil, moves a tag
// by compare-and-swap, unsigned.
type TagOptions struct {
	// Force moves the tag whatever it points at by then, without
	// compare-and-swap: the last writer wins.
	Force bool
	// SigningKey, if set, signs the tag; and the ref, when it is a tag,
	// and the snapshot's manifest must be signed with it.
	SigningKey []byte
	// Filter selects the snapshot when the ref is "latest".
	Filter Filter
}

// TagResult says what [Repo.Tag] did.
type TagResult struct {
	// Manifest is the manifest of the snapshot the tag now points at.
	Manifest *manifest.Manifest
	// Tag is the record written.
	Tag repo.Tag
	// Previous is the record replaced; nil for a new tag.
	Previous *repo.Tag
	// Unconditional is set when the repository's store cannot compare and
	// swap, so that the tag was replaced without checking that it had not
	// moved since it was read.
	Unconditional bool
}

// Tag points the tag name at the snapshot named by ref (see [Repo.Show]),
// creating or moving it. The snapshot must exist: a ref that matches none
// is an error matching core.ErrNotFound. A name that a ref could read as
// an id, or "latest", is refused (see [repo.ValidTag]).
//
// Moving a tag is a compare-and-swap where the store can (see
// [repo.Repo.WriteTag]): if another writer creates, moves or removes the
// tag between its read and its write, the tag is left as that writer left
// it, and the error, matching core.ErrConflict, is a
// [*repo.TagConflictError] naming what the tag points at now. With
// opts.Force the last writer wins.
func (r *Repo) Tag(ctx context.Context, name, ref string, opts *TagOptions) (*TagResult, error) {
	if opts == nil {
		opts = &TagOptions{}
	}
	if err := repo.ValidTag(name); err != nil {
		return nil, fmt.Errorf("snapshot: tag: %w", err)
	}
	m, err := r.lookup(ctx, ref, opts.Filter, &manifest.DecodeOptions{HMACKey: opts.SigningKey})
	if err != nil {
		return nil, fmt.Errorf("snapshot: tag %q: %w", name, err)
	}
	change, err := r.r.WriteTag(ctx, name, m.ID, &repo.TagOptions{Force: opts.Force, SigningKey: opts.SigningKey})
	if err != nil {
		return nil, fmt.Errorf("snapshot: tag %q: %w", name, err)
	}
	return &TagResult{Manifest: m, Tag: change.Tag, Previous: change.Previous, Unconditional: change.Unconditional}, nil
}

// Untag removes the tag name and returns the record removed (zero if it
// did not decode). A missing tag is an error matching core.ErrNotFound.
// The snapshot it pointed at stays.
func (r *Repo) Untag(ctx context.Context, name string) (repo.Tag, error) {
	if err := repo.ValidTag(name); err != nil {
		return repo.Tag{}, fmt.Errorf("snapshot: untag: %w", err)
	}
	t, err := r.r.ReadTag(ctx, name)
	switch {
	case repo.IsNotFound(err):
		return repo.Tag{}, fmt.Errorf("snapshot: untag: no tag %q: %w", name, err)
	case err != nil && !errors.Is(err, core.ErrCorrupt):
		return repo.Tag{}, fmt.Errorf("snapshot: untag: %w", err)
	}
	if err := r.r.DeleteTag(ctx, name); err != nil {
		if repo.IsNotFound(err) {
			return repo.Tag{}, fmt.Errorf("snapshot: untag: no tag %q (removed meanwhile): %w", name, err)
		}
		return repo.Tag{}, fmt.Errorf("snapshot: untag: %w", err)
	}
	return t, nil
}

// TagsOptions configure [Repo.Tags]. nil means the zero value.
type TagsOptions struct {
	// SigningKey, if set, leaves out the tags not signed with it,
	// reporting them as invalid.
	SigningKey []byte
	// OnStart, if set, is called once the tags are listed, with their
	// number, before any is read.
	OnStart func(tags int)
	// OnTag, if set, is called after each tag is read, one call at a
	// time.
	OnTag func()
}

// Tags returns every tag, sorted by name, reading them in parallel within
// the repository's budget. A tag whose record is damaged (or, with
// opts.SigningKey, not signed with it) does not hide the others: Tags
// returns every valid tag together with a *[TagsError] naming the invalid
// ones. Any other failure returns no tags.
func (r *Repo) Tags(ctx context.Context, opts *TagsOptions) ([]repo.Tag, error) {
	if opts == nil {
		opts = &TagsOptions{}
	}
	names, err := r.r.ListTags(ctx)
	if err != nil {
		return nil, fmt.Errorf("snapshot: tags: %w", err)
	}
	if opts.OnStart != nil {
		opts.OnStart(len(names))
	}
	tags := make([]repo.Tag, 0, len(names))
	var terr TagsError
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.r.Budget().MaxRequests())
	for _, name := range names {
		g.Go(func() error {
			t, err := r.r.ReadTag(gctx, name)
			if err == nil && len(opts.SigningKey) > 0 {
				err = t.VerifySignature(opts.SigningKey)
			}
			mu.Lock()
			defer mu.Unlock()
			if opts.OnTag != nil {
				opts.OnTag()
			}
			switch {
			case err == nil:
				tags = append(tags, t)
			case errors.Is(err, core.ErrCorrupt):
				terr.Invalid = append(terr.Invalid, InvalidTag{Name: name, Err: err})
			case !repo.IsNotFound(err): // a tag removed since it was listed is no tag
				return fmt.Errorf("snapshot: tags: %w", err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i].Name < tags[j].Name })
	if len(terr.Invalid) > 0 {
		sort.Slice(terr.Invalid, func(i, j int) bool { return terr.Invalid[i].Name < terr.Invalid[j].Name })
		return tags, &terr
	}
	return tags, nil
}

// InvalidTag is a tag whose record is damaged, or not signed with the key
// given.
type InvalidTag struct {
	Name string
	Err  error // what is wrong; matches core.ErrCorrupt
}

// TagsError reports the tags [Repo.Tags] left out. It matches
// core.ErrCorrupt with errors.Is, and errors.As reaches each tag's error.
type TagsError struct {
	Invalid []InvalidTag // sorted by name; never empty
}

// Error returns a message naming every invalid tag and its fault.
func (e *TagsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "snapshot: tags: %d invalid tag(s) left out", len(e.Invalid))
	for _, t := range e.Invalid {
		fmt.Fprintf(&b, "; %v", t.Err)
	}
	return b.String()
}

// Unwrap returns the error of each invalid tag.
func (e *TagsError) Unwrap() []error {
	errs := make([]error, len(e.Invalid))
	for i, t := range e.Invalid {
		errs[i] = t.Err
	}
	return errs
}
