package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/statebucket/statebucket/core"
)

// Driver is the contract a storage backend implements. Names given to a
// driver are always valid object names (see [ValidName]); a driver may
// check them again but never has to escape them. A driver knows nothing
// of what the names mean.
//
// Errors must match the sentinels of package core through errors.Is:
// core.ErrNotFound for a missing object, core.ErrBucketNotFound for a
// missing bucket or root directory (its message naming it),
// core.ErrExists when a create-only Put finds the name taken,
// core.ErrChecksumMismatch, core.ErrConflict, core.ErrPermission, and
// core.ErrTransient for throttling, server errors, timeouts and broken
// connections once the driver's client has spent its own retries. The
// driver's original error stays in the chain, so errors.As reaches the
// SDK's error types. A driver returns its error unwrapped by operation
// and name: [Store] adds those, and retries transient failures (see
// [IsTransient]); a driver need not retry at all.
//
// Implementations must be safe for concurrent use.
type Driver interface {
	// Put stores size bytes read from body under name, replacing what is
	// there unless opts.CreateOnly is set. The object appears whole or not
	// at all: no reader ever sees part of it. Put may read body more than
	// once (to retry, or to upload parts in parallel); it reads no more than
	// size bytes from it. A body shorter than size fails with an error
	// matching io.ErrUnexpectedEOF. Any failed Put (checksum, short body,
	// cancellation, refused create-only) leaves an existing object exactly
	// as it was and stores nothing; once ctx is done, Put stops reading
	// body promptly.
	Put(ctx context.Context, name string, body io.ReaderAt, size int64, opts PutOptions) error

	// Get opens the object name for reading. The reader may be bound to
	// ctx. A driver never resumes a read that breaks off: it returns the
	// failure (io.ErrUnexpectedEOF, or an error matching core.ErrTransient
	// for a broken connection), and the Store resumes with GetRange.
	Get(ctx context.Context, name string) (io.ReadCloser, error)

	// GetRange opens length bytes of the object name from offset, as Get
	// does. Bytes past the object's end are not an error: the reader then
	// ends early, so reading length+1 bytes from the last chunk detects an
	// object longer than expected. An offset at or past the end yields an
	// empty reader, not an error; so does a length of 0, for an object
	// that exists. A missing object is core.ErrNotFound, whatever the
	// range.
	GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error)

	// Stat returns the object's attributes, ModTime included.
	Stat(ctx context.Context, name string) (ObjectInfo, error)

	// List calls fn for every object whose name starts with prefix, once
	// each, in no particular order, and stops at the first error fn
	// returns, returning it or an error wrapping it. Objects whose names are
	// not valid object names may be skipped.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error

	// Delete removes the object name. Deleting a missing object is an error
	// matching core.ErrNotFound.
	Delete(ctx context.Context, name string) error

	// Close releases the driver's resources.
	Close() error
}

// HashedBody is a Put body whose holder computed its SHA-256 over the
// very bytes it serves, which do not change while it is held, such as a
// blob copied to memory: a driver that would hash the body only to check
// PutOptions.SHA256 may compare SHA256's result with it instead.
type HashedBody interface {
	io.ReaderAt
	SHA256() []byte
}

// SHA256ToCheck returns the digest a driver checks by hashing body, for a
// Put whose PutOptions.SHA256 is want: want, or nil when body is a
// [HashedBody] of that digest.
func SHA256ToCheck(body io.ReaderAt, want []byte) []byte {
	if hb, ok := body.(HashedBody); ok && want != nil && bytes.Equal(hb.SHA256(), want) {
		return nil
	}
	return want
}

// PutOptions modify a [Driver.Put].
type PutOptions struct {
	// CreateOnly makes Put fail with core.ErrExists if name exists. Of two
	// concurrent create-only writers of the same name, at most one wins.
	CreateOnly bool
	// SHA256 is the digest of the content, when known. Every driver
	// verifies it (drivers whose server can, by sending it along): on a
	// mismatch Put fails with an error matching core.ErrChecksumMismatch,
	// nothing is stored, and a create-only Put does not take the name.
	SHA256 []byte
	// ContentType is the object's media type; empty means
	// application/octet-stream.
	ContentType string
	// DeferSync lets Put return before the object is durable, on drivers
	// that implement [Syncer]: their Sync then makes it durable. Writers
	// of many objects set it, and call [Store.Sync] before they write the
	// object that commits them. Other drivers ignore it.
	//
	// A driver may also keep such an object out of its name until Sync,
	// to make a whole group durable at once (a local directory stages
	// small files): the Driver that stored it finds it under its name,
	// but other Drivers and processes may not see it before Sync. A
	// create-only Put deferred this way checks the name when it runs; if
	// another Driver takes the name before Sync, that object stays and
	// this Put's is dropped. Set it only where that is the same (content
	// addressing: a name's content is fixed).
	DeferSync bool
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Name    string
	Size    int64
	ModTime time.Time
	// Version names the object's current content, opaquely: it changes
	// whenever the object is replaced. Stat sets it on drivers that
	// implement [ConditionalPutter], for [ConditionalPutter.PutIfMatch];
	// List and other drivers may leave it empty.
	Version string
}

