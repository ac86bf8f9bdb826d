// Package core holds the snapshot contracts that mock cloud services
// implement, ported from the Rust original (winterbaume_core/views.rs):
//
//   - [StatefulService]: a typed, JSON-serialisable view of one
//     (account, region), read with Snapshot, replaced with Restore and
//     added to with Merge;
//   - [BlobBackedService]: a stateful service whose view references large
//     blobs kept in a backing store, exported through a [BlobVisitor] in
//     minibatches and imported through a [BlobSource] one key at a time.
//     As in the original, a restore takes two calls: RestoreWithBlobs
//     imports the blobs the view references into the backing store and
//     leaves the visible state alone, then Restore (or Merge) makes the
//     view visible; [ReadBlob] reads one fetched blob into one buffer;
//   - [StateChangeNotifier]: listeners called after each mutation.
//
// It also holds the error values every layer of statebucket shares, so that
// errors.Is and errors.As work from a driver up through a service's
// RestoreWithBlobs to the caller.
//
// The package depends on the standard library only.
package core
