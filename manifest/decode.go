package manifest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"time"
	"unicode/utf8"

	"github.com/statebucket/statebucket/digest"
)

// wireManifest is the JSON form of a Manifest, as encoding/json reads it
// when the fast parser (see parseWire) leaves a document to it.
type wireManifest struct {
	Format          string        `json:"format"`
	ID              digest.Digest `json:"id"`
	Created         string        `json:"created"`
	Producer        string        `json:"producer"`
	ProducerVersion string        `json:"producer_version"`
	Service         string        `json:"service"`
	Account         string        `json:"account"`
	Region          string        `json:"region"`
	View            wireObject    `json:"view"`
	Blobs           []wireEntry   `json:"blobs"`
	Signature       string        `json:"signature,omitempty"`
}

// wireObject is the JSON form of an Object.
type wireObject struct {
	Digest digest.Digest `json:"digest"`
	Size   int64         `json:"size"`
}

// wireEntry is the JSON form of an Entry: exactly one of Key (a valid
// UTF-8 key) and KeyBase64 (any other key, in standard base64) is set.
type wireEntry struct {
	Key       *string       `json:"key,omitempty"`
	KeyBase64 *string       `json:"key_base64,omitempty"`
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
}

// Default caps of Decode.
const (
	DefaultMaxBytes     = 256 << 20 // 256 MiB of manifest JSON
	DefaultMaxEntries   = 1_000_000 // blob entries (~175 bytes each: within DefaultMaxBytes)
	DefaultMaxTotalSize = 1 << 40   // 1 TiB of view and blobs
)

// DecodeOptions configures Decode. The zero value, like a nil
// *DecodeOptions, applies the default caps and does not verify signatures.
type DecodeOptions struct {
	// MaxBytes caps the size of the manifest JSON; zero or less means
	// DefaultMaxBytes.
	MaxBytes int64
	// MaxEntries caps the number of blob entries; zero or less means
	// DefaultMaxEntries.
	MaxEntries int
	// MaxTotalSize caps TotalSize, the bytes a restore downloads; zero or
	// less means DefaultMaxTotalSize.
	MaxTotalSize int64
	// HMACKey, if not empty, requires a signature made with it (see
	// Manifest.Sign): an unsigned manifest, or one signed with another key
	// or over other content, is refused.
	HMACKey []byte
}

// withDefaults returns a copy of o, which may be nil, with defaults for
// its zero caps.
func (o *DecodeOptions) withDefaults() DecodeOptions {
	var r DecodeOptions
	if o != nil {
		r = *o
	}
	if r.MaxBytes <= 0 {
		r.MaxBytes = DefaultMaxBytes
	}
	if r.MaxEntries <= 0 {
		r.MaxEntries = DefaultMaxEntries
	}
	if r.MaxTotalSize <= 0 {
		r.MaxTotalSize = DefaultMaxTotalSize
	}
	return r
}

