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

// ValidName reports whether name is one of the repository's name shapes:
// a blob, a snapshot's view or manifest, or a tag. Every other name,
// including any with "..", a leading '/', a NUL byte or a backslash, is
// rejected with an error matching core.ErrInvalidPath.
func ValidName(name string) error {
	bad := fmt.Errorf("%q is not a repository name: %w", name, core.ErrInvalidPath)
	switch {
	case strings.HasPrefix(name, BlobsPrefix):
		rest := name[len(BlobsPrefix):]
		fan, hexDigest, ok := strings.Cut(rest, "/")
		if !ok || !IsHexDigest(hexDigest) || fan != hexDigest[:2] {
			return bad
		}
		return nil
	case strings.HasPrefix(name, SnapshotsPrefix):
		rest := name[len(SnapshotsPrefix):]
		id, file, ok := strings.Cut(rest, "/")
		if !ok || !IsHexDigest(id) || (file != "view.json" && file != "manifest.json") {
			return bad
		}
		return nil
	case strings.HasPrefix(name, TagsPrefix):
		tag, ok := strings.CutSuffix(name[len(TagsPrefix):], ".json")
		if !ok || ValidTag(tag) != nil {
			return bad
		}
		return nil
	}
	return bad
}

// ValidPrefix reports whether prefix may be listed: empty, or a prefix of
// some valid repository name made only of the characters such names use.
func ValidPrefix(prefix string) error {
	for i := 0; i < len(prefix); i++ {
		c := prefix[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || c == '/') {
			return fmt.Errorf("list prefix %q: %w", prefix, core.ErrInvalidPath)
		}
	}
	if strings.HasPrefix(prefix, "/") || strings.Contains(prefix, "..") || strings.Contains(prefix, "//") {
		return fmt.Errorf("list prefix %q: %w", prefix, core.ErrInvalidPath)
	}
	return nil
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
