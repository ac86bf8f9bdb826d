package manifest_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/manifest"
)

// FuzzDecode checks that Decode never panics, fails only with errors
// matching core.ErrCorrupt, and that whatever it accepts re-encodes to
// bytes that decode to the same manifest and re-encode identically.
func FuzzDecode(f *testing.F) {
	signed := fixture(f)
	require.NoError(f, signed.Sign([]byte("k")))
	small := mustNew(f, "s3", "1", "r", []manifest.Entry{
		{Key: "a\x00b", Digest: digestOf("1"), Size: 1},
		{Key: "\xff", Digest: digestOf("2"), Size: 2},
	})
	for _, m := range []*manifest.Manifest{fixture(f), signed, small, mustNew(f, "sqs", "", "", nil)} {
		data := encode(f, m)
		f.Add(data)
		for _, mut := range [][2]string{
			{`"size": 1`, `"size": -1`},
			{`"size": 2`, `"size": 1e3`},
			{`"key": "a\u0000b"`, `"key_base64": "YQBi"`},
			{`"key_base64": "/w=="`, `"key": "\u00ff"`},
			{`"format"`, `"Format"`},
			{`"view": {`, `"view": {"size": 0,`},
			{`"blobs": [`, `"blobs": null, "x": [`},
			{`"sha256:`, `"sha256:0`},
			{`"created": "`, `"created": "+`},
		} {
			f.Add(bytes.Replace(data, []byte(mut[0]), []byte(mut[1]), 1))
		}
		f.Add(append(bytes.Clone(data), " {}"...))
		f.Add(data[:len(data)/3])
	}
	for _, s := range []string{"", "{}", "null", "[]", `{"format":"statebucket.manifest.v2"}`, "\xef\xbb\xbf{}"} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := manifest.Decode(data, nil)
		if err != nil {
			require.ErrorIs(t, err, core.ErrCorrupt)
			return
		}
		again, err := manifest.Encode(m)
		require.NoError(t, err)
		m2, err := manifest.Decode(again, nil)
		require.NoError(t, err)
		require.True(t, m.Equal(m2))
		require.Equal(t, m, m2)
		third, err := manifest.Encode(m2)
		require.NoError(t, err)
		require.Equal(t, again, third)
	})
}