// Decode parses and validates the JSON form of a manifest; opts may be nil.
// It checks the caps of opts, the length of data before parsing it; parses
// strictly (exact field names, each at most once, no nulls, no unknown
// fields, no trailing data, UTF-8 only); checks the format, every field
// and entry as Validate does, and that the recorded id is the digest of
// the content, so a tampered manifest is rejected. If opts has an HMACKey
// it requires a valid signature under it.
//
// A manifest that fails is reported by a *ValidationError naming the field
// and, for an entry, its index and key, which matches core.ErrCorrupt.
func Decode(data []byte, opts *DecodeOptions) (*Manifest, error) {
	o := opts.withDefaults()
	if int64(len(data)) > o.MaxBytes {
		return nil, invalid("", "%d bytes exceed the limit of %d (DecodeOptions.MaxBytes)", len(data), o.MaxBytes)
	}
	if len(data) == 0 {
		return nil, invalid("", "empty")
	}
	if !utf8.Valid(data) {
		return nil, invalid("", "not valid UTF-8")
	}
	w, ok := parseWire(data)
	if !ok {
		var err error
		if w, err = decodeWire(data); err != nil {
			return nil, err
		}
	}
	if w.Format != Format {
		return nil, formatError(w.Format)
	}
	if len(w.Blobs) > o.MaxEntries {
		return nil, invalid("blobs", "%d entries exceed the limit of %d (DecodeOptions.MaxEntries)", len(w.Blobs), o.MaxEntries)
	}
	m, err := w.manifest()
	if err != nil {
		return nil, err
	}
	mac, err := m.validate(o.HMACKey)
	if err != nil {
		return nil, err
	}
	if err := m.checkTotalSize(o.MaxTotalSize); err != nil {
		return nil, err
	}
	if len(o.HMACKey) > 0 {
		if err := m.verify(mac); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// decodeWire decodes data, valid UTF-8, with encoding/json: the slow
// path, which accepts what parseWire does and more, and says what is wrong
// with what neither accepts.
func decodeWire(data []byte) (*wireManifest, error) {
	var w wireManifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		var peek struct{ Format string }
		if json.Unmarshal(data, &peek) == nil && peek.Format != "" && peek.Format != Format {
			return nil, formatError(peek.Format)
		}
		return nil, invalid("", "%w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, invalid("", "trailing data after the manifest at byte %d", dec.InputOffset())
	}
	if w.Format != Format {
		return nil, formatError(w.Format)
	}
	if err := checkMembers(data); err != nil {
		return nil, err
	}
	return &w, nil
}

// manifest converts w to a Manifest, decoding the creation time and keys.
func (w *wireManifest) manifest() (*Manifest, error) {
	created, err := time.Parse(time.RFC3339, w.Created)
	if err != nil {
		return nil, invalid("created", "%q is not an RFC 3339 time", w.Created)
	}
	m := &Manifest{
		Format:          w.Format,
		ID:              w.ID,
		Created:         created.UTC(),
		Producer:        w.Producer,
		ProducerVersion: w.ProducerVersion,
		Service:         w.Service,
		Account:         w.Account,
		Region:          w.Region,
		View:            Object(w.View),
		Signature:       w.Signature,
	}
	if len(w.Blobs) > 0 {
		m.Blobs = make([]Entry, len(w.Blobs))
	}
	for i := range w.Blobs {
		e := &w.Blobs[i]
		key, err := e.key(i)
		if err != nil {
			return nil, err
		}
		m.Blobs[i] = Entry{Key: key, Digest: e.Digest, Size: e.Size}
	}
	return m, nil
}

// key returns the key of e, entry i, from exactly one of its key fields.
func (e *wireEntry) key(i int) (string, error) {
	switch {
	case e.Key != nil && e.KeyBase64 != nil:
		return "", invalidEntry(i, *e.Key, "key", `%q is given both as "key" and as "key_base64"; want exactly one`, *e.Key)
	case e.Key != nil:
		return *e.Key, nil
	case e.KeyBase64 == nil:
		return "", invalidEntry(i, "", "key", `missing: want exactly one of "key" and "key_base64"`)
	}
	b, err := base64.StdEncoding.DecodeString(*e.KeyBase64)
	switch {
	case err != nil || base64.StdEncoding.EncodeToString(b) != *e.KeyBase64:
		return "", invalidEntry(i, "", "key", "key_base64 %q is not canonical standard base64 with padding", *e.KeyBase64)
	case utf8.Valid(b):
		return "", invalidEntry(i, string(b), "key", `key_base64 %q holds %q, which is valid UTF-8: write it as "key"`, *e.KeyBase64, b)
	}
	return string(b), nil
}

// The bits that number the field names of v1's JSON objects.
const (
	bitFormat uint16 = 1 << iota
	bitID
	bitCreated
	bitProducer
	bitProducerVersion
	bitService
	bitAccount
	bitRegion
	bitView
	bitBlobs
	bitSignature
	bitKey
	bitKeyBase64
	bitDigest
	bitSize
)

// memberBits numbers the field names of v1's JSON objects.
var memberBits = map[string]uint16{
	"format": bitFormat, "id": bitID, "created": bitCreated, "producer": bitProducer,
	"producer_version": bitProducerVersion, "service": bitService, "account": bitAccount,
	"region": bitRegion, "view": bitView, "blobs": bitBlobs, "signature": bitSignature,
	"key": bitKey, "key_base64": bitKeyBase64, "digest": bitDigest, "size": bitSize,
}

// checkMembers rejects what encoding/json accepts in data, a JSON text
// that decoded into a wireManifest without unknown fields, but v1 does
// not: a field name spelled other than exactly (encoding/json unescapes
// names and matches them case-insensitively), a field given twice in one
// object (encoding/json keeps the last), and null.
func checkMembers(data []byte) error {
	var open []uint16 // the fields seen in each enclosing object
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '{':
			open = append(open, 0)
		case '}':
			open = open[:len(open)-1]
		case 'n':
			return invalid("", "null at byte %d: no v1 field may be null", i)
		case '"':
			start := i
			for i++; i < len(data) && data[i] != '"'; i++ {
				if data[i] == '\\' {
					i++
				}
			}
			j := i + 1
			for j < len(data) && (data[j] == ' ' || data[j] == '\t' || data[j] == '\n' || data[j] == '\r') {
				j++
			}
			if j == len(data) || data[j] != ':' || len(open) == 0 {
				continue // a string value
			}
			name := data[start+1 : i]
			bit := memberBits[string(name)]
			if bit == 0 {
				return invalid("", "field %q at byte %d: field names are case-sensitive and unescaped", name, start)
			}
			if open[len(open)-1]&bit != 0 {
				return invalid("", "field %q at byte %d is repeated", name, start)
			}
			open[len(open)-1] |= bit
			i = j
		}
	}
	return nil
}