// Concurrency is implemented by drivers that want the engine to size its
// limit on concurrent requests to them (for example to the size of an HTTP
// connection pool).
type Concurrency interface {
	MaxConcurrency() int
}

// Local is implemented by drivers whose objects are on this machine (a
// local directory) and report so: reading one again costs no download,
// so a driver that stores a body read from such a store (a
// [ReaderAt]) may read it twice, as it reads a file of the caller's.
type Local interface {
	Local() bool
}

// Syncer is implemented by drivers that can defer the durability of Puts
// made with PutOptions.DeferSync, to save a sync per object (a local file
// system: one directory sync for many files). Sync makes every such Put
// that has returned durable. Drivers whose Puts are durable when they
// return need not implement it.
type Syncer interface {
	Sync(ctx context.Context) error
}

// Cleaner is implemented by drivers whose interrupted writes can leave
// debris that no object name reaches, such as the temporary files of a
// local directory after a crash. CleanStale removes the debris older than
// olderThan (a driver's default if olderThan ≤ 0) that no live writer
// owns, and returns how many items it removed; it is safe to call while
// others write. Flows that write call it as they start.
type Cleaner interface {
	CleanStale(ctx context.Context, olderThan time.Duration) (int, error)
}

// ConditionalPutter is implemented by drivers that can replace an object
// on condition that it has not changed since it was read: a
// compare-and-swap, which moving a tag and refreshing a lock rely on.
//
// PutIfMatch stores the object as Put does, but only if name exists and
// its version is still version, as Stat returned it in
// ObjectInfo.Version. Otherwise (the object was replaced or deleted in
// between) it stores nothing and fails with an error matching
// core.ErrConflict. Of concurrent PutIfMatch calls with the same version,
// at most one succeeds. opts.CreateOnly must not be set.
//
// A driver that cannot do it in some setting (a file system without
// advisory locks, a provider without preconditions) returns an error
// matching errors.ErrUnsupported, and callers fall back to a plain Put,
// with the window that leaves between their read and their write. How the
// backends do it:
//
//   - s3store: PutObject with If-Match: <ETag>; the version is the ETag.
//   - filestore: under an advisory lock (flock) on a lock file of the
//     object's directory, compare the file's identity (device, inode,
//     modification time, size), then rename a new file over it; the
//     version is that identity.
//   - gcsstore: Writer with Conditions{GenerationMatch: generation}; the
//     version is the object's generation, in decimal. A 412 answer is the
//     conflict.
//   - gocloudstore: gocloud.dev's portable API has no precondition on
//     replacing an object: return errors.ErrUnsupported (or, per
//     provider, set the provider's precondition through
//     WriterOptions.BeforeWrite and As).
type ConditionalPutter interface {
	PutIfMatch(ctx context.Context, name string, body io.ReaderAt, size int64, opts PutOptions, version string) error
}

// ServeRange implements the argument checks of [Driver.GetRange] for a
// driver whose server reads ranges: it refuses a negative offset or
// length (core.ErrInvalid), answers a length of 0 by checking that the
// object exists with stat (servers differ on empty ranges; S3 refuses
// them), and otherwise calls read, with a length of -1, "to the object's
// end", for a range that runs past math.MaxInt64.
func ServeRange(ctx context.Context, name string, offset, length int64,
	stat func(ctx context.Context, name string) (ObjectInfo, error),
	read func(offset, length int64) (io.ReadCloser, error)) (io.ReadCloser, error) {
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("range of %d bytes from %d: %w", length, offset, core.ErrInvalid)
	}
	if length == 0 {
		if _, err := stat(ctx, name); err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	if length > math.MaxInt64-offset {
		length = -1
	}
	return read(offset, length)
}
