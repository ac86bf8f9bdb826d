package manifest

import (
	"bytes"
	"math"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/statebucket/statebucket/digest"
)

// parseWire parses data, valid UTF-8, into the wireManifest that
// encoding/json (as Decode configures it) would decode, without
// reflection. It accepts only a subset of what encoding/json accepts:
// every field name spelled exactly, unescaped and at most once per object;
// no null; sizes as integers without fraction or exponent; nothing but
// whitespace after the object. What it does not accept, it leaves to
// encoding/json (ok is false), whose errors Decode reports; on what it
// accepts, the two agree (FuzzParseWire checks that), so Decode's result
// is the same either way.
func parseWire(data []byte) (w *wireManifest, ok bool) {
	p := parser{data: data}
	w = &wireManifest{}
	ok = p.object(topMembers, func(bit uint16) bool {
		switch bit {
		case bitView:
			return p.object(objectMembers, func(bit uint16) bool { return p.digestOrSize(bit, &w.View.Digest, &w.View.Size) })
		case bitBlobs:
			return p.entries(&w.Blobs)
		}
		return p.topString(bit, w)
	})
	p.space()
	return w, ok && p.i == len(data)
}

// The members each object of v1 may have, as sets of memberBits.
const (
	topMembers = bitFormat | bitID | bitCreated | bitProducer | bitProducerVersion |
		bitService | bitAccount | bitRegion | bitView | bitBlobs | bitSignature
	objectMembers = bitDigest | bitSize
	entryMembers  = objectMembers | bitKey | bitKeyBase64
)

// parser is the state of parseWire: data and the offset reached.
type parser struct {
	data     []byte
	i        int
	keys     []string // the block that wireEntry key pointers point into
	keyBlock int      // the length of the next such block
}

// space skips JSON whitespace.
func (p *parser) space() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// eat skips whitespace and c, and reports whether c was there.
func (p *parser) eat(c byte) bool {
	p.space()
	if p.i < len(p.data) && p.data[p.i] == c {
		p.i++
		return true
	}
	return false
}

// object parses an object whose member names are in allowed, calling
// value with each member's bit once the colon is consumed.
func (p *parser) object(allowed uint16, value func(bit uint16) bool) bool {
	if !p.eat('{') {
		return false
	}
	if p.eat('}') {
		return true
	}
	var seen uint16
	for {
		if !p.eat('"') {
			return false
		}
		start := p.i
		for p.i < len(p.data) && p.data[p.i] != '"' && p.data[p.i] != '\\' {
			p.i++
		}
		if p.i == len(p.data) || p.data[p.i] != '"' {
			return false
		}
		bit := memberBits[string(p.data[start:p.i])]
		p.i++
		if bit&allowed == 0 || seen&bit != 0 || !p.eat(':') || !value(bit) {
			return false
		}
		seen |= bit
		if !p.eat(',') {
			return p.eat('}')
		}
	}
}

// topString parses the string member bit of the top-level object into w.
func (p *parser) topString(bit uint16, w *wireManifest) bool {
	var dst *string
	switch bit {
	case bitFormat:
		dst = &w.Format
	case bitID:
		return p.digest(&w.ID)
	case bitCreated:
		dst = &w.Created
	case bitProducer:
		dst = &w.Producer
	case bitProducerVersion:
		dst = &w.ProducerVersion
	case bitService:
		dst = &w.Service
	case bitAccount:
		dst = &w.Account
	case bitRegion:
		dst = &w.Region
	default: // signature
		dst = &w.Signature
	}
	s, ok := p.string()
	*dst = s
	return ok
}

// entries parses the blobs array into *blobs.
func (p *parser) entries(blobs *[]wireEntry) bool {
	if !p.eat('[') {
		return false
	}
	// Every entry has a size member: counting them sizes the slice up
	// front, up to the default cap on entries, which Decode checks after.
	*blobs = make([]wireEntry, 0, min(bytes.Count(p.data[p.i:], []byte(`"size"`)), DefaultMaxEntries))
	p.keyBlock = min(max(cap(*blobs), 1), 1024)
	if p.eat(']') {
		return true
	}
	for {
		var e wireEntry
		ok := p.object(entryMembers, func(bit uint16) bool {
			switch bit {
			case bitKey:
				return p.keyString(&e.Key)
			case bitKeyBase64:
				return p.keyString(&e.KeyBase64)
			}
			return p.digestOrSize(bit, &e.Digest, &e.Size)
		})
		if !ok {
			return false
		}
		*blobs = append(*blobs, e)
		if !p.eat(',') {
			return p.eat(']')
		}
	}
}

