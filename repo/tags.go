package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/store"
)

// Tag is a tag's record: a mutable, named pointer to a snapshot, stored
// as tags/<name>.json.
type Tag struct {
	Name     string        `json:"name"`
	Snapshot digest.Digest `json:"snapshot"` // the id of the snapshot it points at
	Updated  time.Time     `json:"updated"`  // when it was last written, UTC
	// Signature is "hmac-sha256:<hex>", the HMAC-SHA256 of the tag's
	// signed bytes (see [Tag.SignedBytes]) under the writer's key, or
	// empty.
	Signature string `json:"signature,omitempty"`
}

// tagFields are the JSON fields of a stored tag: each required but the
// signature.
var tagFields = []string{"name", "snapshot", "updated"}

// decodeTag decodes the stored record of the tag name. It is strict (see
// decodeRecord): the record must name the tag it is stored as and point
// at a valid id. A failure matches core.ErrCorrupt and names the tag.
func decodeTag(name string, data []byte) (Tag, error) {
	var t Tag
	err := decodeRecord(data, &t, tagFields, "signature")
	switch {
	case err != nil:
	case t.Name != name:
		err = fmt.Errorf("it names tag %q", t.Name)
	case !t.Snapshot.IsValid():
		err = fmt.Errorf("snapshot %q is not a snapshot id (sha256:<64 lowercase hex digits>)", t.Snapshot)
	case t.Signature != "" && !manifest.IsSignature(t.Signature):
		err = errors.New("signature is not hmac-sha256:<64 lowercase hex digits>")
	}
	if err != nil {
		return Tag{}, fmt.Errorf("repo: tag %q (%s): %w: %w", name, TagName(name), core.ErrCorrupt, err)
	}
	return t, nil
}

// SignedBytes returns the bytes a tag's signature covers: the line
// "statebucket.tag.v1", then the name, the snapshot's id and the update
// time (RFC 3339 in UTC, with the fraction of a second the record holds),
// each on a line of its own. None of them can hold a newline.
func (t Tag) SignedBytes() []byte {
	return fmt.Appendf(nil, "statebucket.tag.v1\n%s\n%s\n%s", t.Name, t.Snapshot, t.Updated.UTC().Format(time.RFC3339Nano))
}

// Sign sets t.Signature to the signature of t under key, which must not be
// empty.
func (t *Tag) Sign(key []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("repo: sign tag %q: empty HMAC key: %w", t.Name, core.ErrInvalid)
	}
	t.Signature = manifest.HMAC(key, t.SignedBytes())
	return nil
}

// VerifySignature reports whether t carries a signature made by Sign with
// key over its present content. An unsigned tag, and one signed with
// another key or over other content, is an error matching core.ErrCorrupt
// that says so; the message never shows the signature.
func (t Tag) VerifySignature(key []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("repo: verify tag %q: empty HMAC key: %w", t.Name, core.ErrInvalid)
	}
	why := ""
	switch {
	case t.Signature == "":
		why = "it is not signed, and a signing key is configured to require signatures"
	case !manifest.CheckHMAC(key, t.SignedBytes(), t.Signature):
		why = "its signature does not match its content under the configured key: the tag was modified or signed with another key"
	default:
		return nil
	}
	return fmt.Errorf("repo: tag %q (%s): %w: %s", t.Name, TagName(t.Name), core.ErrCorrupt, why)
}

// same reports whether t and o are the same record.
func (t Tag) same(o Tag) bool {
	return t.Name == o.Name && t.Snapshot == o.Snapshot && t.Updated.Equal(o.Updated) && t.Signature == o.Signature
}

// ReadTag returns the tag name. A missing tag is an error matching
// core.ErrNotFound; a record that does not decode strictly, names another
// tag or no valid id, or exceeds 64 KiB, one matching core.ErrCorrupt. It
// does not check the signature: see [Tag.VerifySignature].
func (r *Repo) ReadTag(ctx context.Context, name string) (Tag, error) {
	if err := ValidTag(name); err != nil {
		return Tag{}, err
	}
	data, err := r.readRecord(ctx, TagName(name))
	if err != nil {
		return Tag{}, err
	}
	return decodeTag(name, data)
}

// TagOptions configure [Repo.WriteTag]. The zero value, like a nil
// *TagOptions, moves a tag by compare-and-swap and does not sign it.
type TagOptions struct {
	// Force writes the tag whatever it points at by then: the last writer
	// wins.
	Force bool
	// SigningKey, if not empty, signs the tag (see [Tag.Sign]).
	SigningKey []byte
}

// TagChange is what [Repo.WriteTag] did.
type TagChange struct {
	Tag      Tag  // the record written
	Previous *Tag // the record it replaced; nil for a new tag, or one whose record did not decode
	// Unconditional is set when the store cannot compare and swap (see
	// store.ConditionalPutter), so that the tag was replaced without
	// checking that it had not moved since it was read.
	Unconditional bool
}

// TagConflictError reports a tag move that lost a race: the tag was
// created, moved or removed by another writer between its read and its
// write. It matches core.ErrConflict.
type TagConflictError struct {
	Name    string
	Current *Tag // the tag as it is now; nil if it is gone or unreadable
}

