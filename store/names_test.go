package store_test

import (
	"crypto/sha256"
	"path"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
)

var h = strings.Repeat("0123456789abcdef", 4)

func TestNames(t *testing.T) {
	assert.Equal(t, "blobs/sha256/01/"+h, store.BlobName(h))
	assert.Equal(t, "snapshots/"+h+"/view.json", store.ViewName(h))
	assert.Equal(t, "snapshots/"+h+"/manifest.json", store.ManifestName(h))
	assert.Equal(t, "tags/v1.json", store.TagName("v1"))
}

func TestValidName(t *testing.T) {
	for _, name := range []string{
		store.BlobName(h),
		store.ViewName(h),
		store.ManifestName(h),
		store.TagName("v1"),
		store.TagName("Release_1.0-rc.2"),
		store.TagName(strings.Repeat("t", store.MaxTagLength)),
	} {
		assert.NoError(t, store.ValidName(name), "%q", name)
	}
	for _, name := range []string{
		"",
		"/",
		"..",
		"blobs/sha256/",
		"blobs/sha256/01",
		"blobs/sha256/01/",
		"blobs/sha256/02/" + h,
		"blobs/sha256/01/" + h + "/",
		"blobs/sha256/01/" + h + "/x",
		"blobs/sha256/01/" + h[:63],
		"blobs/sha256/01/" + h + "0",
		"blobs/sha256/01/" + strings.ToUpper(h),
		"blobs/sha256/01/" + h + "\x00",
		"blobs/sha256/../../" + h,
		"blobs/sha512/01/" + h,
		`blobs\sha256\01\` + h,
		"/" + store.BlobName(h),
		"./" + store.BlobName(h),
		"snapshots/" + h,
		"snapshots/" + h + "/",
		"snapshots/" + h + "/other.json",
		"snapshots/" + h + "/view.json/x",
		"snapshots/" + h[:10] + "/view.json",
		"snapshots/../" + h + "/view.json",
		"tags/",
		"tags/.json",
		"tags/v1",
		"tags/v1.json/",
		"tags/.v1.json",
		"tags/-v1.json",
		"tags/a/b.json",
		"tags/../x.json",
		"tags/a\x00.json",
		"tags/é.json",
		"tags/a b.json",
		"tags/a..b.json",
		"tags/a..json",
		store.TagName(strings.Repeat("t", store.MaxTagLength+1)),
		"other/" + h,
		"view.json",
	} {
		err := store.ValidName(name)
		require.ErrorIs(t, err, core.ErrInvalidPath, "%q", name)
		assert.Contains(t, err.Error(), "not a repository name")
	}
}

func TestValidTag(t *testing.T) {
	for _, tag := range []string{"a", "A", "0", "v1.2.3", "a-b_c", strings.Repeat("x", store.MaxTagLength)} {
		assert.NoError(t, store.ValidTag(tag), "%q", tag)
	}
	for _, tag := range []string{"", ".a", "-a", "a..b", "a.", "a/b", "a\x00", "a b", "é", `a\b`, strings.Repeat("x", store.MaxTagLength+1)} {
		assert.ErrorIs(t, store.ValidTag(tag), core.ErrInvalid, "%q", tag)
	}
}

func TestValidPrefix(t *testing.T) {
	for _, prefix := range []string{"", "b", "blobs/", store.BlobsPrefix, store.BlobsPrefix + "0", store.SnapshotsPrefix + h + "/", store.TagsPrefix + "v"} {
		assert.NoError(t, store.ValidPrefix(prefix), "%q", prefix)
	}
	for _, prefix := range []string{"/", "/blobs", "..", "blobs/..", "blobs//", "a\x00", `blobs\`, "tags/é", "a b"} {
		assert.ErrorIs(t, store.ValidPrefix(prefix), core.ErrInvalidPath, "%q", prefix)
	}
}

func TestIsHexDigest(t *testing.T) {
	assert.True(t, store.IsHexDigest(h))
	for _, s := range []string{"", h[:63], h + "0", strings.ToUpper(h), strings.Replace(h, "0", "g", 1)} {
		assert.False(t, store.IsHexDigest(s), "%q", s)
	}
}

func TestDigest(t *testing.T) {
	sum := sha256.Sum256([]byte("abc"))
	d := store.Digest(sum[:])
	assert.Equal(t, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", d)
	got, err := store.HexFromDigest(d)
	require.NoError(t, err)
	assert.Equal(t, d[len("sha256:"):], got)

	for _, bad := range []string{"", h, "sha256:", "sha256:" + h[:63], "sha256:" + strings.ToUpper(h), "sha512:" + h, "SHA256:" + h} {
		_, err := store.HexFromDigest(bad)
		assert.ErrorIs(t, err, core.ErrInvalid, "%q", bad)
	}
}

// FuzzValidName checks that every accepted name is clean, relative, free
// of the bytes file systems and object stores treat specially, and a
// valid list prefix.
func FuzzValidName(f *testing.F) {
	for _, seed := range []string{store.BlobName(h), store.ViewName(h), store.ManifestName(h), store.TagName("v1"), "tags/../x.json", "blobs/sha256/01/" + h + "/"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if store.ValidName(name) != nil {
			return
		}
		assert.Equal(t, path.Clean(name), name)
		assert.False(t, path.IsAbs(name))
		assert.NotContains(t, name, "..")
		assert.False(t, strings.ContainsAny(name, "\x00\\"), "%q", name)
		assert.NoError(t, store.ValidPrefix(name))
		assert.True(t, strings.HasPrefix(name, store.BlobsPrefix) ||
			strings.HasPrefix(name, store.SnapshotsPrefix) ||
			strings.HasPrefix(name, store.TagsPrefix), "%q", name)
	})
}
