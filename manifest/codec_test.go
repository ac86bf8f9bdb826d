package manifest_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/manifest"
)

// encode returns the JSON form of m.
func encode(t testing.TB, m *manifest.Manifest) []byte {
	t.Helper()
	data, err := manifest.Encode(m)
	require.NoError(t, err)
	return data
}

// edit returns data, a JSON object, changed by f. Field order and
// indentation are not kept.
func edit(t testing.TB, data []byte, f func(doc map[string]any)) []byte {
	t.Helper()
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&doc))
	f(doc)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(doc))
	return buf.Bytes()
}

// blob returns entry i of doc, a manifest being edited.
func blob(doc map[string]any, i int) map[string]any {
	return doc["blobs"].([]any)[i].(map[string]any)
}

// replace returns data with the first old replaced by new, which must be
// there.
func replace(t testing.TB, data []byte, old, new string) []byte {
	t.Helper()
	require.Contains(t, string(data), old)
	return bytes.Replace(data, []byte(old), []byte(new), 1)
}

func TestRoundTrip(t *testing.T) {
	signed := fixture(t)
	require.NoError(t, signed.Sign([]byte("secret")))

	nanos := fixture(t)
	nanos.Created = time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.UTC)

	controls := []manifest.Entry{}
	for _, k := range []string{"\x00", "\x01\x1f", "\x7f", "\"", "\\", "\u2028\u2029", "<>&", "\ufeff", "\U0001F600", "a\xc3", "\xed\xa0\x80"} {
		controls = append(controls, manifest.Entry{Key: k, Digest: digestOf(k), Size: 1})
	}

	huge := []manifest.Entry{
		{Key: "a", Digest: digestOf("a"), Size: math.MaxInt64 / 2},
		{Key: "b", Digest: digestOf("b"), Size: math.MaxInt64/2 - fixtureView.Size},
	}

	for _, tc := range []struct {
		name string
		m    *manifest.Manifest
		opts *manifest.DecodeOptions
	}{
		{name: "hostile keys", m: fixture(t)},
		{name: "signed", m: signed, opts: &manifest.DecodeOptions{HMACKey: []byte("secret")}},
		{name: "nanosecond creation time", m: nanos},
		{name: "no blobs, empty account and region", m: mustNew(t, "sqs", "", "", nil)},
		{name: "only an invalid UTF-8 key", m: mustNew(t, "s3", "1", "r", []manifest.Entry{{Key: "\x80", Digest: digestOf("x"), Size: 0}})},
		{name: "control and special characters", m: mustNew(t, "s3", "acct\x00\"", "région", controls)},
		{name: "huge sizes", m: mustNew(t, "s3", "1", "r", huge), opts: &manifest.DecodeOptions{MaxTotalSize: math.MaxInt64}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := encode(t, tc.m)
			got, err := manifest.Decode(data, tc.opts)
			require.NoError(t, err)
			require.Equal(t, tc.m, got)
			assert.True(t, tc.m.Equal(got))
			assert.Equal(t, data, encode(t, got), "re-encoding gives the same bytes")

			invalid := 0
			for _, e := range tc.m.Blobs {
				if !utf8.ValidString(e.Key) {
					invalid++
				}
			}
			assert.Equal(t, invalid, strings.Count(string(data), `"key_base64"`), "key_base64 holds exactly the keys that are not UTF-8")
		})
	}
}

func TestEncodeKeepsKeysReadable(t *testing.T) {
	data := string(encode(t, fixture(t)))
	assert.Contains(t, data, `"key": "bucket/<a href=\"x\">&amp;</a>"`, "no HTML escaping")
	assert.Contains(t, data, `"key": "bucket/a\u0000v1"`)
	assert.Contains(t, data, `"key": "bucket/café"`)
	assert.Contains(t, data, `"key": ""`, "the empty key is a key")
	assert.Contains(t, data, `"key_base64": "`+base64.StdEncoding.EncodeToString([]byte(keyInvalid))+`"`)
	assert.NotContains(t, data, `"signature"`, "omitted when unsigned")
	for _, field := range []string{"format", "id", "created", "producer", "producer_version", "service", "account", "region", "view", "digest", "size", "blobs"} {
		assert.Contains(t, data, `"`+field+`": `)
	}
}

// mustNew is manifest.New for inputs that must be valid.
func mustNew(t testing.TB, service, account, region string, blobs []manifest.Entry) *manifest.Manifest {
	t.Helper()
	m, err := manifest.New(service, account, region, fixtureView, blobs)
	require.NoError(t, err)
	return m
}

