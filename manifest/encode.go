package manifest

import (
	"encoding/base64"
	"strconv"
	"time"
	"unicode/utf8"
)

// Encode validates m and returns its JSON form: deterministic, indented
// by two spaces, with a trailing newline. Keys that are valid UTF-8 are
// written as "key", others as "key_base64" in standard base64, so that no
// key is altered. The creation time is written in RFC 3339 (UTC).
//
// The bytes are those encoding/json's Encoder writes with two-space
// indentation and HTML escaping off (docs/format.md), written directly:
// no reflection, one buffer sized up front.
func Encode(m *Manifest) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	n := 512 + len(m.Service) + len(m.Account) + len(m.Region) + len(m.Producer) + len(m.ProducerVersion)
	for i := range m.Blobs {
		n += 80 + len(m.Blobs[i].Digest) + 20 + len(m.Blobs[i].Key) + len(m.Blobs[i].Key)/3
	}
	b := make([]byte, 0, n)
	b = append(b, "{\n  \"format\": "...)
	b = appendJSONString(b, m.Format)
	b = append(b, ",\n  \"id\": "...)
	b = appendJSONString(b, string(m.ID))
	b = append(b, ",\n  \"created\": "...)
	b = appendJSONString(b, m.Created.UTC().Format(time.RFC3339Nano))
	b = append(b, ",\n  \"producer\": "...)
	b = appendJSONString(b, m.Producer)
	b = append(b, ",\n  \"producer_version\": "...)
	b = appendJSONString(b, m.ProducerVersion)
	b = append(b, ",\n  \"service\": "...)
	b = appendJSONString(b, m.Service)
	b = append(b, ",\n  \"account\": "...)
	b = appendJSONString(b, m.Account)
	b = append(b, ",\n  \"region\": "...)
	b = appendJSONString(b, m.Region)
	b = append(b, ",\n  \"view\": {\n    \"digest\": \""...)
	b = append(b, m.View.Digest...)
	b = append(b, "\",\n    \"size\": "...)
	b = strconv.AppendInt(b, m.View.Size, 10)
	b = append(b, "\n  },\n  \"blobs\": ["...)
	for i := range m.Blobs {
		e := &m.Blobs[i]
		if i > 0 {
			b = append(b, ',')
		}
		if utf8.ValidString(e.Key) {
			b = append(b, "\n    {\n      \"key\": "...)
			b = appendJSONString(b, e.Key)
		} else {
			b = append(b, "\n    {\n      \"key_base64\": \""...)
			b = base64.StdEncoding.AppendEncode(b, []byte(e.Key))
			b = append(b, '"')
		}
		b = append(b, ",\n      \"digest\": \""...)
		b = append(b, e.Digest...)
		b = append(b, "\",\n      \"size\": "...)
		b = strconv.AppendInt(b, e.Size, 10)
		b = append(b, "\n    }"...)
	}
	if len(m.Blobs) > 0 {
		b = append(b, "\n  "...)
	}
	b = append(b, ']')
	if m.Signature != "" {
		b = append(b, ",\n  \"signature\": "...)
		b = appendJSONString(b, m.Signature)
	}
	return append(b, "\n}\n"...), nil
}

// appendJSONString appends s, valid UTF-8, as encoding/json writes it with
// HTML escaping off: as appendString does, except \b, \f, \n, \r and \t
// in their short forms, and U+2028 and U+2029 as \u2028 and \u2029.
// (Valid digests, written as is by the callers, need none of this.)
func appendJSONString(b []byte, s string) []byte { return appendQuoted(b, s, true) }
