package manifest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/digest"
)

// encodeReflect is the reference Encode: wireManifest through
// encoding/json with two-space indentation and HTML escaping off, which
// docs/format.md specifies.
func encodeReflect(t testing.TB, m *Manifest) []byte {
	t.Helper()
	w := wireManifest{
		Format: m.Format, ID: m.ID, Created: m.Created.UTC().Format(time.RFC3339Nano),
		Producer: m.Producer, ProducerVersion: m.ProducerVersion,
		Service: m.Service, Account: m.Account, Region: m.Region,
		View: wireObject(m.View), Blobs: make([]wireEntry, len(m.Blobs)), Signature: m.Signature,
	}
	for i, e := range m.Blobs {
		w.Blobs[i] = wireEntry{Digest: e.Digest, Size: e.Size}
		if utf8.ValidString(e.Key) {
			w.Blobs[i].Key = &m.Blobs[i].Key
		} else {
			b64 := base64.StdEncoding.EncodeToString([]byte(e.Key))
			w.Blobs[i].KeyBase64 = &b64
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	require.NoError(t, enc.Encode(&w))
	return buf.Bytes()
}

// hostileStrings are strings every escaping rule of encoding/json touches.
var hostileStrings = []string{
	"", "plain", "\x00", "\x01\x07\x08\x09\x0a\x0b\x0c\x0d\x1b\x1f", "\x7f", `"`, `\`, `a"b\c`,
	"\u2028\u2029", "x\u2028y", "\xe2\x80", "\xe2\x80\xa7", "\xe2", "<>&", "\ufeff", "\U0001F600",
	"café", "a\xc3", "\xed\xa0\x80", "\xff\xfe", "/\x00v1", strings.Repeat("k\n", 600),
}

func TestEncodeMatchesEncodingJSON(t *testing.T) {
	d := func(s string) digest.Digest { return digest.FromBytes([]byte(s)) }
	var blobs []Entry
	for i, k := range hostileStrings {
		blobs = append(blobs, Entry{Key: k, Digest: d(k), Size: int64(i * 1000)})
	}
	for _, tc := range []struct {
		name  string
		blobs []Entry
		edit  func(m *Manifest)
	}{
		{name: "hostile keys", blobs: blobs},
		{name: "no blobs"},
		{name: "nanoseconds", blobs: blobs[:2], edit: func(m *Manifest) { m.Created = time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.UTC) }},
		{name: "signed", blobs: blobs, edit: func(m *Manifest) { require.NoError(t, m.Sign([]byte("k"))) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, s := range hostileStrings {
				if !utf8.ValidString(s) {
					continue
				}
				m, err := New("svc"+s, s, s, Object{Digest: d("view"), Size: 7}, tc.blobs)
				require.NoError(t, err)
				m.Producer, m.ProducerVersion = s, s
				m.ID = m.contentID()
				if tc.edit != nil {
					tc.edit(m)
				}
				got, err := Encode(m)
				require.NoError(t, err)
				require.Equal(t, string(encodeReflect(t, m)), string(got))
			}
		})
	}
}