func TestDecodeRejects(t *testing.T) {
	m := fixture(t)
	valid := encode(t, m)
	// The fixture's entries: 0 "", 1 keyHTML, 2 keyNUL, 3 keyNFD, 4 keyNFC,
	// 5 keyLong, 6 keyInvalid.
	require.Equal(t, keyNUL, m.Blobs[2].Key)

	signedA := fixture(t)
	require.NoError(t, signedA.Sign([]byte("key A")))
	otherContent := mustNew(t, "s3", "999999999999", "us-east-1", fixtureBlobs())
	otherContent.Signature = signedA.Signature
	keyB := &manifest.DecodeOptions{HMACKey: []byte("key B")}
	keyA := &manifest.DecodeOptions{HMACKey: []byte("key A")}

	for _, tc := range []struct {
		name  string
		data  []byte
		opts  *manifest.DecodeOptions
		field string
		index int
		key   string
		msg   string
	}{
		{name: "newer format", data: edit(t, valid, func(d map[string]any) { d["format"] = "statebucket.manifest.v2" }),
			field: "format", index: -1, msg: `"statebucket.manifest.v2" is not a format this build reads (it reads "statebucket.manifest.v1")`},
		{name: "newer format with new fields", data: edit(t, valid, func(d map[string]any) { d["format"] = "statebucket.manifest.v2"; d["compression"] = "zstd" }),
			field: "format", index: -1, msg: `"statebucket.manifest.v2"`},
		{name: "missing format", data: edit(t, valid, func(d map[string]any) { delete(d, "format") }), field: "format", index: -1, msg: "missing"},
		{name: "unknown field", data: edit(t, valid, func(d map[string]any) { d["extra"] = 1 }), index: -1, msg: `unknown field "extra"`},
		{name: "unknown entry field", data: edit(t, valid, func(d map[string]any) { blob(d, 2)["mtime"] = 1 }), index: -1, msg: `unknown field "mtime"`},
		{name: "trailing garbage", data: append(slices.Clone(valid), "garbage"...), index: -1, msg: "trailing data"},
		{name: "second document", data: append(slices.Clone(valid), "{}"...), index: -1, msg: "trailing data"},
		{name: "truncated", data: valid[:len(valid)/2], index: -1, msg: "unexpected EOF"},
		{name: "empty", data: nil, index: -1, msg: "empty"},
		{name: "not an object", data: []byte(`["statebucket.manifest.v1"]`), index: -1, msg: "cannot unmarshal array"},
		{name: "not UTF-8", data: replace(t, valid, `"us-east-1"`, "\"us-\xffeast-1\""), index: -1, msg: "not valid UTF-8"},
		{name: "field name in other case", data: replace(t, valid, `"service":`, `"Service":`), index: -1, msg: `field "Service" at byte`},
		{name: "escaped field name", data: replace(t, valid, `"service":`, `"\u0073ervice":`), index: -1, msg: `field "\\u0073ervice" at byte`},
		{name: "repeated field", data: replace(t, valid, `"region": "us-east-1",`, `"region": "us-east-1", "region": "eu-west-1",`), index: -1, msg: `field "region" at byte`},
		{name: "repeated entry field", data: replace(t, valid, `"size": 200`, `"size": 200, "size": 201`), index: -1, msg: `field "size" at byte`},
		{name: "null", data: edit(t, valid, func(d map[string]any) { d["signature"] = nil }), index: -1, msg: "null at byte"},
		{name: "null key", data: edit(t, valid, func(d map[string]any) { blob(d, 6)["key"] = nil }), index: -1, msg: "null at byte"},
		{name: "missing service", data: edit(t, valid, func(d map[string]any) { d["service"] = "" }), field: "service", index: -1, msg: "missing"},
		{name: "bad created", data: edit(t, valid, func(d map[string]any) { d["created"] = "yesterday" }), field: "created", index: -1, msg: `"yesterday"`},
		{name: "missing created", data: edit(t, valid, func(d map[string]any) { delete(d, "created") }), field: "created", index: -1},
		{name: "malformed id", data: edit(t, valid, func(d map[string]any) { d["id"] = "sha256:abc" }), field: "id", index: -1, msg: `"sha256:abc"`},
		{name: "bad view digest", data: edit(t, valid, func(d map[string]any) { d["view"].(map[string]any)["digest"] = "sha256:xyz" }), field: "view.digest", index: -1},
		{name: "negative view size", data: edit(t, valid, func(d map[string]any) { d["view"].(map[string]any)["size"] = -1 }), field: "view.size", index: -1, msg: "-1 is negative"},
		{name: "uppercase digest", data: edit(t, valid, func(d map[string]any) { blob(d, 2)["digest"] = strings.ToUpper(string(m.Blobs[2].Digest)) }),
			field: "digest", index: 2, key: keyNUL, msg: "not sha256:<64 lowercase hex digits>"},
		{name: "uppercase hex", data: edit(t, valid, func(d map[string]any) {
			blob(d, 2)["digest"] = strings.Replace(string(m.Blobs[2].Digest), m.Blobs[2].Digest.Hex(), strings.ToUpper(m.Blobs[2].Digest.Hex()), 1)
		}),
			field: "digest", index: 2, key: keyNUL},
		{name: "short digest", data: edit(t, valid, func(d map[string]any) { blob(d, 2)["digest"] = string(m.Blobs[2].Digest[:40]) }), field: "digest", index: 2, key: keyNUL},
		{name: "other algorithm", data: edit(t, valid, func(d map[string]any) { blob(d, 4)["digest"] = "md5:d41d8cd98f00b204e9800998ecf8427e" }), field: "digest", index: 4, key: keyNFC},
		{name: "negative size", data: edit(t, valid, func(d map[string]any) { blob(d, 2)["size"] = -1 }), field: "size", index: 2, key: keyNUL, msg: "-1 is negative"},
		{name: "fractional size", data: edit(t, valid, func(d map[string]any) { blob(d, 2)["size"] = json.Number("1.5") }), index: -1, msg: "1.5"},
		{name: "size as string", data: edit(t, valid, func(d map[string]any) { blob(d, 2)["size"] = "100" }), index: -1, msg: "string"},
		{name: "size beyond int64", data: edit(t, valid, func(d map[string]any) { blob(d, 2)["size"] = json.Number("9223372036854775808") }), index: -1, msg: "9223372036854775808"},
		{name: "duplicate key", data: edit(t, valid, func(d map[string]any) { blob(d, 3)["key"] = keyNUL }),
			field: "key", index: 3, key: keyNUL, msg: "repeats blobs[2]"},
		{name: "duplicate invalid UTF-8 key", data: edit(t, valid, func(d map[string]any) {
			d["blobs"] = append(d["blobs"].([]any), blob(d, 6))
		}), field: "key", index: 7, key: keyInvalid, msg: "repeats blobs[6]"},
		{name: "unsorted", data: edit(t, valid, func(d map[string]any) {
			b := d["blobs"].([]any)
			b[2], b[3] = b[3], b[2]
		}), field: "key", index: 3, key: keyNUL, msg: "sorts before blobs[2]"},
		{name: "unsorted, invalid UTF-8 first", data: edit(t, valid, func(d map[string]any) {
			b := d["blobs"].([]any)
			d["blobs"] = append([]any{b[6]}, b[:6]...)
		}), field: "key", index: 1, key: "", msg: `"\xff\xfe/not-utf8"`},
		{name: "both key fields", data: edit(t, valid, func(d map[string]any) { blob(d, 2)["key_base64"] = base64.StdEncoding.EncodeToString([]byte(keyNUL)) }),
			field: "key", index: 2, key: keyNUL, msg: `given both as "key" and as "key_base64"`},
		{name: "no key field", data: edit(t, valid, func(d map[string]any) { delete(blob(d, 2), "key") }),
			field: "key", index: 2, msg: `missing: want exactly one of "key" and "key_base64"`},
		{name: "key_base64 holding UTF-8", data: edit(t, valid, func(d map[string]any) {
			delete(blob(d, 2), "key")
			blob(d, 2)["key_base64"] = base64.StdEncoding.EncodeToString([]byte(keyNUL))
		}), field: "key", index: 2, key: keyNUL, msg: `write it as "key"`},
		{name: "key_base64 not base64", data: edit(t, valid, func(d map[string]any) { blob(d, 6)["key_base64"] = "!!!!" }),
			field: "key", index: 6, msg: `"!!!!" is not canonical standard base64`},
		{name: "key_base64 without padding", data: edit(t, valid, func(d map[string]any) {
			blob(d, 6)["key_base64"] = strings.TrimRight(base64.StdEncoding.EncodeToString([]byte(keyInvalid)), "=")
		}), field: "key", index: 6, msg: "not canonical standard base64"},
		{name: "key_base64 with a line break", data: edit(t, valid, func(d map[string]any) {
			blob(d, 6)["key_base64"] = "/\n" + base64.StdEncoding.EncodeToString([]byte(keyInvalid))[1:]
		}), field: "key", index: 6, msg: "not canonical standard base64"},
		{name: "edited size", data: edit(t, valid, func(d map[string]any) { blob(d, 2)["size"] = 101 }), field: "id", index: -1, msg: "modified or corrupted"},
		{name: "edited digest", data: edit(t, valid, func(d map[string]any) { blob(d, 2)["digest"] = digestOf("evil") }), field: "id", index: -1, msg: "modified or corrupted"},
		{name: "edited key", data: edit(t, valid, func(d map[string]any) { blob(d, 3)["key"] = keyNFD + "x" }), field: "id", index: -1, msg: "modified or corrupted"},
		{name: "edited invalid UTF-8 key", data: edit(t, valid, func(d map[string]any) {
			blob(d, 6)["key_base64"] = base64.StdEncoding.EncodeToString([]byte(keyInvalid + "x"))
		}), field: "id", index: -1, msg: "modified or corrupted"},
		{name: "removed entry", data: edit(t, valid, func(d map[string]any) { d["blobs"] = d["blobs"].([]any)[1:] }), field: "id", index: -1},
		{name: "edited view", data: edit(t, valid, func(d map[string]any) { d["view"].(map[string]any)["size"] = 43 }), field: "id", index: -1},
		{name: "edited account", data: edit(t, valid, func(d map[string]any) { d["account"] = "999999999999" }), field: "id", index: -1},
		{name: "over MaxBytes", data: valid, opts: &manifest.DecodeOptions{MaxBytes: int64(len(valid) - 1)}, index: -1, msg: "DecodeOptions.MaxBytes"},
		{name: "over MaxEntries", data: valid, opts: &manifest.DecodeOptions{MaxEntries: 6}, field: "blobs", index: -1, msg: "7 entries exceed the limit of 6 (DecodeOptions.MaxEntries)"},
		{name: "over MaxTotalSize", data: valid, opts: &manifest.DecodeOptions{MaxTotalSize: 342}, field: "size", index: 3, key: keyNFD, msg: "642, exceeds the limit of 342 bytes (DecodeOptions.MaxTotalSize)"},
		{name: "view over MaxTotalSize", data: valid, opts: &manifest.DecodeOptions{MaxTotalSize: 41}, field: "view.size", index: -1, msg: "DecodeOptions.MaxTotalSize"},
		{name: "signed with another key", data: encode(t, signedA), opts: keyB, field: "signature", index: -1, msg: "does not match"},
		{name: "signature of other content", data: encode(t, otherContent), opts: keyA, field: "signature", index: -1, msg: "does not match"},
		{name: "unsigned under a key", data: valid, opts: &manifest.DecodeOptions{HMACKey: []byte("k")}, field: "signature", index: -1, msg: "not signed"},
		{name: "creation time edited after signing", data: edit(t, encode(t, signedA), func(d map[string]any) { d["created"] = "2099-01-01T00:00:00Z" }), opts: keyA, field: "signature", index: -1, msg: "does not match"},
		{name: "producer edited after signing", data: edit(t, encode(t, signedA), func(d map[string]any) { d["producer"] = "mallory" }), opts: keyA, field: "signature", index: -1, msg: "does not match"},
		{name: "producer version edited after signing", data: edit(t, encode(t, signedA), func(d map[string]any) { d["producer_version"] = "9" }), opts: keyA, field: "signature", index: -1, msg: "does not match"},
		{name: "malformed signature", data: edit(t, valid, func(d map[string]any) { d["signature"] = "hmac-sha256:zz" }), field: "signature", index: -1},
		{name: "other signature algorithm", data: edit(t, valid, func(d map[string]any) { d["signature"] = "ed25519:" + strings.Repeat("0", 64) }), field: "signature", index: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := manifest.Decode(tc.data, tc.opts)
			assert.Nil(t, got)
			requireInvalid(t, err, tc.field, tc.index, tc.key)
			assert.ErrorIs(t, err, core.ErrCorrupt, "a stored manifest that fails is bad data")
			assert.Contains(t, err.Error(), tc.msg)
			if strings.Contains(string(tc.data), `"signature"`) {
				var doc struct{ Signature string }
				if json.Unmarshal(tc.data, &doc) == nil && len(doc.Signature) > 12 {
					assert.NotContains(t, err.Error(), doc.Signature[12:], "signatures never appear in errors")
				}
			}
		})
	}
}

