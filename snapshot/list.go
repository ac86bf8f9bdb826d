package snapshot

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
)

// Latest is the ref naming the newest snapshot that matches a filter. No
// tag has that name.
const Latest = repo.Latest

// Filter selects snapshots by service, account and region; an empty field
// matches everything.
type Filter struct {
	Service string
	Account string
	Region  string
}

func (f Filter) match(m *manifest.Manifest) bool {
	return (f.Service == "" || f.Service == m.Service) &&
		(f.Account == "" || f.Account == m.Account) &&
		(f.Region == "" || f.Region == m.Region)
}

// List returns the committed snapshots that match f, newest first (ties
// broken by id). Snapshots without a manifest (an export in progress or
// abandoned) are not listed. Manifests are read in parallel, within the
// repository's budget of requests and buffered bytes.
//
// A manifest that fails decoding or validation does not hide the others:
// List returns every valid snapshot that matches f together with a
// *[ListError] naming the invalid ones, whatever f (their service, account
// and region cannot be trusted). Any other failure returns no snapshots.
func (r *Repo) List(ctx context.Context, f Filter) ([]*manifest.Manifest, error) {
	return r.list(ctx, f, nil)
}

// list is List reading manifests with opts, which may be nil.
func (r *Repo) list(ctx context.Context, f Filter, opts *manifest.DecodeOptions) ([]*manifest.Manifest, error) {
	var listed []repo.Object
	err := r.r.ListManifests(ctx, func(o repo.Object) error {
		listed = append(listed, o)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot: list: %w", err)
	}
	ms := make([]*manifest.Manifest, len(listed))
	errs := make([]error, len(listed))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.r.Budget().MaxRequests())
	for i, o := range listed {
		g.Go(func() error {
			m, err := r.r.ReadListedManifest(gctx, o, opts)
			switch {
			case errors.Is(err, core.ErrCorrupt):
				errs[i] = err
			case repo.IsNotFound(err):
				// Deleted since it was listed: no longer a snapshot.
			case err != nil:
				return fmt.Errorf("snapshot: list: %w", err)
			}
			ms[i] = m
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := ms[:0]
	var lerr ListError
	for i, m := range ms {
		switch {
		case errs[i] != nil:
			lerr.Invalid = append(lerr.Invalid, InvalidSnapshot{ID: listed[i].Digest, Err: errs[i]})
		case m != nil && f.match(m):
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	if len(lerr.Invalid) > 0 {
		sort.Slice(lerr.Invalid, func(i, j int) bool { return lerr.Invalid[i].ID < lerr.Invalid[j].ID })
		return out, &lerr
	}
	return out, nil
}

// InvalidSnapshot is a snapshot whose manifest is stored but fails
// decoding or validation.
type InvalidSnapshot struct {
	ID  digest.Digest // the id its manifest is stored under
	Err error         // what is wrong; matches core.ErrCorrupt
}

// ListError reports the snapshots [Repo.List] left out because their
// manifests are invalid. It matches core.ErrCorrupt with errors.Is, and
// errors.As reaches each snapshot's error.
type ListError struct {
	Invalid []InvalidSnapshot // sorted by id; never empty
}

// Error returns a message naming every invalid manifest and its fault.
func (e *ListError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "snapshot: list: %d invalid manifest(s) left out", len(e.Invalid))
	for _, s := range e.Invalid {
		fmt.Fprintf(&b, "; %v", s.Err)
	}
	return b.String()
}

// Unwrap returns the error of each invalid snapshot.
func (e *ListError) Unwrap() []error {
	errs := make([]error, len(e.Invalid))
	for i, s := range e.Invalid {
		errs[i] = s.Err
	}
	return errs
}

// Show returns the manifest of the snapshot named by ref: a full id
// ("sha256:<hex>" or the hex alone), a unique prefix of at least 4 hex
// digits, a tag, or "latest" (the newest snapshot matching f). A ref that
// names no snapshot yields an error matching core.ErrNotFound that says
// so; an ambiguous id prefix, one matching core.ErrInvalid that lists the
// snapshots it matches; a manifest that fails validation, one matching
// core.ErrCorrupt.
func (r *Repo) Show(ctx context.Context, ref string, f Filter) (*manifest.Manifest, error) {
	m, err := r.lookup(ctx, ref, f, nil)
	if err != nil {
		return nil, fmt.Errorf("snapshot: show: %w", err)
	}
	return m, nil
}

// lookup resolves ref and reads the manifest it names with opts, which may
// be nil; with a key in opts, a tag ref and the manifest must be signed
// with it. Its errors name ref; one that matches core.ErrNotFound begins
// "no snapshot matches ref".
func (r *Repo) lookup(ctx context.Context, ref string, f Filter, opts *manifest.DecodeOptions) (*manifest.Manifest, error) {
	m, _, err := r.lookupBytes(ctx, ref, f, opts)
	return m, err
}

// lookupBytes is lookup that also returns the manifest's stored bytes.
func (r *Repo) lookupBytes(ctx context.Context, ref string, f Filter, opts *manifest.DecodeOptions) (*manifest.Manifest, []byte, error) {
	id, err := r.resolve(ctx, ref, f, opts)
	if err == nil {
		var m *manifest.Manifest
		var data []byte
		if m, data, err = r.r.ReadManifestBytes(ctx, id, opts); err == nil {
			return m, data, nil
		}
	}
	if repo.IsNotFound(err) {
		return nil, nil, fmt.Errorf("no snapshot matches ref %q: %w", ref, err)
	}
	return nil, nil, fmt.Errorf("ref %q: %w", ref, err)
}

// resolve turns ref into a snapshot's id (see [repo.Repo.Resolve]),
// reading manifests, and verifying signatures, with opts, which may be
// nil; an error matching core.ErrNotFound says why no snapshot matches.
// "latest" skips snapshots whose manifests are invalid (or, with a key,
// not signed with it).
func (r *Repo) resolve(ctx context.Context, ref string, f Filter, opts *manifest.DecodeOptions) (digest.Digest, error) {
	if ref != Latest {
		var key []byte
		if opts != nil {
			key = opts.HMACKey
		}
		return r.r.Resolve(ctx, ref, key)
	}
	ms, err := r.list(ctx, f, opts)
	if le := (*ListError)(nil); err != nil && !errors.As(err, &le) {
		return "", err
	}
	if len(ms) == 0 {
		return "", fmt.Errorf("no snapshot of %s: %w", f.describe(), core.ErrNotFound)
	}
	return ms[0].ID, nil
}

func (f Filter) describe() string {
	var parts []string
	for _, p := range [][2]string{{"service", f.Service}, {"account", f.Account}, {"region", f.Region}} {
		if p[1] != "" {
			parts = append(parts, fmt.Sprintf("%s=%q", p[0], p[1]))
		}
	}
	if len(parts) == 0 {
		return "any service, account and region"
	}
	return strings.Join(parts, " ")
}
