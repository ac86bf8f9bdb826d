package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"io"
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
	var buf bytes.Buffer
	buf.Grow(m.canonicalSizeHint())
	m.writeCanonical(&buf)
	return buf.Bytes(), nil
}

// canonicalSizeHint returns about the length of m's canonical bytes, at
// least as much for keys that need no escaping.
func (m *Manifest) canonicalSizeHint() int {
	n := 200 + len(m.Service) + len(m.Account) + len(m.Region)
	for _, e := range m.Blobs {
		n += 40 + len(e.Digest) + 20 + len(e.Key) + len(e.Key)/3
	}
	return n
}

// canonicalChunk is the size of the pieces writeCanonical writes.
const canonicalChunk = 64 << 10

// writeCanonical writes the canonical bytes of m, whose content is valid,
// to w in pieces of about canonicalChunk bytes, so that hashing them
// never holds them all. Writes to a hash or a bytes.Buffer do not fail.
func (m *Manifest) writeCanonical(w io.Writer) {
	// A small manifest's pieces are sized to it: List decodes thousands.
	b := make([]byte, 0, min(canonicalChunk, m.canonicalSizeHint())+1024)
	b = append(b, `{"format":`...)
	b = appendString(b, m.Format)
	b = append(b, `,"service":`...)
	b = appendString(b, m.Service)
	b = append(b, `,"account":`...)
	b = appendString(b, m.Account)
	b = append(b, `,"region":`...)
	b = appendString(b, m.Region)
	b = append(b, `,"view":{`...)
	b = appendDigestSize(b, m.View.Digest, m.View.Size)
	b = append(b, `,"blobs":[`...)
	for i := range m.Blobs {
		e := &m.Blobs[i]
		if i > 0 {
			b = append(b, ',')
		}
		if utf8.ValidString(e.Key) {
			b = append(b, `{"key":`...)
			b = appendString(b, e.Key)
		} else {
			b = append(b, `{"key_base64":"`...)
			b = base64.StdEncoding.AppendEncode(b, []byte(e.Key))
			b = append(b, '"')
		}
		b = append(b, ',')
		b = appendDigestSize(b, e.Digest, e.Size)
		if len(b) >= canonicalChunk {
			w.Write(b)
			b = b[:0]
		}
	}
	w.Write(append(b, "]}"...))
}

// appendDigestSize appends the members of a valid digest d and size n and
// closes the object: "digest":…,"size":…}. A valid digest needs no
// escaping.
func appendDigestSize(b []byte, d digest.Digest, n int64) []byte {
	b = append(b, `"digest":"`...)
	b = append(b, d...)
	b = append(b, `","size":`...)
	return append(strconv.AppendInt(b, n, 10), '}')
}

// appendString appends s, valid UTF-8, as a canonical JSON string: '"'
// and '\' escaped by a backslash, bytes below 0x20 as \u00XX (lowercase
// hex), everything else as is.
func appendString(b []byte, s string) []byte { return appendQuoted(b, s, false) }

// shortEscapes holds the letter of each control byte encoding/json writes
// in a short form (\b, \f, \n, \r, \t), and 0 for the others.
var shortEscapes = [0x20]byte{'\b': 'b', '\f': 'f', '\n': 'n', '\r': 'r', '\t': 't'}

// appendQuoted appends s, valid UTF-8, quoted: canonically (see
// appendString), or as encoding/json writes it if asEncodingJSON (see
// appendJSONString). Runs of bytes that need no escaping are copied at once.
func appendQuoted(b []byte, s string, asEncodingJSON bool) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && (c != 0xe2 || !asEncodingJSON) {
			continue
		}
		if c == 0xe2 {
			// U+2028 and U+2029 are E2 80 A8 and E2 80 A9.
			if i+2 < len(s) && s[i+1] == 0x80 && (s[i+2] == 0xa8 || s[i+2] == 0xa9) {
				b = append(b, s[start:i]...)
				b = append(b, '\\', 'u', '2', '0', '2', hexDigits[s[i+2]&0xf])
				i += 2
				start = i + 1
			}
			continue
		}
		b = append(b, s[start:i]...)
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case asEncodingJSON && shortEscapes[c] != 0:
			b = append(b, '\\', shortEscapes[c])
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// contentID returns the id of m, whose content is valid: the SHA-256 of
// its canonical bytes.
func (m *Manifest) contentID() digest.Digest {
	h := sha256.New()
	m.writeCanonical(h)
	return digest.FromSum(h.Sum(nil))
}