func TestDecodeCapsAreInclusive(t *testing.T) {
	m := fixture(t)
	data := encode(t, m)
	got, err := manifest.Decode(data, &manifest.DecodeOptions{
		MaxBytes:     int64(len(data)),
		MaxEntries:   len(m.Blobs),
		MaxTotalSize: m.TotalSize(),
	})
	require.NoError(t, err)
	assert.Equal(t, m, got)
}

func TestDecodeSignatureOptions(t *testing.T) {
	unsigned := fixture(t)
	signed := fixture(t)
	require.NoError(t, signed.Sign([]byte("k")))

	for _, tc := range []struct {
		name string
		m    *manifest.Manifest
		opts *manifest.DecodeOptions
	}{
		{"signed, no key: accepted unverified", signed, nil},
		{"signed, right key", signed, &manifest.DecodeOptions{HMACKey: []byte("k")}},
		{"unsigned, no key", unsigned, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := manifest.Decode(encode(t, tc.m), tc.opts)
			require.NoError(t, err)
			assert.Equal(t, tc.m, got)
		})
	}

	_, err := manifest.Decode(encode(t, unsigned), &manifest.DecodeOptions{HMACKey: []byte("k")})
	requireInvalid(t, err, "signature", -1, "")
	assert.Contains(t, err.Error(), "not signed", "a key requires a signature")
}

