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

import (
	"errors"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/statebucket/statebucket/digest"
)

// Format is the value of the format field of a v1 manifest.
const Format = "statebucket.manifest.v1"

// producer is the Producer New records.
const producer = "statebucket"

// Version is the statebucket version New records as ProducerVersion.
// Builds may set it with -ldflags "-X github.com/statebucket/statebucket/manifest.Version=…".
var Version = "0.1.0"

// Manifest is a decoded, validated manifest.
//
// A Manifest is a plain value: its methods do not modify it, except Sign,
// so any number of goroutines may read one concurrently.
type Manifest struct {
	Format          string        // always Format
	ID              digest.Digest // derived from the content
	Created         time.Time     // UTC; not part of the id
	Producer        string        // e.g. "statebucket"; not part of the id
	ProducerVersion string        // not part of the id
	Service         string
	Account         string
	Region          string
	View            Object  // the JSON view's digest and size
	Blobs           []Entry // sorted by key bytes, keys unique
	Signature       string  // "hmac-sha256:<hex>" or empty; not part of the id
}

// Object is the digest and size of stored bytes.
type Object struct {
	Digest digest.Digest
	Size   int64
}

// Entry is one blob of a snapshot.
type Entry struct {
	Key    string // arbitrary bytes; may be invalid UTF-8
	Digest digest.Digest
	Size   int64
}

// New returns the manifest of a snapshot of service in account and region
// whose view is view and whose blobs are blobs, in any order. It copies and
// sorts blobs by key bytes, records the current time (UTC, truncated to the
// millisecond), the producer "statebucket" and Version, and computes the
// id. A duplicate key, a malformed digest or a negative size is a
// *ValidationError naming the entry, which matches core.ErrInvalid: the
// arguments are at fault.
func New(service, account, region string, view Object, blobs []Entry) (*Manifest, error) {
	sorted := slices.Clone(blobs)
	slices.SortStableFunc(sorted, func(a, b Entry) int { return strings.Compare(a.Key, b.Key) })
	m := &Manifest{
		Format:          Format,
		Created:         time.Now().UTC().Truncate(time.Millisecond),
		Producer:        producer,
		ProducerVersion: Version,
		Service:         service,
		Account:         account,
		Region:          region,
		View:            view,
		Blobs:           sorted,
	}
	if err := m.validateContent(); err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			ve.args = true
		}
		return nil, err
	}
	m.ID = m.contentID()
	return m, nil
}

// TotalSize returns the number of bytes a restore downloads besides the
// manifest: the view's size plus every blob's size. It is the quantity
// DecodeOptions.MaxTotalSize caps. On a manifest that does not validate it
// saturates at math.MaxInt64 instead of overflowing.
func (m *Manifest) TotalSize() int64 {
	total, _ := addSize(0, m.View.Size)
	for _, e := range m.Blobs {
		total, _ = addSize(total, e.Size)
	}
	return total
}

// Index returns the index in m.Blobs of the entry for key, or -1 if there
// is none. It relies on m.Blobs being sorted, as in any valid manifest.
func (m *Manifest) Index(key string) int {
	i, ok := slices.BinarySearchFunc(m.Blobs, key, func(e Entry, k string) int { return strings.Compare(e.Key, k) })
	if !ok {
		return -1
	}
	return i
}

// Lookup returns the entry for key and whether there is one.
func (m *Manifest) Lookup(key string) (Entry, bool) {
	i := m.Index(key)
	if i < 0 {
		return Entry{}, false
	}
	return m.Blobs[i], true
}

// Equal reports whether m and o have the same id-relevant content: format,
// service, account, region, view and blobs. The id, creation time, producer
// and signature are not compared. Two nil manifests are equal.
func (m *Manifest) Equal(o *Manifest) bool {
	if m == nil || o == nil {
		return m == o
	}
	return m.Format == o.Format &&
		m.Service == o.Service &&
		m.Account == o.Account &&
		m.Region == o.Region &&
		m.View == o.View &&
		slices.Equal(m.Blobs, o.Blobs)
}

// addSize returns total+n, saturated at the largest int64, and whether it
// did not saturate. Both arguments must be non-negative to be meaningful.
func addSize(total, n int64) (int64, bool) {
	if n > 0 && total > math.MaxInt64-n {
		return math.MaxInt64, false
	}
	return total + n, true
}
