package coretest

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
)

func TestHostileKeys(t *testing.T) {
	keys := HostileKeys(1000, 42)
	require.Len(t, keys, 1000)
	seen := make(map[string]bool)
	for _, k := range keys {
		assert.NotEmpty(t, k)
		assert.False(t, seen[k], "duplicate %q", k)
		seen[k] = true
	}
	assert.Equal(t, keys, HostileKeys(1000, 42), "deterministic")
	assert.NotEqual(t, keys, HostileKeys(1000, 43), "the seed matters")
	assert.Equal(t, keys[:10], HostileKeys(10, 7), "the first keys are fixed")
	assert.Empty(t, HostileKeys(0, 1))
	assert.Empty(t, HostileKeys(-1, 1))

	kinds := []struct {
		name string
		has  func(string) bool
	}{
		{"NUL", func(k string) bool { return strings.Contains(k, "\x00") }},
		{"slash", func(k string) bool { return strings.Contains(k, "/") }},
		{"dot-dot", func(k string) bool { return strings.Contains(k, "..") }},
		{"passwd", func(k string) bool { return k == "../../etc/passwd" }},
		{"leading slash", func(k string) bool { return strings.HasPrefix(k, "/") }},
		{"invalid UTF-8", func(k string) bool { return !utf8.ValidString(k) }},
		{"\\xff\\xfe", func(k string) bool { return k == "\xff\xfe" }},
		{"4 KiB", func(k string) bool { return len(k) >= 4096 }},
		{"over 1 KiB generated", func(k string) bool { return len(k) > 1024 && strings.Contains(k, "#") }},
		{"NFC", func(k string) bool { return k == "caf\u00e9" }},
		{"NFD", func(k string) bool { return k == "cafe\u0301" }},
		{"control", func(k string) bool { return strings.ContainsAny(k, "\x01\x1f\x7f") }},
		{"%46", func(k string) bool { return strings.Contains(k, "%46") }},
		{"trailing space", func(k string) bool { return strings.HasSuffix(k, " ") }},
	}
	for _, kind := range kinds {
		n := 0
		for _, k := range keys {
			if kind.has(k) {
				n++
			}
		}
		assert.Positive(t, n, "no key of kind %s", kind.name)
	}
}

func TestFill(t *testing.T) {
	tests := []struct {
		name string
		opts FillOptions
	}{
		{"defaults", FillOptions{}},
		{"hostile", FillOptions{Objects: 500, Size: 1000, Seed: 3, Hostile: true}},
		{"one object", FillOptions{Objects: 1, Hostile: true}},
		{"tiny size", FillOptions{Objects: 50, Size: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			s := NewObjectStore()
			objects, size, err := Fill(ctx, s, acct, region, tt.opts)
			require.NoError(t, err)
			n, b := s.Stats(acct, region)
			assert.Equal(t, n, objects, "every write is a distinct version")
			assert.Equal(t, b, size)
			want := tt.opts.Objects
			if want == 0 {
				want = 100
			}
			assert.Equal(t, want, objects)

			view := mustSnapshot(t, s, acct, region)
			limit := int64(tt.opts.Size)
			if limit == 0 {
				limit = 4096
			}
			empty := 0
			for _, b := range view.Buckets {
				for _, o := range b.Objects {
					for _, v := range o.Versions {
						assert.LessOrEqual(t, v.Size, limit)
						if v.Size == 0 {
							empty++
						}
					}
				}
			}
			assert.Positive(t, empty, "some objects are empty")

			again := filledStore(t, tt.opts)
			assert.Equal(t, mustJSON(t, view), mustJSON(t, mustSnapshot(t, again, acct, region)), "deterministic")
		})
	}
}

func TestFillHostileContent(t *testing.T) {
	ctx := t.Context()
	s := filledStore(t, FillOptions{Objects: 200, Seed: 5, Hostile: true})
	view := mustSnapshot(t, s, acct, region)
	require.Len(t, view.Buckets, 4)
	invalidBucket, invalidKey := false, false
	for _, b := range view.Buckets {
		invalidBucket = invalidBucket || !utf8.ValidString(string(b.Name))
		for _, o := range b.Objects {
			invalidKey = invalidKey || !utf8.ValidString(string(o.Key))
			if o.Key == sameKey {
				assert.Len(t, o.Versions, 3, "several versions of one key")
			}
		}
	}
	assert.True(t, invalidBucket)
	assert.True(t, invalidKey)

	// Filling again reuses the buckets.
	_, _, err := Fill(ctx, s, acct, region, FillOptions{Objects: 5, Seed: 6})
	require.NoError(t, err)

	_, _, err = Fill(ctx, s, acct, region, FillOptions{Objects: -1})
	require.ErrorIs(t, err, core.ErrInvalid)
}
