package core

import (
	"errors"
	"fmt"
)

// Sentinel errors shared by every layer of statebucket. Drivers, engines and
// flows wrap them with the operation and the key or URL, so callers test for
// them with errors.Is.
var (
	// ErrNotFound: the blob, object, snapshot, tag or key does not exist.
	ErrNotFound = errors.New("not found")
	// ErrBucketNotFound: the bucket or directory that should hold a
	// repository does not exist.
	ErrBucketNotFound = errors.New("bucket not found")
	// ErrInvalidPath: a name or key is not acceptable (outside the
	// repository's name shapes, or escaping its root).
	ErrInvalidPath = errors.New("invalid path")
	// ErrExists: a create-only write found the name already taken.
	ErrExists = errors.New("already exists")
	// ErrConflict: the backend refused a write because of a concurrent
	// change (HTTP 409).
	ErrConflict = errors.New("conflict")
	// ErrPermission: the credentials in use may not do this.
	ErrPermission = errors.New("permission denied")
	// ErrInvalid: bad usage. An argument, option, name or URL a caller
	// passed does not satisfy its format or contract, such as an
	// ill-formed repository URL, a bad tag name or an ambiguous id prefix.
	// Data read from a repository that fails its checks is [ErrCorrupt]
	// instead.
	ErrInvalid = errors.New("invalid")
	// ErrCorrupt: bad data. An object stored in a repository (a manifest,
	// a tag, a view) fails decoding or validation: it was damaged,
	// tampered with, or written by something else. Together with
	// [ErrChecksumMismatch] and [ErrSizeMismatch], which report stored
	// bytes that are not the recorded ones, it tells bad data apart from
	// bad usage ([ErrInvalid]).
	ErrCorrupt = errors.New("corrupt")
	// ErrChecksumMismatch: bytes whose SHA-256 digest is not the recorded
	// one. Like [ErrCorrupt], it reports bad data.
	ErrChecksumMismatch = errors.New("checksum mismatch")
	// ErrSizeMismatch: bytes whose length is not the recorded one. Like
	// [ErrCorrupt], it reports bad data.
	ErrSizeMismatch = errors.New("size mismatch")
	// ErrTransient: a failure that may not happen again if the operation
	// is tried again: throttling, a server error, a broken or stalled
	// connection. Drivers wrap such failures with it once their client's
	// own retries are spent; the portable store layer retries them.
	ErrTransient = errors.New("transient failure")
)

// ViewErrorKind says what went wrong with a state view. It mirrors the
// variants of the Rust original's StateViewError.
type ViewErrorKind uint8

// The kinds of [StateViewError].
const (
	// KindSerialize: the view could not be encoded or decoded.
	KindSerialize ViewErrorKind = iota + 1
	// KindInvalid: the view is well-formed but not acceptable to the service.
	KindInvalid
	// KindBlob: a blob the view references could not be exported or imported.
	KindBlob
)

func (k ViewErrorKind) String() string {
	switch k {
	case KindSerialize:
		return "serialize"
	case KindInvalid:
		return "invalid"
	case KindBlob:
		return "blob"
	}
	return fmt.Sprintf("ViewErrorKind(%d)", uint8(k))
}

// StateViewError reports a failure to snapshot or restore a state view.
// It unwraps to its cause, so errors.Is matches, for example,
// [ErrChecksumMismatch] through a service's RestoreWithBlobs. A
// StateViewError of kind KindInvalid also matches [ErrInvalid].
type StateViewError struct {
	Kind    ViewErrorKind
	Service string // the service's name; may be empty
	Key     string // the blob key, for KindBlob; may be empty
	Err     error  // the cause; may be nil
}

// NewViewError returns a *StateViewError of kind for service, wrapping err.
func NewViewError(kind ViewErrorKind, service string, err error) *StateViewError {
	return &StateViewError{Kind: kind, Service: service, Err: err}
}

// NewBlobError returns a *StateViewError of kind KindBlob for key, wrapping
// err.
func NewBlobError(service, key string, err error) *StateViewError {
	return &StateViewError{Kind: KindBlob, Service: service, Key: key, Err: err}
}

func (e *StateViewError) Error() string {
	msg := "state view"
	if e.Service != "" {
		msg = e.Service + ": " + msg
	}
	msg += ": " + e.Kind.String()
	if e.Kind == KindBlob {
		msg += fmt.Sprintf(" %q", e.Key)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the cause.
func (e *StateViewError) Unwrap() error { return e.Err }

// Is reports whether target is [ErrInvalid] and e is of kind KindInvalid.
func (e *StateViewError) Is(target error) bool {
	return target == ErrInvalid && e.Kind == KindInvalid
}
