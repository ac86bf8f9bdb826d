package coretest

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
)

func TestRawStringJSON(t *testing.T) {
	tests := []struct {
		name string
		in   RawString
		json string
	}{
		{"empty", "", `""`},
		{"ascii", "photos/cat.jpg", `"photos/cat.jpg"`},
		{"nul", "a\x00b", `"a\u0000b"`},
		{"unicode", "日本語/é", `"日本語/é"`},
		{"html", "<a&b>", `"\u003ca\u0026b\u003e"`},
		{"invalid", "\xff\xfe", `{"base64":"//4="}`},
		{"invalid inside", "ok-\xc3\x28", `{"base64":"b2stwyg="}`},
		{"surrogate", "\xed\xa0\x80", `{"base64":"7aCA"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := json.Marshal(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.json, string(data))
			var out RawString
			require.NoError(t, json.Unmarshal(data, &out))
			assert.Equal(t, tt.in, out)
		})
	}
}

func TestRawStringUnmarshal(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		want    RawString
		wantErr bool
		is      error // if set, the error matches it
	}{
		{"base64 of valid UTF-8", `{"base64":"YWJj"}`, "abc", false, nil},
		{"null keeps the value", `null`, "keep", false, nil},
		{"spaces", ` { "base64" : "//4=" } `, "\xff\xfe", false, nil},
		{"bad base64", `{"base64":"!!"}`, "", true, core.ErrInvalid},
		{"unpadded base64", `{"base64":"//4"}`, "", true, core.ErrInvalid},
		{"unknown field", `{"base64":"YQ==","x":1}`, "", true, nil},
		{"number", `12`, "", true, nil},
		{"array", `["a"]`, "", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := RawString("keep")
			err := json.Unmarshal([]byte(tt.json), &out)
			if tt.wantErr {
				require.Error(t, err)
				if tt.is != nil {
					assert.ErrorIs(t, err, tt.is)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, out)
		})
	}
}

// A view whose bucket names, keys and blob keys are not valid UTF-8
// survives a JSON round trip byte-exact, and the decoded view restores.
func TestObjectStoreViewJSONInvalidUTF8(t *testing.T) {
	ctx := t.Context()
	src := NewObjectStore()
	bucket := "b-\xff"
	require.NoError(t, src.CreateBucket(ctx, "acct", "region", bucket, true))
	for _, key := range []string{"\xff\xfe", "k\x00\xc3\x28", "é", "e\u0301", "../../etc/passwd"} {
		_, err := src.PutObject(ctx, "acct", "region", bucket, key, []byte(key))
		require.NoError(t, err)
	}
	visitor := &MemoryVisitor{}
	view, err := src.SnapshotWithBlobs(ctx, "acct", "region", visitor)
	require.NoError(t, err)
	data, err := json.Marshal(view)
	require.NoError(t, err)

	var decoded ObjectStoreView
	require.NoError(t, json.Unmarshal(data, &decoded))
	assert.Equal(t, view, decoded)
	again, err := json.Marshal(decoded)
	require.NoError(t, err)
	assert.Equal(t, data, again)

	dst := NewObjectStore()
	require.NoError(t, dst.RestoreWithBlobs(ctx, "acct", "region", decoded, NewMemorySource(visitor.Blobs())))
	require.NoError(t, dst.Restore(ctx, "acct", "region", decoded))
	got, err := dst.GetObject(ctx, "acct", "region", bucket, "k\x00\xc3\x28")
	require.NoError(t, err)
	assert.Equal(t, []byte("k\x00\xc3\x28"), got)
}
