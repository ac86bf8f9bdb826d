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
// abandoned) are not listed. A manifest that fails validation is an error
// naming it.
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
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.st.Budget().MaxRequests())
	for i, hexID := range ids {
		g.Go(func() error {
			m, err := r.readManifest(gctx, hexID, nil)
			if err != nil {
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
	for _, m := range ms {
		if f.match(m) {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Show returns the manifest of the snapshot named by ref: a full id
// ("sha256:<hex>" or the hex alone), a unique prefix of at least 4 hex
// digits, a tag, or "latest" (the newest snapshot matching f).
func (r *Repo) Show(ctx context.Context, ref string, f Filter) (*manifest.Manifest, error) {
	hexID, err := r.resolve(ctx, ref, f)
	if err != nil {
		return nil, fmt.Errorf("snapshot: show %q: %w", ref, err)
	}
	m, err := r.readManifest(ctx, hexID, nil)
	if err != nil {
		return nil, fmt.Errorf("snapshot: show %q: %w", ref, err)
	}
	return m, nil
}

// resolve turns ref into a snapshot's hex id.
func (r *Repo) resolve(ctx context.Context, ref string, f Filter) (string, error) {
	id := strings.TrimPrefix(ref, "sha256:")
	if store.IsHexDigest(id) {
		return id, nil
	}
	if ref == Latest {
		ms, err := r.List(ctx, f)
		if err != nil {
			return "", err
		}
		if len(ms) == 0 {
			return "", fmt.Errorf("no snapshot matches %s: %w", f.describe(), core.ErrNotFound)
		}
		return ms[0].HexID(), nil
	}
	if store.ValidTag(ref) == nil {
		t, err := r.readTag(ctx, ref)
		if err == nil {
			return strings.TrimPrefix(t.Snapshot, "sha256:"), nil
		}
		if !errors.Is(err, core.ErrNotFound) {
			return "", err
		}
	}
	if len(id) < 4 || !isHex(id) {
		return "", fmt.Errorf("no tag %q, and it is not an id prefix (4 or more lowercase hex digits): %w", ref, core.ErrNotFound)
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
		return "", fmt.Errorf("no snapshot id starts with %q and no tag has that name: %w", id, core.ErrNotFound)
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
			Err: fmt.Errorf("manifest of %s is stored under another id: %w", m.ID, core.ErrInvalid)})
	}
	return m, nil
}

// TagInfo is the content of a tag: the snapshot it points at.
type TagInfo struct {
	Name     string    `json:"name"`
	Snapshot string    `json:"snapshot"`
	Updated  time.Time `json:"updated"`
}

// Tag points the tag name at the snapshot named by ref, creating or moving
// it. The snapshot must exist.
func (r *Repo) Tag(ctx context.Context, name, ref string) error {
	if err := store.ValidTag(name); err != nil {
		return fmt.Errorf("snapshot: tag: %w", err)
	}
	m, err := r.Show(ctx, ref, Filter{})
	if err != nil {
		return fmt.Errorf("snapshot: tag %q: %w", name, err)
	}
	data, err := json.MarshalIndent(TagInfo{Name: name, Snapshot: m.ID, Updated: time.Now().UTC()}, "", "  ")
	if err != nil {
		return fmt.Errorf("snapshot: tag %q: %w", name, err)
	}
	if err := r.st.PutBytes(ctx, store.TagName(name), append(data, '\n'), store.PutOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("snapshot: tag %q: %w", name, err)
	}
	return nil
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
		return TagInfo{}, fmt.Errorf("tag %q: %w: %w", name, core.ErrInvalid, err)
	}
	if _, err := store.HexFromDigest(t.Snapshot); err != nil || t.Name != name {
		return TagInfo{}, fmt.Errorf("tag %q: malformed (names %q, snapshot %q): %w", name, t.Name, t.Snapshot, core.ErrInvalid)
	}
	return t, nil
}
