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
}

// BlobVisitor receives the blobs of a snapshot in minibatches.
//
// Visit is called once per minibatch, and the service waits for it to return
// before it produces the next one. The visitor owns every Reader in batch and
// closes each of them before Visit returns, also when it returns an error.
// When Visit returns an error, the service stops and returns that error,
// wrapped or not, from SnapshotWithBlobs.
type BlobVisitor interface {
	Visit(ctx context.Context, batch []BlobExportEntry) error
}

// BlobSource supplies the blobs of a snapshot during a restore.
//
// Fetch is called once per key, one key at a time, in the service's order
// (not necessarily the manifest's). The caller closes the returned reader.
// A key the source does not know yields an error matching [ErrNotFound].
// A reader may fail part-way, for example with [ErrChecksumMismatch] or
// [ErrSizeMismatch] once it detects that the bytes are not the ones
// recorded; the service must then fail the restore and keep its previous
// state.
type BlobSource interface {
	Fetch(ctx context.Context, key string) (io.ReadCloser, error)
}

// BlobBackedService is a [StatefulService] whose view references blobs
// stored outside the view.
type BlobBackedService[V any] interface {
	StatefulService[V]

	// SnapshotWithBlobs returns the view of accountID in region and hands
	// every blob the view references to visitor, in minibatches of at most
	// DefaultBlobBatchSize entries (or another size of the service's
	// choosing), each one awaited before the next is produced.
	SnapshotWithBlobs(ctx context.Context, accountID, region string, visitor BlobVisitor) (V, error)

	// RestoreWithBlobs replaces the state of accountID in region with view,
	// fetching every blob the view references from source. It fetches and
	// checks all blobs before it swaps state, so a failed restore leaves
	// the previous state visible. Errors from source are returned wrapped,
	// so errors.Is and errors.As still match them.
	RestoreWithBlobs(ctx context.Context, accountID, region string, view V, source BlobSource) error
}
