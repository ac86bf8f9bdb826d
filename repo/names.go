package repo

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
)

// The folders and files of a repository. No other package knows them.
const (
	blobsPrefix     = "blobs/sha256/"
	snapshotsPrefix = "snapshots/"
	tagsPrefix      = "tags/"
	locksPrefix     = "locks/"
	headsPrefix     = "heads/"
	viewFile        = "/view.json"
	manifestFile    = "/manifest.json"
	jsonExt         = ".json"
)

// Limits of names and refs.
const (
	// MaxTagLength is the longest tag name accepted, in bytes.
	MaxTagLength = 128
	// MinPrefixLength is the fewest hex digits of a snapshot id that a
	// ref may give to name the snapshot.
	MinPrefixLength = 4
)

// Latest is the ref naming the newest snapshot (of a service, account and
// region, where the caller gives them). It is reserved: no tag has that
// name, in any case.
const Latest = "latest"

// BlobName returns the name of the blob whose digest is d, a valid
// digest: blobs/sha256/<first 2 hex digits>/<64 hex digits>.
func BlobName(d digest.Digest) string {
	h := d.Hex()
	return blobsPrefix + h[:min(2, len(h))] + "/" + h
}

// ParseBlobName returns the digest of the blob named name, and whether
// name is a blob's name.
func ParseBlobName(name string) (digest.Digest, bool) {
	rest, ok := strings.CutPrefix(name, blobsPrefix)
	if !ok || len(rest) != 3+digest.HexLen || rest[2] != '/' || rest[:2] != rest[3:5] {
		return "", false
	}
	d, err := digest.FromHex(rest[3:])
	return d, err == nil
}

// ViewName returns the name of the JSON view of the snapshot whose id is
// id: snapshots/<64 hex digits>/view.json.
func ViewName(id digest.Digest) string { return snapshotsPrefix + id.Hex() + viewFile }

// ParseViewName returns the id of the snapshot whose view is named name,
// and whether name is a view's name.
func ParseViewName(name string) (digest.Digest, bool) { return parseSnapshotName(name, viewFile) }

// ManifestName returns the name of the manifest of the snapshot whose id
// is id: snapshots/<64 hex digits>/manifest.json. A snapshot exists once
// this object does.
func ManifestName(id digest.Digest) string { return snapshotsPrefix + id.Hex() + manifestFile }

// ParseManifestName returns the id of the snapshot whose manifest is
// named name, and whether name is a manifest's name.
func ParseManifestName(name string) (digest.Digest, bool) {
	return parseSnapshotName(name, manifestFile)
}

func parseSnapshotName(name, file string) (digest.Digest, bool) {
	rest, ok := strings.CutPrefix(name, snapshotsPrefix)
	if !ok {
		return "", false
	}
	h, ok := strings.CutSuffix(rest, file)
	if !ok {
		return "", false
	}
	d, err := digest.FromHex(h)
	return d, err == nil
}

// TagName returns the name of the object holding the tag tag, a valid tag
// name (see [ValidTag]): tags/<tag>.json.
func TagName(tag string) string { return tagsPrefix + tag + jsonExt }

// ParseTagName returns the tag held by the object named name, and whether
// name is a tag's: tags/<tag>.json with a valid tag name.
func ParseTagName(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, tagsPrefix)
	if !ok {
		return "", false
	}
	tag, ok := strings.CutSuffix(rest, jsonExt)
	return tag, ok && ValidTag(tag) == nil
}

// ValidTag reports whether tag may name a tag: 1 to MaxTagLength bytes of
// ASCII letters, digits, '.', '_' and '-', not starting with '.' or '-',
// not ending with '.', not containing "..", and such that no ref could
// read it as anything else: neither 4 to 64 lowercase hex digits (with or
// without the digest's algorithm prefix, see digest.CutPrefix), which a
// ref reads as a snapshot id or a prefix of one, nor the reserved word "latest" in any case. A name that is not
// valid yields an error matching core.ErrInvalid that says why.
func ValidTag(tag string) error {
	why := checkTag(tag)
	if why == "" {
		return nil
	}
	return fmt.Errorf("repo: tag %q: %s: %w", tag, why, core.ErrInvalid)
}

// checkTag says what is wrong with tag, or returns "".
func checkTag(tag string) string {
	if h, ok := digest.CutPrefix(tag); ok && len(h) >= MinPrefixLength {
		return fmt.Sprintf("a ref would read it as a snapshot id (%d to %d lowercase hex digits name a snapshot by its id); add a letter outside a-f", MinPrefixLength, digest.HexLen)
	}
	if strings.EqualFold(tag, Latest) {
		return fmt.Sprintf("%q is reserved: as a ref it names the newest snapshot", Latest)
	}
	if tag == "" || len(tag) > MaxTagLength {
		return fmt.Sprintf("length must be 1 to %d bytes", MaxTagLength)
	}
	if tag[0] == '.' || tag[0] == '-' {
		return fmt.Sprintf("must not start with %q", tag[0])
	}
	if strings.HasSuffix(tag, ".") || strings.Contains(tag, "..") {
		return `must not end with '.' or contain ".."`
	}
	for i := 0; i < len(tag); i++ {
		if c := tag[i]; !isNameByte(c) {
			return fmt.Sprintf("byte %q not allowed (letters, digits, '.', '_', '-')", c)
		}
	}
	return ""
}

// isNameByte reports whether c may appear in a tag or lock id.
func isNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// LockName returns the name of the object holding the lock whose id is
// id: locks/<id>.json.
func LockName(id string) string { return locksPrefix + id + jsonExt }

// ParseLockName returns the id of the lock held by the object named name,
// and whether name is a lock's: locks/<kind>-<token>.json.
func ParseLockName(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, locksPrefix)
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(rest, jsonExt)
	if !ok {
		return "", false
	}
	_, ok = lockKindOf(id)
	return id, ok
}

// HeadName returns the name of the object holding the head of the scope
// (service, account, region): heads/<64 hex digits>.json, the hex being
// the SHA-256 of the three joined by NUL bytes, so that no name a service,
// account or region may hold reaches an object's name.
func HeadName(service, account, region string) string {
	sum := sha256.Sum256([]byte(service + "\x00" + account + "\x00" + region))
	return headsPrefix + hex.EncodeToString(sum[:]) + jsonExt
}

// ParseHeadName returns the hex digits naming the scope of the head held
// by the object named name, and whether name is a head's:
// heads/<64 lowercase hex digits>.json.
func ParseHeadName(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, headsPrefix)
	if !ok {
		return "", false
	}
	h, ok := strings.CutSuffix(rest, jsonExt)
	return h, ok && digest.IsHex(h)
}
