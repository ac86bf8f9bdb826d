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
		"a",
		"A/b/C",
		"locks/2024-01-01T00-00-00Z_x.json",
		"deep/er/and/deeper/than/any/layout/uses",
		"blobs/sha256/" + strings.ToUpper(h),
		"a..b/c.",
		"-/_",
		strings.Repeat("x", store.MaxSegmentLength),
		strings.Repeat("x/", store.MaxNameLength/2-1) + "xx",
		strings.Repeat(strings.Repeat("x", store.MaxSegmentLength)+"/", 3) + strings.Repeat("y", store.MaxSegmentLength-1) + "/z",
	} {
		assert.NoError(t, store.ValidName(name), "%q", name)
	}
	for _, name := range []string{
		"",
		"/",
		".",
		"..",
		"a/",
		"/a",
		"a//b",
		"a/./b",
		"a/../b",
		"../a",
		"./a",
		"a/.hidden",
		".tmp-123",
		"a/.tmp-123",
		"a\x00b",
		`a\b`,
		"a b",
		"é",
		"a:b",
		"a\nb",
		"a%2Fb",
		strings.Repeat("x", store.MaxSegmentLength+1),
		"a/" + strings.Repeat("x", store.MaxSegmentLength+1) + "/b",
		strings.Repeat("x/", store.MaxNameLength/2) + "x",
	} {
		err := store.ValidName(name)
		require.ErrorIs(t, err, core.ErrInvalidPath, "%q", name)
		assert.Contains(t, err.Error(), "not a valid object name")
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
	for _, prefix := range []string{"", "b", "blobs/", store.BlobsPrefix, store.BlobsPrefix + "0", store.SnapshotsPrefix + h + "/", store.TagsPrefix + "v", "a/b.", "any/thing/"} {
		assert.NoError(t, store.ValidPrefix(prefix), "%q", prefix)
	}
	for _, prefix := range []string{"/", "/blobs", "..", "blobs/..", "blobs/.", "blobs//", "a\x00", `blobs\`, "tags/é", "a b", strings.Repeat("x", store.MaxNameLength+1)} {
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
// valid list prefix, as is each of its starts.
func FuzzValidName(f *testing.F) {
	for _, seed := range []string{store.BlobName(h), store.ViewName(h), store.TagName("v1"), "tags/../x.json", "a/.b", "a//b", "a/b/"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if store.ValidName(name) != nil {
			return
		}
		assert.Equal(t, path.Clean(name), name)
		assert.False(t, path.IsAbs(name))
		for seg := range strings.SplitSeq(name, "/") {
			assert.NotEqual(t, "..", seg)
			assert.False(t, strings.HasPrefix(seg, "."), "%q", name)
		}
		assert.False(t, strings.ContainsAny(name, "\x00\\ "), "%q", name)
		assert.LessOrEqual(t, len(name), store.MaxNameLength)
		for seg := range strings.SplitSeq(name, "/") {
			assert.LessOrEqual(t, len(seg), store.MaxSegmentLength)
		}
		for i := range len(name) + 1 {
			assert.NoError(t, store.ValidPrefix(name[:i]), "%q", name[:i])
		}
	})
}