// keyString parses a string into a new *string, taken from a block so
// that entries do not cost an allocation each.
func (p *parser) keyString(dst **string) bool {
	s, ok := p.string()
	if len(p.keys) == cap(p.keys) {
		p.keys = make([]string, 0, p.keyBlock)
	}
	p.keys = append(p.keys, s)
	*dst = &p.keys[len(p.keys)-1]
	return ok
}

// digestOrSize parses the digest or the size member of an object.
func (p *parser) digestOrSize(bit uint16, d *digest.Digest, size *int64) bool {
	if bit == bitSize {
		return p.int64(size)
	}
	return p.digest(d)
}

// digest parses a string into *d.
func (p *parser) digest(d *digest.Digest) bool {
	s, ok := p.string()
	*d = digest.Digest(s)
	return ok
}

// string parses a JSON string. Escapes are decoded as encoding/json
// decodes them; an unpaired surrogate, which encoding/json replaces by
// U+FFFD, is refused (left to encoding/json).
func (p *parser) string() (string, bool) {
	if !p.eat('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.data) {
		switch c := p.data[p.i]; {
		case c == '"':
			p.i++
			return string(p.data[start : p.i-1]), true
		case c == '\\':
			return p.escapedString(start)
		case c < 0x20:
			return "", false
		}
		p.i++
	}
	return "", false
}

// escapedString finishes a string that started at start and holds an
// escape at p.i.
func (p *parser) escapedString(start int) (string, bool) {
	b := append([]byte(nil), p.data[start:p.i]...)
	for p.i < len(p.data) {
		c := p.data[p.i]
		switch {
		case c == '"':
			p.i++
			return string(b), true
		case c < 0x20:
			return "", false
		case c != '\\':
			b = append(b, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.data) {
			return "", false
		}
		p.i += 2
		switch e := p.data[p.i-1]; e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", false
			}
			if utf16.IsSurrogate(r) {
				if !(p.i+1 < len(p.data) && p.data[p.i] == '\\' && p.data[p.i+1] == 'u') {
					return "", false
				}
				p.i += 2
				r2, ok := p.hex4()
				if !ok {
					return "", false
				}
				if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
					return "", false
				}
			}
			b = utf8.AppendRune(b, r)
		default:
			return "", false
		}
	}
	return "", false
}

// hex4 parses the four hex digits of a \u escape.
func (p *parser) hex4() (rune, bool) {
	if p.i+4 > len(p.data) {
		return 0, false
	}
	var r rune
	for _, c := range p.data[p.i : p.i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	p.i += 4
	return r, true
}

// int64 parses a JSON integer (no fraction, no exponent) that fits an
// int64 into *n.
func (p *parser) int64(n *int64) bool {
	p.space()
	neg := p.i < len(p.data) && p.data[p.i] == '-'
	if neg {
		p.i++
	}
	start := p.i
	var u uint64
	for p.i < len(p.data) && '0' <= p.data[p.i] && p.data[p.i] <= '9' {
		if p.i-start == 19 { // more digits than any int64 has
			return false
		}
		u = u*10 + uint64(p.data[p.i]-'0')
		p.i++
	}
	switch digits := p.i - start; {
	case digits == 0, digits > 1 && p.data[start] == '0':
		return false
	case p.i < len(p.data) && (p.data[p.i] == '.' || p.data[p.i] == 'e' || p.data[p.i] == 'E'):
		return false
	case !neg && u > math.MaxInt64, neg && u > math.MaxInt64+1:
		return false
	}
	*n = int64(u)
	if neg {
		*n = -int64(u)
	}
	return true
}
