package core

import (
	"context"
	"io"
)

// DefaultBlobBatchSize is the number of blobs a [BlobBackedService] hands to
// a [BlobVisitor] in one minibatch unless it has a reason to choose another.
const DefaultBlobBatchSize = 64

// MockService is implemented by every mock service.
type MockService interface {
	// ServiceName returns the service's short, stable name, such as "s3".
	// It names the service in snapshot manifests.
	ServiceName() string
}

// StatefulService is a mock service whose state for one account and region
// can be read and written as a typed view V. V must survive a JSON round
// trip: what Snapshot returns, encoded and decoded, must Restore to the same
// state.
//
// Implementations must be safe for concurrent use.
type StatefulService[V any] interface {
	MockService

	// Snapshot returns the view of the state of accountID in region.
	// An account or region without state yields the view of empty state,
	// not an error.
	Snapshot(ctx context.Context, accountID, region string) (V, error)

	// Restore replaces the state of accountID in region entirely with view:
	// anything not in view is gone afterwards. If Restore fails, the state
	// visible to callers is the state before the call.
	Restore(ctx context.Context, accountID, region string, view V) error

	// Merge adds view to the state of accountID in region. It never
	// deletes: resources present in the state and absent from view are
	// kept; resources present in both take the value in view.
	Merge(ctx context.Context, accountID, region string, view V) error

	// Notifier returns the service's state-change notifier. It must return
	// the same notifier on every call.
	Notifier() *StateChangeNotifier[V]
}

// BlobExportEntry is one blob handed to a [BlobVisitor].
type BlobExportEntry struct {
	// Key names the blob within the view. Keys are arbitrary strings: they
	// may hold NUL bytes, '/', "..", invalid UTF-8, and exceed 1,024 bytes.
	Key string
	// Reader streams the blob's bytes. The visitor that receives the entry
	// owns it and closes it, whether or not it reads it to the end.
	Reader io.ReadCloser
	// Size is the blob's length in bytes, or [UnknownSize] when it is not
	// known in advance (versioned blobs arrive with unknown size). The
	// zero value declares an empty blob.
	Size int64
	// SHA256, when the service knows it (a checksum it keeps with the
	// blob), is the SHA-256 of the blob's bytes, 32 bytes, and Size must
	// then be known too. An export skips reading a blob whose digest a
	// parent snapshot holds already, so re-exporting unchanged state
	// reads no blob at all; every blob it reads is checked against it,
	// and a mismatch fails the export. nil means not known.
	SHA256 []byte
}

// BlobVisitor receives the blobs of a snapshot in minibatches.
//
// Visit is called once per minibatch, and the service waits for it to return
// before it produces the next one. The visitor owns every Reader in batch and
// closes each of them before Visit returns, also when it returns an error.
// When Visit returns an error, the service stops and returns that error,
// wrapped or not, from SnapshotWithBlobs.
//
// A visitor may go on storing bytes it has read after Visit returns (the
// engine's visitor uploads across minibatches and reports a failure from
// a later Visit, or once the export waits for it), under the ctx given to
// Visit: a service passes the context of SnapshotWithBlobs, or one that
// lives as long, never one it cancels after each minibatch.
type BlobVisitor interface {
	Visit(ctx context.Context, batch []BlobExportEntry) error
}

// BlobSource supplies the blobs of a snapshot during a restore.
//
// Fetch is called once per key, one key at a time, in the service's order
// (not necessarily the manifest's). The caller closes the returned reader.
// A key the source does not know yields an error matching [ErrNotFound].
//
// A reader yields the bytes recorded for its key, or fails. A source that
// checks them (the import engine checks every blob's size and SHA-256
// against the snapshot's manifest) reports bytes that differ with an error
// matching [ErrChecksumMismatch] or [ErrSizeMismatch], at the latest from
// the Read that would otherwise return io.EOF. A service therefore reads
// every reader to io.EOF ([ReadBlob] does), returns such an error wrapped,
// and need not hash the bytes again.
type BlobSource interface {
	Fetch(ctx context.Context, key string) (io.ReadCloser, error)
}

// BlobBackedService is a [StatefulService] whose view references blobs
// kept outside the view, in the service's backing store: the bodies of an
// S3 mock's objects, the blocks of an EBS mock's snapshots.
//
// A restore takes two calls, in the order of the Rust original
// (winterbaume_core/views.rs):
//
//  1. RestoreWithBlobs(view, source) imports into the backing store every
//     blob view references, fetched from source;
//  2. Restore(view), or Merge(view), makes view the visible state,
//     resolving its blob references against the backing store.
//
// snapshot.Import makes both calls, and only makes the second once the
// first has fetched and verified every blob, so a failed import leaves the
// visible state as it was.
type BlobBackedService[V any] interface {
	StatefulService[V]

	// SnapshotWithBlobs returns the view of accountID in region and hands
	// every blob the view references to visitor, in minibatches of at most
	// DefaultBlobBatchSize entries (or another size of the service's
	// choosing), each one awaited before the next is produced.
	SnapshotWithBlobs(ctx context.Context, accountID, region string, visitor BlobVisitor) (V, error)

	// RestoreWithBlobs imports into the service's backing store every blob
	// view references, fetching each from source, and leaves the visible
	// state alone: the caller then calls Restore, or Merge, with the same
	// view. Restore and Merge resolve the view's blob references against
	// the backing store, and fail on a blob it does not hold.
	//
	// Errors from source, or from a reader it returned, are returned
	// wrapped, so errors.Is and errors.As still match them; wrapping them
	// in a *StateViewError of kind KindBlob ([NewBlobError]) names the key.
	// A failed RestoreWithBlobs must leave the visible state as it was; it
	// may leave in the backing store the blobs it imported before failing,
	// which no visible state references. What becomes of them (kept for
	// the next import, dropped by the next Restore) is the service's
	// choice and belongs in its documentation.
	//
	// The Rust original's own S3 and EBS mocks also replace their visible
	// state with view at the end of RestoreWithBlobs, once every blob is
	// in. Such a service must take the Restore that follows as an
	// idempotent replace with the same view, and snapshot.Import works with
	// it; but it cannot be merged into, since the Merge that follows finds
	// view already in place of the previous state. Merging needs a
	// RestoreWithBlobs that leaves the visible state alone.
	RestoreWithBlobs(ctx context.Context, accountID, region string, view V, source BlobSource) error
}
