package manifest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
)

const signaturePrefix = "hmac-sha256:"

// Sign validates m and sets m.Signature to "hmac-sha256:<hex>", the
// HMAC-SHA256 under key of m's canonical bytes followed by its id. The
// signature covers what the id covers; the creation time and the producer
// remain unsigned. Sign fails if key is empty.
func (m *Manifest) Sign(key []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("manifest: sign: empty HMAC key: %w", core.ErrInvalid)
	}
	c, err := m.validate()
	if err != nil {
		return err
	}
	m.Signature = signaturePrefix + hex.EncodeToString(m.mac(c, key))
	return nil
}

// VerifySignature reports whether m is valid and carries a signature made
// by Sign with key. It compares in constant time. An unsigned manifest, a
// malformed signature or one made with another key or over other content
// is a *ValidationError with Field "signature"; the message never shows
// the signature. VerifySignature fails if key is empty.
func (m *Manifest) VerifySignature(key []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("manifest: verify signature: empty HMAC key: %w", core.ErrInvalid)
	}
	c, err := m.validate()
	if err != nil {
		return err
	}
	return m.verify(c, key)
}

// verify is VerifySignature for a valid m whose canonical bytes are c.
func (m *Manifest) verify(c, key []byte) error {
	if m.Signature == "" {
		return invalid("signature", "missing: the manifest is not signed")
	}
	got, _ := hex.DecodeString(strings.TrimPrefix(m.Signature, signaturePrefix)) // validate checked the form
	if !hmac.Equal(got, m.mac(c, key)) {
		return invalid("signature", "does not match the content under the given key: the manifest was modified or signed with another key")
	}
	return nil
}

// mac returns the HMAC-SHA256 under key of c, m's canonical bytes,
// followed by m's id.
func (m *Manifest) mac(c, key []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(c)
	h.Write([]byte(m.ID))
	return h.Sum(nil)
}

// isSignature reports whether s is "hmac-sha256:" and 64 lowercase hex
// digits.
func isSignature(s string) bool {
	h, ok := strings.CutPrefix(s, signaturePrefix)
	return ok && digest.IsHex(h)
}
