// Package snapshot moves the state of mock cloud services to and from a
// repository: a local directory or a bucket prefix.
//
// Open a repository with [Open], then [Export] a service's state into it
// and [Import] it into another service, in any process that can reach the
// repository. [ExportState] and [ImportState] do the same for services
// without blobs. [Repo.List], [Repo.Show], [Repo.Verify], [Repo.Tag],
// [Repo.Untag] and [Repo.Tags] inspect and name snapshots; [Repo.Remove]
// removes them, and [Repo.GC] reclaims the space no snapshot needs. [Copy]
// moves snapshots, with their tags, between repositories;
// ExportOptions.DryRun computes a snapshot's id without touching storage.
//
// A repository is content-addressed, like restic's:
//
//	blobs/sha256/ab/abcdef…        every blob, named by the SHA-256 of its bytes
//	snapshots/<id>/view.json       the JSON state view
//	snapshots/<id>/manifest.json   written last, create-only: the commit point
//	tags/<name>.json               mutable pointer to a snapshot id
//	locks/<kind>-<random>.json     who is exporting or collecting now
//
// Blob keys never become object names, identical blobs are stored once,
// the same state exported twice is the same snapshot, and a snapshot
// exists only once its manifest does, so readers never see a partial one.
// Package repo keeps the layout; an export holds a shared lock on the
// repository while it runs, so that a garbage collection, which takes an
// exclusive one, never deletes blobs an export relies on.
//
// With a signing key (ExportOptions.SigningKey, and the HMACKey of
// ImportOptions.Manifest, VerifyOptions.Manifest, TagOptions.SigningKey…),
// exports sign manifests and tags, and reads refuse those not signed with
// it before any blob is read.
package snapshot