func TestSignVerify(t *testing.T) {
	m := fixture(t)
	id := m.ID
	require.NoError(t, m.Sign([]byte("secret")))
	assert.Equal(t, id, m.ID, "signing does not change the id")
	assert.Regexp(t, `^hmac-sha256:[0-9a-f]{64}$`, m.Signature)
	require.NoError(t, m.VerifySignature([]byte("secret")))

	again := fixture(t)
	again.Created = m.Created
	require.NoError(t, again.Sign([]byte("secret")))
	assert.Equal(t, m.Signature, again.Signature, "deterministic")

	signedBytes, err := m.SignedBytes()
	require.NoError(t, err)
	canonical, err := m.Canonical()
	require.NoError(t, err)
	assert.Equal(t, string(canonical)+`{"id":"`+string(m.ID)+`","created":"`+m.Created.Format(time.RFC3339Nano)+`","producer":"statebucket","producer_version":"`+manifest.Version+`"}`, string(signedBytes))
	assert.Equal(t, manifest.HMAC([]byte("secret"), signedBytes), m.Signature)
	assert.True(t, manifest.CheckHMAC([]byte("secret"), signedBytes, m.Signature))
	assert.False(t, manifest.CheckHMAC([]byte("secret"), signedBytes[1:], m.Signature))
	assert.False(t, manifest.CheckHMAC([]byte("secret"), signedBytes, strings.ToUpper(m.Signature)), "only the canonical form")

	// The signature covers what the id leaves out: the creation time,
	// which decides the latest snapshot, and the producer.
	for name, edit := range map[string]func(*manifest.Manifest){
		"created":          func(m *manifest.Manifest) { m.Created = m.Created.Add(time.Millisecond) },
		"producer":         func(m *manifest.Manifest) { m.Producer = "other" },
		"producer_version": func(m *manifest.Manifest) { m.ProducerVersion = "0.0.0" },
	} {
		edited := *m
		edit(&edited)
		assert.Equal(t, m.ID, edited.ID, "%s is not part of the id", name)
		requireInvalid(t, edited.VerifySignature([]byte("secret")), "signature", -1, "")
	}

	err = m.VerifySignature([]byte("other"))
	requireInvalid(t, err, "signature", -1, "")
	assert.NotContains(t, err.Error(), m.Signature[12:])

	tampered := *m
	tampered.Signature = m.Signature[:len(m.Signature)-1] + "0"
	if tampered.Signature == m.Signature {
		tampered.Signature = m.Signature[:len(m.Signature)-1] + "1"
	}
	requireInvalid(t, tampered.VerifySignature([]byte("secret")), "signature", -1, "")

	requireInvalid(t, fixture(t).VerifySignature([]byte("secret")), "signature", -1, "")

	stale := fixture(t)
	stale.Region = "elsewhere"
	requireInvalid(t, stale.Sign([]byte("secret")), "id", -1, "")
	requireInvalid(t, stale.VerifySignature([]byte("secret")), "id", -1, "")

	require.ErrorIs(t, m.Sign(nil), core.ErrInvalid)
	require.ErrorIs(t, m.VerifySignature(nil), core.ErrInvalid)
}

func TestDecodeErrorUnwrapsToCause(t *testing.T) {
	_, err := manifest.Decode([]byte(`{"format": x}`), nil)
	require.ErrorIs(t, err, core.ErrCorrupt)
	var syntax *json.SyntaxError
	require.ErrorAs(t, err, &syntax)
	assert.Equal(t, int64(12), syntax.Offset)
}
