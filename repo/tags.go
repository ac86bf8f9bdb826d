package repo

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/store"
)

// Tag is a tag's record: a mutable, named pointer to a snapshot, stored
// as tags/<name>.json.
type Tag struct {
	Name     string        `json:"name"`
	Snapshot digest.Digest `json:"snapshot"` // the id of the snapshot it points at
	Updated  time.Time     `json:"updated"`  // when it was last written, UTC
}

// tagFields are the JSON fields of a stored tag, each required.
var tagFields = []string{"name", "snapshot", "updated"}

// decodeTag decodes the stored record of the tag name. It is strict (see
// decodeRecord): the record must name the tag it is stored as and point
// at a valid id. A failure matches core.ErrCorrupt and names the tag.
func decodeTag(name string, data []byte) (Tag, error) {
	var t Tag
	err := decodeRecord(data, &t, tagFields...)
	switch {
	case err != nil:
	case t.Name != name:
		err = fmt.Errorf("it names tag %q", t.Name)
	case !t.Snapshot.IsValid():
		err = fmt.Errorf("snapshot %q is not a snapshot id (sha256:<64 lowercase hex digits>)", t.Snapshot)
	}
	if err != nil {
		return Tag{}, fmt.Errorf("repo: tag %q (%s): %w: %w", name, TagName(name), core.ErrCorrupt, err)
	}
	return t, nil
}

// ReadTag returns the tag name. A missing tag is an error matching
// core.ErrNotFound; a record that does not decode strictly, names another
// tag or no valid id, or exceeds 64 KiB, one matching core.ErrCorrupt.
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

// WriteTag points the tag name at the snapshot id, creating or moving it,
// and returns the record written. It does not check that the snapshot
// exists: callers resolve a ref to a committed snapshot first.
func (r *Repo) WriteTag(ctx context.Context, name string, id digest.Digest) (Tag, error) {
	if err := ValidTag(name); err != nil {
		return Tag{}, err
	}
	if _, err := digest.Parse(string(id)); err != nil {
		return Tag{}, fmt.Errorf("repo: tag %q: %w", name, err)
	}
	t := Tag{Name: name, Snapshot: id, Updated: r.now().UTC()}
	data, err := encodeRecord(t)
	if err != nil {
		return Tag{}, fmt.Errorf("repo: tag %q: %w", name, err)
	}
	if err := r.st.PutBytes(ctx, TagName(name), data, store.PutOptions{ContentType: jsonType}); err != nil {
		return Tag{}, err
	}
	return t, nil
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
