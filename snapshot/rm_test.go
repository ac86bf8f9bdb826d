package snapshot_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store"
)

func TestRemove(t *testing.T) {
	ctx := t.Context()
	r := openTemp(t)
	layer := repo.New(r.Store(), nil)
	a := exportKV(t, r, "/k", "a")
	b := exportKV(t, r, "/k", "b")
	for _, tag := range []string{"a1", "a2"} {
		_, err := r.Tag(ctx, tag, a.ID.String(), nil)
		require.NoError(t, err)
	}
	_, err := r.Tag(ctx, "b1", b.ID.String(), nil)
	require.NoError(t, err)

	// Every ref is resolved first: one that names nothing removes nothing.
	_, err = r.Remove(ctx, []string{"a1", "no-such-tag"}, nil)
	require.ErrorIs(t, err, core.ErrNotFound)
	assert.Contains(t, err.Error(), `"no-such-tag"`)
	missing := digest.FromBytes([]byte("missing"))
	_, err = r.Remove(ctx, []string{missing.String()}, nil)
	require.ErrorIs(t, err, core.ErrNotFound, "a full id that is no snapshot's")
	ms, err := r.List(ctx, snapshot.Filter{})
	require.NoError(t, err)
	require.Len(t, ms, 2)

	// By a tag and by the id: removed once, with its view and its tags.
	var seen []snapshot.Removed
	removed, err := r.Remove(ctx, []string{"a1", a.ID.Hex()[:8]}, &snapshot.RemoveOptions{OnRemoved: func(rm snapshot.Removed) { seen = append(seen, rm) }})
	require.NoError(t, err)
	require.Equal(t, []snapshot.Removed{{ID: a.ID, Tags: []string{"a1", "a2"}, View: true}}, removed)
	assert.Equal(t, removed, seen)
	_, err = layer.StatView(ctx, a.ID)
	require.ErrorIs(t, err, core.ErrNotFound)
	tags, err := r.Tags(ctx, nil)
	require.NoError(t, err)
	require.Len(t, tags, 1)
	assert.Equal(t, "b1", tags[0].Name)

	// --keep-tags leaves the tag, which then names nothing.
	removed, err = r.Remove(ctx, []string{"b1"}, &snapshot.RemoveOptions{KeepTags: true})
	require.NoError(t, err)
	require.Len(t, removed, 1)
	assert.Empty(t, removed[0].Tags)
	_, err = r.Show(ctx, "b1", snapshot.Filter{})
	require.ErrorIs(t, err, core.ErrNotFound)
	ms, err = r.List(ctx, snapshot.Filter{})
	require.NoError(t, err)
	assert.Empty(t, ms)
}

// A snapshot whose manifest is damaged is removed by its id; a tag ref
// that is not signed with the key is refused, and nothing is removed.
func TestRemoveDamagedAndUnsigned(t *testing.T) {
	ctx := t.Context()
	r := openTemp(t)
	bad := digest.FromBytes([]byte("bad"))
	require.NoError(t, r.Store().PutBytes(ctx, repo.ManifestName(bad), []byte("not json"), store.PutOptions{}))
	removed, err := r.Remove(ctx, []string{bad.Hex()}, nil)
	require.NoError(t, err)
	assert.Equal(t, []snapshot.Removed{{ID: bad, Tags: []string{}}}, removed, "it had no view")

	m := exportKV(t, r, "/k", "v")
	_, err = r.Tag(ctx, "plain", m.ID.String(), nil)
	require.NoError(t, err)
	_, err = r.Remove(ctx, []string{"plain"}, &snapshot.RemoveOptions{SigningKey: []byte("key")})
	require.ErrorIs(t, err, core.ErrCorrupt)
	assert.Contains(t, err.Error(), "not signed")
	_, err = r.Show(ctx, m.ID.String(), snapshot.Filter{})
	require.NoError(t, err, "nothing was removed")
}

func TestTagsAndUntag(t *testing.T) {
	ctx := t.Context()
	r := openTemp(t)
	key := []byte("key")
	svc := bucketStore(t, map[string]string{"k": "v"})
	m, err := snapshot.Export(ctx, r, svc, "a", "r", &snapshot.ExportOptions{SigningKey: key, Tag: "signed"})
	require.NoError(t, err)
	first, err := r.Tag(ctx, "plain", m.ID.String(), nil)
	require.NoError(t, err)
	assert.Nil(t, first.Previous)
	moved, err := r.Tag(ctx, "plain", "signed", &snapshot.TagOptions{SigningKey: key})
	require.NoError(t, err)
	require.NotNil(t, moved.Previous)
	assert.Equal(t, first.Tag, *moved.Previous)
	assert.NotEmpty(t, moved.Tag.Signature)
	require.NoError(t, r.Store().PutBytes(ctx, repo.TagName("broken"), []byte("{}"), store.PutOptions{}))
	_, err = r.Tag(ctx, "unsigned", m.ID.String(), nil)
	require.NoError(t, err)

	var started, read int
	tags, err := r.Tags(ctx, &snapshot.TagsOptions{OnStart: func(n int) { started = n }, OnTag: func() { read++ }})
	var terr *snapshot.TagsError
	require.ErrorAs(t, err, &terr)
	require.ErrorIs(t, err, core.ErrCorrupt)
	assert.Equal(t, 4, started)
	assert.Equal(t, 4, read)
	require.Len(t, terr.Invalid, 1)
	assert.Equal(t, "broken", terr.Invalid[0].Name)
	names := func(tags []repo.Tag) []string {
		var out []string
		for _, t := range tags {
			out = append(out, t.Name)
		}
		return out
	}
	assert.Equal(t, []string{"plain", "signed", "unsigned"}, names(tags))

	tags, err = r.Tags(ctx, &snapshot.TagsOptions{SigningKey: key})
	require.ErrorAs(t, err, &terr)
	assert.Equal(t, []string{"plain", "signed"}, names(tags))
	assert.Len(t, terr.Invalid, 2, "broken, and unsigned under the key")

	removed, err := r.Untag(ctx, "plain")
	require.NoError(t, err)
	assert.Equal(t, m.ID, removed.Snapshot)
	_, err = r.Untag(ctx, "plain")
	require.ErrorIs(t, err, core.ErrNotFound)
	_, err = r.Untag(ctx, "broken")
	require.NoError(t, err, "a damaged tag can be removed")
	_, err = r.Untag(ctx, "latest")
	require.ErrorIs(t, err, core.ErrInvalid)
	_, err = r.Show(ctx, m.ID.String(), snapshot.Filter{})
	require.NoError(t, err, "the snapshot stays")
}
