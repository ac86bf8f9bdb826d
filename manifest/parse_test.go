package manifest

import (
	"bytes"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/digest"
)

// FuzzParseWire checks that the fast parser never accepts what the
// encoding/json path refuses, and that where it accepts, both decode the
// same wireManifest.
func FuzzParseWire(f *testing.F) {
	d := func(s string) digest.Digest { return digest.FromBytes([]byte(s)) }
	var blobs []Entry
	for i, k := range hostileStrings {
		blobs = append(blobs, Entry{Key: k, Digest: d(k), Size: int64(i)})
	}
	m, err := New("s3", "123", "r\u2028", Object{Digest: d("v"), Size: 3}, blobs)
	require.NoError(f, err)
	m.Created = time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.UTC)
	require.NoError(f, m.Sign([]byte("k")))
	data, err := Encode(m)
	require.NoError(f, err)
	f.Add(data)
	for _, mut := range [][2]string{
		{`"size": 1`, `"size": -0`}, {`"size": 2`, `"size": 2.0`}, {`"size": 3`, `"size": 9223372036854775807`},
		{`"size": 4`, `"size": 9223372036854775808`}, {`"size": 5`, `"size": 05`}, {`"size": 6`, `"size": 6e0`},
		{`"key": "plain"`, `"key": "pl\u0061in\/\ud83d\ude00"`}, {`"key": "plain"`, `"key": "\ud83d"`},
		{`"key": "plain"`, `"key":"plain","key":"plain"`}, {`"format"`, `"Format"`}, {`"view": {`, `"view": null, "x": {`},
		{"\n}\n", "\n} "}, {"\n}\n", "\n}{}"}, {`"producer"`, `"produc\u0065r"`}, {`"blobs": [`, `"blobs": [ ], "b": [`},
	} {
		f.Add(bytes.Replace(data, []byte(mut[0]), []byte(mut[1]), 1))
	}
	f.Add([]byte(`{"blobs":[]}`))
	f.Add([]byte(` {"format":"x","view":{},"blobs":[{}]} `))
	f.Fuzz(func(t *testing.T, data []byte) {
		if !utf8.Valid(data) {
			return
		}
		fast, ok := parseWire(data)
		slow, err := decodeWire(data)
		if !ok {
			return
		}
		if fast.Format != Format {
			// decodeWire refuses other formats after decoding them.
			require.Error(t, err)
			return
		}
		require.NoError(t, err, "the fast parser accepted what encoding/json refuses")
		require.Equal(t, slow, fast)
	})
}
