package manifest

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
)

// ValidationError reports a manifest that does not satisfy the v1 format:
// malformed JSON, an unknown format, a bad field or entry, a cap exceeded,
// an id that does not match the content (a tampered or corrupted
// manifest), or a bad or missing signature. It unwraps to its cause.
//
// A ValidationError is bad data and matches core.ErrCorrupt with
// errors.Is, except one returned by [New], which validates its caller's
// arguments and matches core.ErrInvalid instead.
type ValidationError struct {
	// Field is the JSON field at fault, such as "id", "view.digest",
	// "digest" or "key"; empty when the fault is in the document as a
	// whole.
	Field string
	// Index is the index of the blob entry at fault, or -1 if none.
	Index int
	// Key is the entry's key when Index >= 0; empty when the key itself
	// could not be decoded.
	Key string
	// Err says what is wrong.
	Err error

	args bool // from New: bad arguments rather than bad data
}

// Error returns a message such as
//
//	manifest: blobs[3] (key "b/k\x00v1"): digest: "sha256:AB" is not sha256:<64 lowercase hex digits>
//
// An error about an entry's key (Field "key") quotes the key in the cause
// instead.
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("manifest: ")
	if e.Index >= 0 {
		fmt.Fprintf(&b, "blobs[%d]", e.Index)
		if e.Field != "key" {
			fmt.Fprintf(&b, " (key %q)", e.Key)
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("invalid")
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *ValidationError) Unwrap() error { return e.Err }

// Is reports whether target is core.ErrCorrupt, or core.ErrInvalid for an
// error returned by New.
func (e *ValidationError) Is(target error) bool {
	if e.args {
		return target == core.ErrInvalid
	}
	return target == core.ErrCorrupt
}

// invalid returns a *ValidationError about field of the whole manifest.
func invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Index: -1, Err: fmt.Errorf(format, args...)}
}

// invalidEntry returns a *ValidationError about field of entry i.
func invalidEntry(i int, key, field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Index: i, Key: key, Err: fmt.Errorf(format, args...)}
}

// Validate reports whether m is a valid v1 manifest: every field well
// formed, blobs sorted by key bytes with unique keys, sizes non-negative
// and their total within int64, and the id equal to the digest of the
// content. It does not apply DecodeOptions' caps and does not verify the
// signature. A failure is a *ValidationError.
func (m *Manifest) Validate() error {
	_, err := m.validate(nil)
	return err
}

// validate is Validate. With a key, it also returns the HMAC-SHA256 under
// key of m's signed bytes (see [Manifest.SignedBytes]), computed in the
// same pass over the canonical bytes as the id, which are never held.
func (m *Manifest) validate(key []byte) ([]byte, error) {
	if err := m.validateContent(); err != nil {
		return nil, err
	}
	switch {
	case m.Created.IsZero():
		return nil, invalid("created", "missing")
	case m.Created.Year() < 1 || m.Created.Year() > 9999:
		return nil, invalid("created", "year %d is outside 1 to 9999", m.Created.Year())
	case !utf8.ValidString(m.Producer):
		return nil, invalid("producer", "%q is not valid UTF-8", m.Producer)
	case !utf8.ValidString(m.ProducerVersion):
		return nil, invalid("producer_version", "%q is not valid UTF-8", m.ProducerVersion)
	case m.Signature != "" && !IsSignature(m.Signature):
		// The value is not quoted: signatures are not shown in errors.
		return nil, invalid("signature", "not %s<64 lowercase hex digits>", signaturePrefix)
	case !m.ID.IsValid():
		return nil, invalid("id", "%q is not sha256:<64 lowercase hex digits>", m.ID)
	}
	h := sha256.New()
	var mac hash.Hash
	if len(key) > 0 {
		mac = hmac.New(sha256.New, key)
		m.writeCanonical(io.MultiWriter(h, mac))
	} else {
		m.writeCanonical(h)
	}
	if id := digest.FromSum(h.Sum(nil)); id != m.ID {
		return nil, invalid("id", "recorded %s but the content hashes to %s: the manifest was modified or corrupted after it was made", m.ID, id)
	}
	if mac == nil {
		return nil, nil
	}
	mac.Write(m.appendSignedFields(nil))
	return mac.Sum(nil), nil
}

// validateContent validates what the id covers: format, service, account,
// region, view and blobs.
func (m *Manifest) validateContent() error {
	switch {
	case m == nil:
		return invalid("", "nil manifest")
	case m.Format != Format:
		return formatError(m.Format)
	case m.Service == "":
		return invalid("service", "missing")
	case !utf8.ValidString(m.Service):
		return invalid("service", "%q is not valid UTF-8", m.Service)
	case !utf8.ValidString(m.Account):
		return invalid("account", "%q is not valid UTF-8", m.Account)
	case !utf8.ValidString(m.Region):
		return invalid("region", "%q is not valid UTF-8", m.Region)
	case !m.View.Digest.IsValid():
		return invalid("view.digest", "%q is not sha256:<64 lowercase hex digits>", m.View.Digest)
	case m.View.Size < 0:
		return invalid("view.size", "%d is negative", m.View.Size)
	}
	total := m.View.Size
	for i := range m.Blobs {
		e := &m.Blobs[i]
		if i > 0 {
			switch prev := m.Blobs[i-1].Key; strings.Compare(e.Key, prev) {
			case 0:
				return invalidEntry(i, e.Key, "key", "%q repeats blobs[%d]; keys must be unique", e.Key, i-1)
			case -1:
				return invalidEntry(i, e.Key, "key", "%q sorts before blobs[%d] %q; blobs must be sorted by key bytes", e.Key, i-1, prev)
			}
		}
		if !e.Digest.IsValid() {
			return invalidEntry(i, e.Key, "digest", "%q is not sha256:<64 lowercase hex digits>", e.Digest)
		}
		if e.Size < 0 {
			return invalidEntry(i, e.Key, "size", "%d is negative", e.Size)
		}
		var ok bool
		if total, ok = addSize(total, e.Size); !ok {
			return invalidEntry(i, e.Key, "size", "the total size of view and blobs overflows int64")
		}
	}
	return nil
}

// checkTotalSize reports whether TotalSize of m, whose content is valid,
// is at most limit.
func (m *Manifest) checkTotalSize(limit int64) error {
	const exceeds = "exceeds the limit of %d bytes (DecodeOptions.MaxTotalSize)"
	total := m.View.Size
	if total > limit {
		return invalid("view.size", "%d "+exceeds, total, limit)
	}
	for i, e := range m.Blobs {
		total += e.Size // validateContent checked that this does not overflow
		if total > limit {
			return invalidEntry(i, e.Key, "size", "the total size of the view and blobs up to here, %d, "+exceeds, total, limit)
		}
	}
	return nil
}

// formatError reports a manifest of a format this build does not read.
func formatError(format string) *ValidationError {
	if format == "" {
		return invalid("format", "missing; want %q", Format)
	}
	return invalid("format", "%q is not a format this build reads (it reads %q); a newer statebucket may read it", format, Format)
}
