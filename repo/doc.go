// Package repo is the repository layer of statebucket: how a snapshot
// repository lies in a [store.Store], and the operations on it that the
// export and import engines and the flows need. It is the only package
// that knows object names:
//
//	blobs/sha256/ab/abcdef…          every blob, named by the SHA-256 of its bytes
//	snapshots/<hex id>/view.json     the JSON state view
//	snapshots/<hex id>/manifest.json written last, create-only: the commit point
//	tags/<name>.json                 mutable pointer to a snapshot id
//	locks/<kind>-<random>.json       who is exporting or collecting now
//
// Name builders ([BlobName], [ManifestName], …) and parsers
// ([ParseBlobName], [ParseManifestName], …) go together, so that no caller
// slices a name by hand. A [Repo] reads and writes blobs, views,
// manifests, tags and locks: reads of stored records are strict and
// capped, and a record that fails its checks is bad data, matching
// core.ErrCorrupt, never bad usage.
//
// Tag names never look like snapshot ids or the reserved ref "latest"
// ([ValidTag]), so a ref names one thing only ([Repo.Resolve]). Tags move
// by compare-and-swap where the store can ([Repo.WriteTag]), and may be
// signed ([Tag.Sign]).
//
// Locks ([Repo.Lock]) let a garbage collector run safely beside exports:
// exports hold shared locks, a collector an exclusive one; see
// docs/design.md, "Locks and garbage collection".
package repo
