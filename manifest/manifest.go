// Package manifest defines manifest v1, the commit record of a statebucket
// snapshot: which service, account and region it holds, the digest and size
// of its JSON view, and one entry per blob (key, digest, size).
//
// A manifest is JSON, deterministic and human-readable. Its id is the
// SHA-256 of its canonical content, which leaves out the creation time, the
// producer and the signature, so the same state exported twice yields the
// same id. Decode validates everything and enforces caps before a caller
// downloads anything the manifest names.
package manifest

import "time"

// Format is the value of the format field of a v1 manifest.
const Format = "statebucket.manifest.v1"

// Manifest is a decoded, validated manifest.
type Manifest struct {
	Format          string    // always Format
	ID              string    // "sha256:<64 lowercase hex>", derived from the content
	Created         time.Time // UTC; not part of the id
	Producer        string    // e.g. "statebucket"; not part of the id
	ProducerVersion string    // not part of the id
	Service         string
	Account         string
	Region          string
	View            Object  // the JSON view's digest and size
	Blobs           []Entry // sorted by key bytes, keys unique
	Signature       string  // "hmac-sha256:<hex>" or empty; not part of the id
}

// Object is the digest ("sha256:<hex>") and size of stored bytes.
type Object struct {
	Digest string
	Size   int64
}

// Entry is one blob of a snapshot.
type Entry struct {
	Key    string // arbitrary bytes; may be invalid UTF-8
	Digest string // "sha256:<64 lowercase hex>"
	Size   int64
}
