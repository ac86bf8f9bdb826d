package repo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/store"
)

// PutView stores view, the JSON view of the snapshot m describes, after
// checking that its size and digest are the ones m records. The store
// checks the digest again on the way (see store.PutOptions.SHA256).
func (r *Repo) PutView(ctx context.Context, m *manifest.Manifest, view []byte) error {
	if int64(len(view)) != m.View.Size || digest.FromBytes(view) != m.View.Digest {
		return fmt.Errorf("repo: put view of %s: %d bytes with digest %s, but the manifest records %d bytes with digest %s: %w",
			m.ID, len(view), digest.FromBytes(view), m.View.Size, m.View.Digest, core.ErrInvalid)
	}
	return r.st.PutBytes(ctx, ViewName(m.ID), view, store.PutOptions{SHA256: m.View.Digest.Sum(), ContentType: jsonType})
}

// ReadView returns the JSON view of the snapshot m describes, checking
// its size before reading it (an object of another size is not read) and
// its digest after: a difference is a [*MismatchError].
func (r *Repo) ReadView(ctx context.Context, m *manifest.Manifest) ([]byte, error) {
	name := ViewName(m.ID)
	mismatch := func(expected, actual string, err error) error {
		return &MismatchError{View: true, Key: name, Expected: expected, Actual: actual, Err: err}
	}
	var view []byte
	err := r.readSized(ctx, name, func(size int64) error {
		if size != m.View.Size {
			return mismatch(sizeText(m.View.Size), sizeText(size), core.ErrSizeMismatch)
		}
		return nil
	}, func(data []byte) error {
		if got := digest.FromBytes(data); got != m.View.Digest {
			return mismatch(string(m.View.Digest), string(got), core.ErrChecksumMismatch)
		}
		view = data
		return nil
	})
	return view, err
}

func sizeText(n int64) string { return strconv.FormatInt(n, 10) + " bytes" }

// maxManifestBytes returns the cap on a manifest's size under opts.
func maxManifestBytes(opts *manifest.DecodeOptions) int64 {
	if opts != nil && opts.MaxBytes > 0 {
		return opts.MaxBytes
	}
	return manifest.DefaultMaxBytes
}

// ReadManifest reads, decodes and validates the manifest of the snapshot
// id with opts, which may be nil, and checks that it is stored under its
// own id. A manifest larger than opts' MaxBytes is refused before it is
// read; while one is read and decoded, its size is taken from the budget.
// A manifest that fails is an error matching core.ErrCorrupt naming it; a
// missing one, core.ErrNotFound.
func (r *Repo) ReadManifest(ctx context.Context, id digest.Digest, opts *manifest.DecodeOptions) (*manifest.Manifest, error) {
	m, _, err := r.ReadManifestBytes(ctx, id, opts)
	return m, err
}

// ReadManifestBytes is [Repo.ReadManifest] that also returns the bytes
// stored, as they are: a copy commits them unchanged (see
// [Repo.CommitManifestBytes]), so that the id and any signature stay
// those of the original.
func (r *Repo) ReadManifestBytes(ctx context.Context, id digest.Digest, opts *manifest.DecodeOptions) (*manifest.Manifest, []byte, error) {
	if err := checkDigest("read manifest", id); err != nil {
		return nil, nil, err
	}
	return r.readManifest(ctx, id, -1, opts)
}

// ReadListedManifest is [Repo.ReadManifest] for o, a manifest as
// [Repo.ListManifests] lists it: it trusts the listed size instead of
// asking the store for it, one request instead of two. A manifest that
// seems corrupt is read again the way ReadManifest reads it, since a
// manifest replaced since the listing (see [Repo.ReplaceManifest]) may
// have another size.
func (r *Repo) ReadListedManifest(ctx context.Context, o Object, opts *manifest.DecodeOptions) (*manifest.Manifest, error) {
	if err := checkDigest("read manifest", o.Digest); err != nil {
		return nil, err
	}
	m, _, err := r.readManifest(ctx, o.Digest, o.Size, opts)
	if errors.Is(err, core.ErrCorrupt) {
		m, _, err = r.readManifest(ctx, o.Digest, -1, opts)
	}
	return m, err
}

