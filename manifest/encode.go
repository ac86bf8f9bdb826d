package manifest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/statebucket/statebucket/digest"
)

// wireManifest is the JSON form of a Manifest.
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

// Encode validates m and returns its JSON form: deterministic, indented
// by two spaces, with a trailing newline. Keys that are valid UTF-8 are
// written as "key", others as "key_base64" in standard base64, so that no
// key is altered. The creation time is written in RFC 3339 (UTC).
func Encode(m *Manifest) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	w := wireManifest{
		Format:          m.Format,
		ID:              m.ID,
		Created:         m.Created.UTC().Format(time.RFC3339Nano),
		Producer:        m.Producer,
		ProducerVersion: m.ProducerVersion,
		Service:         m.Service,
		Account:         m.Account,
		Region:          m.Region,
		View:            wireObject(m.View),
		Blobs:           make([]wireEntry, len(m.Blobs)),
		Signature:       m.Signature,
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
	if err := enc.Encode(&w); err != nil {
		return nil, fmt.Errorf("manifest: encode %s: %w", m.ID, err)
	}
	return buf.Bytes(), nil
}
