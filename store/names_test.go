package store_test

import (
	"path"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
)

var h = strings.Repeat("0123456789abcdef", 4)

func TestValidName(t *testing.T) {
	for _, name := range []string{
		"objects/01/" + h,
		"folder/" + h + "/file.json",
		"docs/v1.json",
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

func TestValidPrefix(t *testing.T) {
	for _, prefix := range []string{"", "b", "objects/", "objects/0", "folder/" + h + "/", "docs/v", "a/b.", "any/thing/"} {
		assert.NoError(t, store.ValidPrefix(prefix), "%q", prefix)
	}
	for _, prefix := range []string{"/", "/blobs", "..", "blobs/..", "blobs/.", "blobs//", "a\x00", `blobs\`, "tags/é", "a b", strings.Repeat("x", store.MaxNameLength+1)} {
		assert.ErrorIs(t, store.ValidPrefix(prefix), core.ErrInvalidPath, "%q", prefix)
	}
}

// FuzzValidName checks that every accepted name is clean, relative, free
// of the bytes file systems and object stores treat specially, and a
// valid list prefix, as is each of its starts.
func FuzzValidName(f *testing.F) {
	for _, seed := range []string{"objects/01/" + h, "folder/" + h + "/file.json", "docs/v1.json", "docs/../x.json", "a/.b", "a//b", "a/b/"} {
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
