package repo

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
)

var tagID = digest.FromBytes([]byte("snapshot"))

// tagJSON is the record of tag "v1" as WriteTag writes it.
func tagJSON(t testing.TB) []byte {
	data, err := encodeRecord(Tag{Name: "v1", Snapshot: tagID, Updated: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)})
	require.NoError(t, err)
	return data
}

func TestDecodeTag(t *testing.T) {
	got, err := decodeTag("v1", tagJSON(t))
	require.NoError(t, err)
	assert.Equal(t, Tag{Name: "v1", Snapshot: tagID, Updated: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)}, got)

	const updated = `"updated": "2026-01-02T03:04:05Z"`
	snap := `"snapshot": "` + string(tagID) + `"`
	for _, tc := range []struct{ name, data, why string }{
		{"trailing document", `{"name": "v1", ` + snap + `, ` + updated + `} {}`, "trailing data"},
		{"trailing garbage", `{"name": "v1", ` + snap + `, ` + updated + `}x`, "trailing data"},
		{"duplicate key", `{"name": "v1", "name": "v1", ` + snap + `, ` + updated + `}`, `field "name" is repeated`},
		{"duplicate key, other value", `{"name": "v2", ` + snap + `, "name": "v1", ` + updated + `}`, "repeated"},
		{"unknown field", `{"name": "v1", ` + snap + `, ` + updated + `, "x": 1}`, `unknown field "x"`},
		{"field in another case", `{"Name": "v1", ` + snap + `, ` + updated + `}`, `unknown field "Name"`},
		{"missing field", `{"name": "v1", ` + snap + `}`, `"updated" is missing`},
		{"null", `{"name": null, ` + snap + `, ` + updated + `}`, "want a string"},
		{"nested", `{"name": "v1", "snapshot": {"id": "x"}, ` + updated + `}`, "want a string"},
		{"number for a string", `{"name": "v1", "snapshot": 7, ` + updated + `}`, "cannot unmarshal number"},
		{"other tag", `{"name": "v2", ` + snap + `, ` + updated + `}`, `names tag "v2"`},
		{"bad digest", `{"name": "v1", "snapshot": "sha256:` + strings.ToUpper(tagID.Hex()) + `", ` + updated + `}`, "not a snapshot id"},
		{"hex without algorithm", `{"name": "v1", "snapshot": "` + tagID.Hex() + `", ` + updated + `}`, "not a snapshot id"},
		{"bad time", `{"name": "v1", ` + snap + `, "updated": "yesterday"}`, "yesterday"},
		{"array", `[]`, "want a JSON object"},
		{"empty", ``, "want a JSON object"},
		{"truncated", `{"name": "v1", `, "EOF"},
		{"invalid UTF-8", "{\"name\": \"v1\xff\", " + snap + `, ` + updated + `}`, "UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeTag("v1", []byte(tc.data))
			require.ErrorIs(t, err, core.ErrCorrupt)
			assert.NotErrorIs(t, err, core.ErrInvalid)
			assert.Contains(t, err.Error(), `tag "v1"`, "the error names the tag")
			assert.Contains(t, err.Error(), tc.why)
		})
	}
}

// FuzzDecodeTag checks that decodeTag never panics, fails only with
// errors matching core.ErrCorrupt, and that what it accepts names the
// tag, points at a valid id, and encodes back to a record that decodes
// to the same tag.
func FuzzDecodeTag(f *testing.F) {
	valid := tagJSON(f)
	f.Add(valid)
	for _, mut := range [][2]string{
		{`"name": "v1"`, `"name": "v1", "name": "v1"`},
		{`"name"`, `"Name"`},
		{`"name"`, `"n\u0061me"`},
		{`"v1"`, `null`},
		{`"sha256:`, `"sha256:0`},
		{`"updated": "`, `"updated": "+`},
		{`}`, `, "x": []}`},
	} {
		f.Add(bytes.Replace(valid, []byte(mut[0]), []byte(mut[1]), 1))
	}
	f.Add(append(bytes.Clone(valid), valid...))
	for _, s := range []string{"", "{}", "null", "[]", `"v1"`, "\xef\xbb\xbf{}", "{" + strings.Repeat(`"a":1,`, 100) + "}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tag, err := decodeTag("v1", data)
		if err != nil {
			require.ErrorIs(t, err, core.ErrCorrupt)
			return
		}
		require.Equal(t, "v1", tag.Name)
		require.True(t, tag.Snapshot.IsValid())
		again, err := encodeRecord(tag)
		require.NoError(t, err)
		back, err := decodeTag("v1", again)
		require.NoError(t, err)
		require.True(t, tag.Updated.Equal(back.Updated))
		tag.Updated, back.Updated = time.Time{}, time.Time{}
		require.Equal(t, tag, back)
	})
}
