package store

import (
	"fmt"
	"strings"

	"github.com/statebucket/statebucket/core"
)

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

// KeyPrefix returns prefix as the folder a bucket driver puts its objects
// under: without leading or trailing '/', then followed by one '/' unless
// it is empty.
func KeyPrefix(prefix string) string {
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return prefix
}