// readManifest reads the manifest of the snapshot id, whose stored size
// is size, or unknown if size is negative.
func (r *Repo) readManifest(ctx context.Context, id digest.Digest, size int64, opts *manifest.DecodeOptions) (*manifest.Manifest, []byte, error) {
	name := ManifestName(id)
	info := store.ObjectInfo{Name: name, Size: size}
	if size < 0 {
		var err error
		if info, err = r.st.Stat(ctx, name); err != nil {
			return nil, nil, err
		}
	}
	limit := maxManifestBytes(opts)
	var m *manifest.Manifest
	var stored []byte
	err := r.readKnownSize(ctx, name, info, func(size int64) error {
		if size > limit {
			return tooLarge(name, "manifest.DecodeOptions.MaxBytes", limit)
		}
		return nil
	}, func(data []byte) error {
		var err error
		m, err = manifest.Decode(data, opts)
		switch {
		case err != nil:
			return fmt.Errorf("repo: %s: %w", name, err)
		case m.ID != id:
			return fmt.Errorf("repo: %s: %w", name, &manifest.ValidationError{Field: "id", Index: -1,
				Err: fmt.Errorf("manifest of %s is stored under another id", m.ID)})
		}
		stored = data
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return m, stored, nil
}

// CommitManifest writes m, which commits its snapshot, create-only, and
// returns the manifest stored. The blobs and the view m references must
// be stored, and durable (see [Repo.Sync]), before. If a manifest is
// already stored under m's id (a concurrent writer of the same state, or
// an earlier attempt of this write whose answer was lost), it is read
// back: one with the same content is success, and is returned; another is
// an error matching core.ErrConflict.
func (r *Repo) CommitManifest(ctx context.Context, m *manifest.Manifest) (*manifest.Manifest, error) {
	data, err := manifest.Encode(m)
	if err != nil {
		return nil, err
	}
	return r.commitManifest(ctx, m, data)
}

// CommitManifestBytes is [Repo.CommitManifest] for data, a manifest as
// stored (see [Repo.ReadManifestBytes]): it validates data and writes it
// unchanged, so that a copied snapshot keeps its id and signature. A
// manifest that does not decode is an error matching core.ErrCorrupt.
func (r *Repo) CommitManifestBytes(ctx context.Context, data []byte) (*manifest.Manifest, error) {
	m, err := manifest.Decode(data, nil)
	if err != nil {
		return nil, fmt.Errorf("repo: commit manifest: %w", err)
	}
	return r.commitManifest(ctx, m, data)
}

// commitManifest writes data, the stored form of m, create-only.
func (r *Repo) commitManifest(ctx context.Context, m *manifest.Manifest, data []byte) (*manifest.Manifest, error) {
	sum := sha256.Sum256(data)
	err := r.st.PutBytes(ctx, ManifestName(m.ID), data, store.PutOptions{CreateOnly: true, SHA256: sum[:], ContentType: jsonType})
	if !errors.Is(err, core.ErrExists) {
		if err != nil {
			return nil, err
		}
		return m, nil
	}
	stored, rerr := r.ReadManifest(ctx, m.ID, nil)
	if rerr != nil {
		return nil, fmt.Errorf("repo: commit %s: the manifest exists; reading it back: %w", m.ID, rerr)
	}
	if !stored.Equal(m) {
		return nil, fmt.Errorf("repo: commit %s: a different manifest is stored under that id: %w", m.ID, core.ErrConflict)
	}
	return stored, nil
}

// StatManifest returns the stored size of the manifest of the snapshot
// id, without reading it: an error matching core.ErrNotFound says that no
// such snapshot is committed.
func (r *Repo) StatManifest(ctx context.Context, id digest.Digest) (int64, error) {
	return r.stat(ctx, "stat manifest", id, ManifestName)
}

// StatView returns the stored size of the view of the snapshot id.
func (r *Repo) StatView(ctx context.Context, id digest.Digest) (int64, error) {
	return r.stat(ctx, "stat view", id, ViewName)
}

// stat returns the size of the object name(d), after checking d.
func (r *Repo) stat(ctx context.Context, op string, d digest.Digest, name func(digest.Digest) string) (int64, error) {
	if err := checkDigest(op, d); err != nil {
		return 0, err
	}
	info, err := r.st.Stat(ctx, name(d))
	return info.Size, err
}

// DeleteManifest removes the manifest of the snapshot id, which removes
// the snapshot: readers no longer see it. A missing manifest is an error
// matching core.ErrNotFound.
func (r *Repo) DeleteManifest(ctx context.Context, id digest.Digest) error {
	return r.delete(ctx, "delete manifest", id, ManifestName)
}

// DeleteView removes the view of the snapshot id. A missing view is an
// error matching core.ErrNotFound.
func (r *Repo) DeleteView(ctx context.Context, id digest.Digest) error {
	return r.delete(ctx, "delete view", id, ViewName)
}

// delete removes the object name(d), after checking d.
func (r *Repo) delete(ctx context.Context, op string, d digest.Digest, name func(digest.Digest) string) error {
	if err := checkDigest(op, d); err != nil {
		return err
	}
	return r.st.Delete(ctx, name(d))
}

// ListViews calls fn with every stored view, committed or not, in no
// particular order: Object.Digest is the id of its snapshot. fn runs
// while the listing holds a request slot (see [Repo.ListBlobs]).
func (r *Repo) ListViews(ctx context.Context, fn func(Object) error) error {
	return r.list(ctx, snapshotsPrefix, ParseViewName, fn)
}

// ReplaceManifest replaces the stored manifest of the committed snapshot
// m.ID with m, whose content must be the stored one's (see
// manifest.Manifest.Equal): only what the id leaves out, the signature
// among it, may differ. It re-signs a snapshot. Content that differs is an
// error matching core.ErrConflict, and nothing is written.
func (r *Repo) ReplaceManifest(ctx context.Context, m *manifest.Manifest) error {
	stored, err := r.ReadManifest(ctx, m.ID, nil)
	if err != nil {
		return err
	}
	if !stored.Equal(m) {
		return fmt.Errorf("repo: replace manifest of %s: the content differs from the stored one's: %w", m.ID, core.ErrConflict)
	}
	data, err := manifest.Encode(m)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	return r.st.PutBytes(ctx, ManifestName(m.ID), data, store.PutOptions{SHA256: sum[:], ContentType: jsonType})
}

// ListManifests calls fn with every committed snapshot, in no particular
// order: Object.Digest is its id, Object.Size the stored size of its
// manifest (see [Repo.ReadListedManifest]). fn runs while the listing
// holds a request slot (see [Repo.ListBlobs]).
func (r *Repo) ListManifests(ctx context.Context, fn func(Object) error) error {
	return r.list(ctx, snapshotsPrefix, ParseManifestName, fn)
}

// ListSnapshots returns the ids of the committed snapshots, those whose
// manifest is stored, in no particular order.
func (r *Repo) ListSnapshots(ctx context.Context) ([]digest.Digest, error) {
	return r.listSnapshots(ctx, "")
}

// listSnapshots returns the ids of the committed snapshots whose hex
// starts with prefix.
func (r *Repo) listSnapshots(ctx context.Context, prefix string) ([]digest.Digest, error) {
	var ids []digest.Digest
	err := r.st.List(ctx, snapshotsPrefix+prefix, func(info store.ObjectInfo) error {
		if id, ok := ParseManifestName(info.Name); ok {
			ids = append(ids, id)
		}
		return nil
	})
	return ids, err
}

// Resolve returns the id of the snapshot ref names, without reading its
// manifest: ref is a full id ("sha256:<hex>" or the hex alone), which is
// returned as it is; a tag; or a prefix of a committed snapshot's id of
// at least MinPrefixLength hex digits (see [Repo.ResolvePrefix]). Tag
// names never look like ids (see [ValidTag]), so no ref is both. "latest"
// is not resolved here: which snapshot is newest takes reading manifests.
// A ref that names nothing is an error matching core.ErrNotFound that says
// why. With a key, a tag must carry a valid signature under it (see
// [Tag.VerifySignature]); one that does not is an error matching
// core.ErrCorrupt.
func (r *Repo) Resolve(ctx context.Context, ref string, key []byte) (digest.Digest, error) {
	h, isHex := digest.CutPrefix(ref)
	switch {
	case isHex && digest.IsHex(h):
		return digest.FromHex(h)
	case isHex && len(h) >= MinPrefixLength:
		return r.ResolvePrefix(ctx, h)
	case ValidTag(ref) == nil:
		t, err := r.ReadTag(ctx, ref)
		switch {
		case IsNotFound(err):
			return "", fmt.Errorf("repo: no tag %q: %w", ref, err)
		case err != nil:
			return "", err
		case len(key) > 0:
			if err := t.VerifySignature(key); err != nil {
				return "", err
			}
		}
		return t.Snapshot, nil
	}
	return "", fmt.Errorf("repo: ref %q is neither a tag nor an id prefix (%d or more lowercase hex digits): %w", ref, MinPrefixLength, core.ErrNotFound)
}

// ResolvePrefix returns the id of the one committed snapshot whose id
// starts with prefix: MinPrefixLength to 64 lowercase hex digits, with or
// without the digest's algorithm prefix (see digest.CutPrefix). No match is an error matching core.ErrNotFound;
// several, an error matching core.ErrInvalid that lists them by short id.
func (r *Repo) ResolvePrefix(ctx context.Context, prefix string) (digest.Digest, error) {
	h, ok := digest.CutPrefix(prefix)
	if !ok || len(h) < MinPrefixLength {
		return "", fmt.Errorf("repo: id prefix %q: want %d to %d lowercase hex digits: %w", prefix, MinPrefixLength, digest.HexLen, core.ErrInvalid)
	}
	ids, err := r.listSnapshots(ctx, h)
	if err != nil {
		return "", err
	}
	switch len(ids) {
	case 0:
		return "", fmt.Errorf("repo: no snapshot id starts with %q: %w", h, core.ErrNotFound)
	case 1:
		return ids[0], nil
	}
	slices.Sort(ids)
	const shown = 10
	short := make([]string, 0, shown)
	for _, id := range ids[:min(len(ids), shown)] {
		short = append(short, id.Short())
	}
	more := ""
	if len(ids) > shown {
		more = fmt.Sprintf(" and %d more", len(ids)-shown)
	}
	return "", fmt.Errorf("repo: id prefix %q is ambiguous: %d snapshots match: %s%s; give more digits: %w",
		h, len(ids), strings.Join(short, ", "), more, core.ErrInvalid)
}
