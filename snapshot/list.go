package snapshot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/store"
)

// Latest is the ref naming the newest snapshot that matches a filter.
const Latest = "latest"

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
// abandoned) are not listed.
//
// A manifest that fails decoding or validation does not hide the others:
// List returns every valid snapshot that matches f together with a
// *[ListError] naming the invalid ones, whatever f (their service, account
// and region cannot be trusted). Any other failure returns no snapshots.
func (r *Repo) List(ctx context.Context, f Filter) ([]*manifest.Manifest, error) {
	var ids []string
	err := r.st.List(ctx, store.SnapshotsPrefix, func(info store.ObjectInfo) error {
		if hexID, ok := strings.CutSuffix(strings.TrimPrefix(info.Name, store.SnapshotsPrefix), "/manifest.json"); ok && store.IsHexDigest(hexID) {
			ids = append(ids, hexID)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot: list: %w", err)
	}
	ms := make([]*manifest.Manifest, len(ids))
	errs := make([]error, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.st.Budget().MaxRequests())
	for i, hexID := range ids {
		g.Go(func() error {
			m, err := r.readManifest(gctx, hexID, nil)
			switch {
			case errors.Is(err, core.ErrCorrupt):
				errs[i] = err
			case isNotFound(err):
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
			lerr.Invalid = append(lerr.Invalid, InvalidSnapshot{ID: "sha256:" + ids[i], Err: errs[i]})
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
	ID  string // "sha256:<hex>", the name of the snapshot's folder
	Err error  // what is wrong; matches core.ErrCorrupt
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
// so; a manifest that fails validation, one matching core.ErrCorrupt.
func (r *Repo) Show(ctx context.Context, ref string, f Filter) (*manifest.Manifest, error) {
	m, err := r.lookup(ctx, ref, f, nil)
	if err != nil {
		return nil, fmt.Errorf("snapshot: show: %w", err)
	}
	return m, nil
}

// lookup resolves ref and reads the manifest it names with opts, which may
// be nil. Its errors name ref; one that matches core.ErrNotFound begins
// "no snapshot matches ref".
func (r *Repo) lookup(ctx context.Context, ref string, f Filter, opts *manifest.DecodeOptions) (*manifest.Manifest, error) {
	hexID, err := r.resolve(ctx, ref, f)
	if err == nil {
		var m *manifest.Manifest
		if m, err = r.readManifest(ctx, hexID, opts); err == nil {
			return m, nil
		}
	}
	if isNotFound(err) {
		return nil, fmt.Errorf("no snapshot matches ref %q: %w", ref, err)
	}
	return nil, fmt.Errorf("ref %q: %w", ref, err)
}

// isNotFound reports whether err says that an object is missing, rather
// than the whole repository.
func isNotFound(err error) bool {
	return errors.Is(err, core.ErrNotFound) && !errors.Is(err, core.ErrBucketNotFound)
}

// resolve turns ref into a snapshot's hex id; an error matching
// core.ErrNotFound says why no snapshot matches. "latest" skips snapshots
// whose manifests are invalid.
func (r *Repo) resolve(ctx context.Context, ref string, f Filter) (string, error) {
	id := strings.TrimPrefix(ref, "sha256:")
	if store.IsHexDigest(id) {
		return id, nil
	}
	if ref == Latest {
		ms, err := r.List(ctx, f)
		if le := (*ListError)(nil); err != nil && !errors.As(err, &le) {
			return "", err
		}
		if len(ms) == 0 {
			return "", fmt.Errorf("no snapshot of %s: %w", f.describe(), core.ErrNotFound)
		}
		return ms[0].HexID(), nil
	}
	if store.ValidTag(ref) == nil {
		t, err := r.readTag(ctx, ref)
		if err == nil {
			return strings.TrimPrefix(t.Snapshot, "sha256:"), nil
		}
		if !isNotFound(err) {
			return "", err
		}
	}
	if len(id) < 4 || !isHex(id) {
		return "", fmt.Errorf("no tag has that name, and it is not an id prefix (4 or more lowercase hex digits): %w", core.ErrNotFound)
	}
	var matches []string
	err := r.st.List(ctx, store.SnapshotsPrefix+id[:2], func(info store.ObjectInfo) error {
		if hexID, ok := strings.CutSuffix(strings.TrimPrefix(info.Name, store.SnapshotsPrefix), "/manifest.json"); ok && store.IsHexDigest(hexID) && strings.HasPrefix(hexID, id) {
			matches = append(matches, hexID)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	switch len(matches) {
	case 0:
		return "", fmt.Errorf("no tag has that name, and no snapshot id starts with %q: %w", id, core.ErrNotFound)
	case 1:
		return matches[0], nil
	}
	sort.Strings(matches)
	return "", fmt.Errorf("id prefix %q is ambiguous: %d snapshots match (%s…): %w", id, len(matches), matches[0][:12], core.ErrInvalid)
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

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// readManifest reads, decodes and validates the manifest of hexID, and
// checks that it is stored under its own id.
func (r *Repo) readManifest(ctx context.Context, hexID string, opts *manifest.DecodeOptions) (*manifest.Manifest, error) {
	max := int64(manifest.DefaultMaxBytes)
	if opts != nil && opts.MaxBytes > 0 {
		max = opts.MaxBytes
	}
	name := store.ManifestName(hexID)
	data, err := r.st.GetBytes(ctx, name, max)
	if err != nil {
		return nil, err
	}
	m, err := manifest.Decode(data, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if m.HexID() != hexID {
		return nil, fmt.Errorf("%s: %w", name, &manifest.ValidationError{Field: "id", Index: -1,
			Err: fmt.Errorf("manifest of %s is stored under another id", m.ID)})
	}
	return m, nil
}

// TagInfo is the content of a tag: the snapshot it points at.
type TagInfo struct {
	Name     string    `json:"name"`
	Snapshot string    `json:"snapshot"`
	Updated  time.Time `json:"updated"`
}

// Tag points the tag name at the snapshot named by ref (see [Repo.Show]),
// creating or moving it, and returns that snapshot's manifest. The
// snapshot must exist: a ref that matches none is an error matching
// core.ErrNotFound.
func (r *Repo) Tag(ctx context.Context, name, ref string) (*manifest.Manifest, error) {
	if err := store.ValidTag(name); err != nil {
		return nil, fmt.Errorf("snapshot: tag: %w", err)
	}
	m, err := r.lookup(ctx, ref, Filter{}, nil)
	if err != nil {
		return nil, fmt.Errorf("snapshot: tag %q: %w", name, err)
	}
	data, err := json.MarshalIndent(TagInfo{Name: name, Snapshot: m.ID, Updated: time.Now().UTC()}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("snapshot: tag %q: %w", name, err)
	}
	if err := r.st.PutBytes(ctx, store.TagName(name), append(data, '\n'), store.PutOptions{ContentType: "application/json"}); err != nil {
		return nil, fmt.Errorf("snapshot: tag %q: %w", name, err)
	}
	return m, nil
}

// Tags returns every tag, sorted by name.
func (r *Repo) Tags(ctx context.Context) ([]TagInfo, error) {
	var names []string
	err := r.st.List(ctx, store.TagsPrefix, func(info store.ObjectInfo) error {
		if name, ok := strings.CutSuffix(strings.TrimPrefix(info.Name, store.TagsPrefix), ".json"); ok && store.ValidTag(name) == nil {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot: tags: %w", err)
	}
	sort.Strings(names)
	tags := make([]TagInfo, 0, len(names))
	for _, n := range names {
		t, err := r.readTag(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("snapshot: tags: %w", err)
		}
		tags = append(tags, t)
	}
	return tags, nil
}

func (r *Repo) readTag(ctx context.Context, name string) (TagInfo, error) {
	data, err := r.st.GetBytes(ctx, store.TagName(name), 64<<10)
	if err != nil {
		return TagInfo{}, err
	}
	var t TagInfo
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return TagInfo{}, fmt.Errorf("tag %q: %w: %w", name, core.ErrCorrupt, err)
	}
	if _, err := store.HexFromDigest(t.Snapshot); err != nil || t.Name != name {
		return TagInfo{}, fmt.Errorf("tag %q: malformed (names %q, snapshot %q): %w", name, t.Name, t.Snapshot, core.ErrCorrupt)
	}
	return t, nil
}
