package manifest

import (
	"encoding/base64"
	"strconv"
	"unicode/utf8"

	"github.com/statebucket/statebucket/digest"
)

// Canonical returns the bytes m's id is the SHA-256 digest of: compact JSON
// holding, in this order, format, service, account, region, view (digest,
// size) and blobs (key or key_base64, digest, size), without the id, the
// creation time, the producer and the signature.
//
// The encoding is defined here, not by encoding/json, so that ids stay
// stable across Go releases: no whitespace; integers in decimal; strings
// with '"' and '\' escaped by a backslash, bytes below 0x20 written as
// \u00XX (lowercase hex), and everything else written as is; a key that is
// not valid UTF-8 written as key_base64, in standard base64 with padding.
//
// Canonical fails with a *ValidationError when m's content does not
// validate; it does not check the id.
func (m *Manifest) Canonical() ([]byte, error) {
	if err := m.validateContent(); err != nil {
		return nil, err
	}
	return m.canonical(), nil
}

// canonical returns the canonical bytes of m, whose content is valid.
func (m *Manifest) canonical() []byte {
	n := 128 + len(m.Service) + len(m.Account) + len(m.Region)
	for _, e := range m.Blobs {
		n += 110 + 2*len(e.Key)
	}
	b := make([]byte, 0, n)
	b = append(b, `{"format":`...)
	b = appendString(b, m.Format)
	b = append(b, `,"service":`...)
	b = appendString(b, m.Service)
	b = append(b, `,"account":`...)
	b = appendString(b, m.Account)
	b = append(b, `,"region":`...)
	b = appendString(b, m.Region)
	b = append(b, `,"view":{`...)
	b = appendDigestSize(b, m.View)
	b = append(b, `,"blobs":[`...)
	for i, e := range m.Blobs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		if utf8.ValidString(e.Key) {
			b = append(b, `"key":`...)
			b = appendString(b, e.Key)
		} else {
			b = append(b, `"key_base64":"`...)
			b = base64.StdEncoding.AppendEncode(b, []byte(e.Key))
			b = append(b, '"')
		}
		b = append(b, ',')
		b = appendDigestSize(b, Object{Digest: e.Digest, Size: e.Size})
	}
	return append(b, "]}"...)
}

// appendDigestSize appends the members of o and closes the object:
// "digest":…,"size":…}.
func appendDigestSize(b []byte, o Object) []byte {
	b = append(b, `"digest":`...)
	b = appendString(b, string(o.Digest))
	b = append(b, `,"size":`...)
	return append(strconv.AppendInt(b, o.Size, 10), '}')
}

// appendString appends s, valid UTF-8, as a canonical JSON string.
func appendString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// idOf returns the id of a manifest whose canonical bytes are c.
func idOf(c []byte) digest.Digest { return digest.FromBytes(c) }
