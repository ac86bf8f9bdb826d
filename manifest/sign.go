package manifest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
)

const signaturePrefix = "hmac-sha256:"

// Sign validates m and sets m.Signature to "hmac-sha256:<hex>", the
// HMAC-SHA256 under key of m's signed bytes (see [Manifest.SignedBytes]):
// everything a reader acts on, the creation time (which decides which
// snapshot is the latest) and the producer included. Sign fails if key is
// empty.
func (m *Manifest) Sign(key []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("manifest: sign: empty HMAC key: %w", core.ErrInvalid)
	}
	mac, err := m.validate(key)
	if err != nil {
		return err
	}
	m.Signature = signaturePrefix + hex.EncodeToString(mac)
	return nil
}

// VerifySignature reports whether m is valid and carries a signature made
// by Sign with key over its present content. It compares in constant time.
// An unsigned manifest, a malformed signature or one made with another key
// or over other content is a *ValidationError with Field "signature"; the
// message never shows the signature. VerifySignature fails if key is empty.
func (m *Manifest) VerifySignature(key []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("manifest: verify signature: empty HMAC key: %w", core.ErrInvalid)
	}
	mac, err := m.validate(key)
	if err != nil {
		return err
	}
	return m.verify(mac)
}

// verify is VerifySignature for a valid m whose signed bytes have the
// HMAC mac under the key.
func (m *Manifest) verify(mac []byte) error {
	if m.Signature == "" {
		return invalid("signature", "missing: the manifest is not signed, and a signing key is configured to require signatures")
	}
	got, err := hex.DecodeString(strings.TrimPrefix(m.Signature, signaturePrefix))
	if err != nil || !IsSignature(m.Signature) || !hmac.Equal(got, mac) {
		return invalid("signature", "does not match the content under the configured key: the manifest was modified or signed with another key")
	}
	return nil
}

// SignedBytes returns the bytes a signature covers: the canonical bytes
// (see [Manifest.Canonical]) followed by a compact JSON object of the
// fields the id leaves out, in this order: id, created (RFC 3339 in UTC,
// with the fraction of a second Encode writes), producer and
// producer_version. Only the signature itself is left out. It fails as
// Canonical does.
func (m *Manifest) SignedBytes() ([]byte, error) {
	c, err := m.Canonical()
	if err != nil {
		return nil, err
	}
	return m.appendSignedFields(c), nil
}

// appendSignedFields appends to b what a signature covers after the
// canonical bytes: the fields the id leaves out but the signature.
func (m *Manifest) appendSignedFields(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, string(m.ID))
	b = append(b, `,"created":`...)
	b = appendString(b, m.Created.UTC().Format(time.RFC3339Nano))
	b = append(b, `,"producer":`...)
	b = appendString(b, m.Producer)
	b = append(b, `,"producer_version":`...)
	b = appendString(b, m.ProducerVersion)
	return append(b, '}')
}

// HMAC returns the signature of msg under key as statebucket writes it in
// manifests and tags: "hmac-sha256:" and the HMAC-SHA256, in lowercase hex.
func HMAC(key, msg []byte) string {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return signaturePrefix + hex.EncodeToString(h.Sum(nil))
}

// CheckHMAC reports, in constant time, whether sig is the signature of msg
// under key, as HMAC writes it.
func CheckHMAC(key, msg []byte, sig string) bool {
	got, err := hex.DecodeString(strings.TrimPrefix(sig, signaturePrefix))
	if err != nil || !IsSignature(sig) {
		return false
	}
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return hmac.Equal(got, h.Sum(nil))
}

// IsSignature reports whether s has the form of a signature, as HMAC
// writes it: "hmac-sha256:" and 64 lowercase hex digits.
func IsSignature(s string) bool {
	h, ok := strings.CutPrefix(s, signaturePrefix)
	return ok && digest.IsHex(h)
}
