package store

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/statebucket/statebucket/core"
)

// The top-level folders of a repository.
const (
	BlobsPrefix     = "blobs/sha256/"
	SnapshotsPrefix = "snapshots/"
	TagsPrefix      = "tags/"
)

// MaxTagLength is the longest tag name accepted.
const MaxTagLength = 128

// BlobName returns the name of the blob whose SHA-256 digest is hexDigest
// (64 lowercase hex digits): blobs/sha256/ab/abcdef….
func BlobName(hexDigest string) string {
	return BlobsPrefix + hexDigest[:2] + "/" + hexDigest
}

// ViewName returns the name of the JSON view of snapshot hexID.
func ViewName(hexID string) string { return SnapshotsPrefix + hexID + "/view.json" }

// ManifestName returns the name of the manifest of snapshot hexID.
func ManifestName(hexID string) string { return SnapshotsPrefix + hexID + "/manifest.json" }

// TagName returns the name of the object holding tag.
func TagName(tag string) string { return TagsPrefix + tag + ".json" }

// IsHexDigest reports whether s is 64 lowercase hex digits.
func IsHexDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidTag reports whether tag may name a tag: 1 to MaxTagLength bytes of
// ASCII letters, digits, '.', '_' and '-', not starting with '.' or '-',
// not ending with '.', and not containing "..", so that no tag's name
// holds "..".
func ValidTag(tag string) error {
	if tag == "" || len(tag) > MaxTagLength {
		return fmt.Errorf("tag %q: length must be 1 to %d bytes: %w", tag, MaxTagLength, core.ErrInvalid)
	}
	if tag[0] == '.' || tag[0] == '-' {
		return fmt.Errorf("tag %q: must not start with %q: %w", tag, tag[0], core.ErrInvalid)
	}
	if strings.HasSuffix(tag, ".") || strings.Contains(tag, "..") {
		return fmt.Errorf("tag %q: must not end with '.' or contain \"..\": %w", tag, core.ErrInvalid)
	}
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("tag %q: byte %q not allowed (letters, digits, '.', '_', '-'): %w", tag, c, core.ErrInvalid)
		}
	}
	return nil
}

// Limits of object names, in bytes.
const (
	// MaxNameLength is the longest object name accepted: the limit of S3,
	// GCS and Azure object keys.
	MaxNameLength = 1024
	// MaxSegmentLength is the longest segment of a name accepted: the
	// limit of a file name on common file systems.
	MaxSegmentLength = 255
)

// ValidName reports whether name is a safe object name, one every driver
// stores as it is, without escaping: 1 to MaxNameLength bytes of
// '/'-separated segments, each of 1 to MaxSegmentLength ASCII letters,
// digits, '.', '_' and '-', none starting with '.'. So no name is
// absolute, ends with '/', holds "." or ".." as a segment, or a NUL byte,
// a backslash or a space; and segments starting with '.' are left to
// drivers, for their own files (filestore's ".tmp-…" temporary files)
// and those of the systems they run on (".DS_Store"). Every other name is
// rejected with an error matching core.ErrInvalidPath.
//
// The object layer gives names no other meaning: which names a
// repository uses is the repository layer's business.
func ValidName(name string) error {
	if msg := checkName(name); msg != "" {
		return fmt.Errorf("%q is not a valid object name: %s: %w", name, msg, core.ErrInvalidPath)
	}
	return nil
}

// ValidPrefix reports whether prefix may be listed: empty, or the start
// of some valid name (see [ValidName]), which may end with '/' or in the
// middle of a segment. Every other prefix is rejected with an error
// matching core.ErrInvalidPath.
func ValidPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if msg := checkName(strings.TrimSuffix(prefix, "/")); msg != "" {
		return fmt.Errorf("list prefix %q: %s: %w", prefix, msg, core.ErrInvalidPath)
	}
	return nil
}

// checkName says what is wrong with name, or returns "".
func checkName(name string) string {
	if name == "" || len(name) > MaxNameLength {
		return fmt.Sprintf("length must be 1 to %d bytes", MaxNameLength)
	}
	segStart := 0
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '/' {
			switch {
			case i == segStart:
				return "empty segment (leading, trailing or doubled '/')"
			case name[segStart] == '.':
				return "a segment starts with '.'"
			case i-segStart > MaxSegmentLength:
				return fmt.Sprintf("a segment is longer than %d bytes", MaxSegmentLength)
			}
			segStart = i + 1
			continue
		}
		if c := name[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Sprintf("byte %q not allowed (letters, digits, '.', '_', '-', and '/' between segments)", c)
		}
	}
	return ""
}

// HexFromDigest returns the hex part of a "sha256:<hex>" digest string, or
// an error matching core.ErrInvalid.
func HexFromDigest(digest string) (string, error) {
	h, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || !IsHexDigest(h) {
		return "", fmt.Errorf("digest %q: want sha256:<64 lowercase hex digits>: %w", digest, core.ErrInvalid)
	}
	return h, nil
}

// Digest returns the "sha256:<hex>" form of a raw SHA-256 sum.
func Digest(sum []byte) string { return "sha256:" + hex.EncodeToString(sum) }
