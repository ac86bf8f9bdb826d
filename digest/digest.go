// Package digest is the one place that parses and formats the SHA-256
// digests statebucket names content by: blobs, views and snapshot ids,
// written "sha256:<64 lowercase hex digits>".
//
// A [Digest] is a string, so it encodes to JSON and compares with == as a
// string does. Nothing else in statebucket adds or cuts the "sha256:"
// prefix or checks hex digits by hand.
package digest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/statebucket/statebucket/core"
)

// Digest is a SHA-256 digest in its written form, "sha256:" followed by 64
// lowercase hex digits. The zero value is the empty string, which is not a
// valid digest. Values built by [Parse], [FromHex], [FromSum] and
// [FromBytes] are valid; a Digest converted from any other string may not
// be: check it with [Digest.IsValid].
type Digest string

const (
	// prefix starts every digest: the name of the algorithm and a colon.
	prefix = "sha256:"
	// HexLen is the number of hex digits of a digest.
	HexLen = 2 * sha256.Size
	// ShortLen is the number of hex digits of a short id (see
	// [Digest.Short]).
	ShortLen = 12
)

// Parse returns s as a Digest if it is "sha256:" followed by 64 lowercase
// hex digits; otherwise an error matching core.ErrInvalid that quotes s.
// Callers that decode stored data report such a failure as corrupt data
// instead.
func Parse(s string) (Digest, error) {
	if d := Digest(s); d.IsValid() {
		return d, nil
	}
	return "", fmt.Errorf("digest: %q is not %s<%d lowercase hex digits>: %w", s, prefix, HexLen, core.ErrInvalid)
}

// FromHex returns the Digest whose hex digits are h, 64 lowercase hex
// digits; otherwise an error matching core.ErrInvalid.
func FromHex(h string) (Digest, error) {
	if !IsHex(h) {
		return "", fmt.Errorf("digest: %q is not %d lowercase hex digits: %w", h, HexLen, core.ErrInvalid)
	}
	return Digest(prefix + h), nil
}

// FromSum returns the Digest of a raw SHA-256 sum, such as the result of
// sha256.Sum256 or of a sha256 hash's Sum. It panics if sum is not 32
// bytes long: that is a programming error, not bad input.
func FromSum(sum []byte) Digest {
	if len(sum) != sha256.Size {
		panic(fmt.Sprintf("digest: FromSum of %d bytes, want %d", len(sum), sha256.Size))
	}
	return Digest(prefix + hex.EncodeToString(sum))
}

// FromBytes returns the Digest of data.
func FromBytes(data []byte) Digest {
	sum := sha256.Sum256(data)
	return FromSum(sum[:])
}

// IsValid reports whether d is "sha256:" followed by 64 lowercase hex
// digits.
func (d Digest) IsValid() bool {
	h, ok := strings.CutPrefix(string(d), prefix)
	return ok && IsHex(h)
}

// Hex returns the 64 hex digits of d, without "sha256:"; for a d that is
// not valid, whatever follows the prefix, or "" if d lacks it.
func (d Digest) Hex() string {
	h, ok := strings.CutPrefix(string(d), prefix)
	if !ok {
		return ""
	}
	return h
}

// Short returns the first ShortLen hex digits of d: the short id that
// listings print and refs accept as a prefix.
func (d Digest) Short() string {
	h := d.Hex()
	return h[:min(len(h), ShortLen)]
}

// Sum returns the raw 32-byte sum of d, or nil if d is not valid.
func (d Digest) Sum() []byte {
	if !d.IsValid() {
		return nil
	}
	sum, _ := hex.DecodeString(d.Hex())
	return sum
}

// String returns d as written: "sha256:<hex>".
func (d Digest) String() string { return string(d) }

// IsHex reports whether s is 64 lowercase hex digits: the hex of a digest.
func IsHex(s string) bool { return len(s) == HexLen && isLowerHex(s) }

// IsHexPrefix reports whether s is 1 to 64 lowercase hex digits: the start
// of some digest's hex.
func IsHexPrefix(s string) bool { return len(s) >= 1 && len(s) <= HexLen && isLowerHex(s) }

// CutPrefix returns the hex digits of s when s is a digest or the start of
// one, written with or without "sha256:" (1 to 64 lowercase hex digits
// after the optional prefix), and whether it is. Refs, which name a
// snapshot by its id or a prefix of it, are read this way.
func CutPrefix(s string) (string, bool) {
	h := strings.TrimPrefix(s, prefix)
	return h, IsHexPrefix(h)
}

// notLowerHex is 1 at every byte that is not a lowercase hex digit.
var notLowerHex = func() (t [256]uint8) {
	for c := range t {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			t[c] = 1
		}
	}
	return t
}()

// isLowerHex reports whether s holds lowercase hex digits only. It looks
// every byte up without branching: digests are random, and a branch per
// byte mispredicts often enough to dominate validating a large manifest.
func isLowerHex(s string) bool {
	var bad uint8
	for i := 0; i < len(s); i++ {
		bad |= notLowerHex[s[i]]
	}
	return bad == 0
}