func (e *TagConflictError) Error() string {
	now := "has been removed"
	if e.Current != nil {
		now = fmt.Sprintf("now points at %s (updated %s)", e.Current.Snapshot, e.Current.Updated.Format(time.RFC3339))
	}
	return fmt.Sprintf("repo: tag %q was changed by another writer while it was being moved, and %s; nothing was written (force the move to override it): %v",
		e.Name, now, core.ErrConflict)
}

// Unwrap returns core.ErrConflict.
func (e *TagConflictError) Unwrap() error { return core.ErrConflict }

// WriteTag points the tag name at the snapshot id, creating or moving it,
// and says what it replaced. It does not check that the snapshot exists:
// callers resolve a ref to a committed snapshot first.
//
// Unless opts.Force is set, the write is a compare-and-swap: a new tag is
// created create-only, and an existing one replaced only if it is still
// the version read (see store.ConditionalPutter). A tag that another
// writer created, moved or removed in between is left as that writer left
// it, and the error is a [*TagConflictError] naming what it points at now:
// of two writers moving a tag from the same record, exactly one wins. On a
// store that cannot compare and swap, an existing tag is replaced
// unconditionally, and TagChange.Unconditional says so: a move made by
// another writer between the read and the write is then lost.
func (r *Repo) WriteTag(ctx context.Context, name string, id digest.Digest, opts *TagOptions) (TagChange, error) {
	return r.PutTag(ctx, Tag{Name: name, Snapshot: id, Updated: r.now().UTC()}, opts)
}

// PutTag writes the record t as it is, its update time and signature
// included, as WriteTag writes the records it makes: by compare-and-swap
// unless opts.Force, and signed anew if opts.SigningKey is set. A tag
// copied from another repository so keeps a signature valid.
func (r *Repo) PutTag(ctx context.Context, t Tag, opts *TagOptions) (TagChange, error) {
	var o TagOptions
	if opts != nil {
		o = *opts
	}
	name := t.Name
	if err := ValidTag(name); err != nil {
		return TagChange{}, err
	}
	if _, err := digest.Parse(string(t.Snapshot)); err != nil {
		return TagChange{}, fmt.Errorf("repo: tag %q: %w", name, err)
	}
	if len(o.SigningKey) > 0 {
		if err := t.Sign(o.SigningKey); err != nil {
			return TagChange{}, err
		}
	}
	data, err := encodeRecord(t)
	if err != nil {
		return TagChange{}, fmt.Errorf("repo: tag %q: %w", name, err)
	}
	objName := TagName(name)
	change := TagChange{Tag: t}
	info, err := r.st.Stat(ctx, objName)
	switch {
	case IsNotFound(err):
		err = r.st.PutBytes(ctx, objName, data, store.PutOptions{CreateOnly: !o.Force, ContentType: jsonType})
	case err != nil:
		return TagChange{}, err
	default:
		if prev, err := r.ReadTag(ctx, name); err == nil {
			change.Previous = &prev
		}
		if o.Force || info.Version == "" {
			change.Unconditional = !o.Force
			err = r.st.PutBytes(ctx, objName, data, store.PutOptions{ContentType: jsonType})
			break
		}
		err = r.st.PutIfMatch(ctx, objName, bytes.NewReader(data), int64(len(data)), store.PutOptions{ContentType: jsonType}, info.Version)
		if errors.Is(err, errors.ErrUnsupported) {
			change.Unconditional = true
			err = r.st.PutBytes(ctx, objName, data, store.PutOptions{ContentType: jsonType})
		}
	}
	if errors.Is(err, core.ErrExists) || errors.Is(err, core.ErrConflict) {
		return r.tagConflict(ctx, change)
	}
	if err != nil {
		return TagChange{}, err
	}
	return change, nil
}

// tagConflict handles a conditional write of change.Tag that was refused:
// the tag as it is now is the one written (an earlier attempt of the same
// write landed, its answer lost), and that is success; or it is another
// writer's, and that is a *TagConflictError.
func (r *Repo) tagConflict(ctx context.Context, change TagChange) (TagChange, error) {
	name := change.Tag.Name
	cur, err := r.ReadTag(ctx, name)
	switch {
	case err == nil && cur.same(change.Tag):
		return change, nil
	case err == nil:
		return TagChange{}, &TagConflictError{Name: name, Current: &cur}
	case IsNotFound(err), errors.Is(err, core.ErrCorrupt):
		return TagChange{}, &TagConflictError{Name: name}
	}
	return TagChange{}, fmt.Errorf("repo: tag %q changed while it was moved; reading it again: %w", name, err)
}

// DeleteTag removes the tag name. A missing tag is an error matching
// core.ErrNotFound.
func (r *Repo) DeleteTag(ctx context.Context, name string) error {
	if err := ValidTag(name); err != nil {
		return err
	}
	return r.st.Delete(ctx, TagName(name))
}

// ListTags returns the names of every tag, sorted. Objects under tags/
// whose names are not those of valid tags are left out.
func (r *Repo) ListTags(ctx context.Context) ([]string, error) {
	var names []string
	err := r.st.List(ctx, tagsPrefix, func(info store.ObjectInfo) error {
		if name, ok := ParseTagName(info.Name); ok {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}
