// Package gcsstore is a [store.Driver] over a Google Cloud Storage bucket,
// built on cloud.google.com/go/storage. A repository is the set of objects
// under a prefix of the bucket: the repository name "tags/v1.json" under
// the prefix "ci/state" is the object "ci/state/tags/v1.json".
//
// [Open] makes a driver from a URL,
//
//	gs://bucket/prefix
//
// with Application Default Credentials: the key file that
// GOOGLE_APPLICATION_CREDENTIALS names, the file `gcloud auth
// application-default login` writes, or the service account of the
// machine on Google Cloud. When none is found, Open fails with an error
// matching core.ErrPermission that says where it looked. When
// STORAGE_EMULATOR_HOST is set (host:port, or a base URL), the client
// reaches that emulator instead, without credentials, as the client
// library does. Importing the package registers the "gs" scheme with
// store.Open. [New] makes a driver from an existing *storage.Client.
//
// # Uploads
//
// Put reads its body once, hashing it on its way to the client. The client
// computes the CRC32C of the bytes it sends and sends it along (in the
// object's metadata for an upload in one request, with the last chunk of a
// resumable one; the driver computes it first for a streamed one); GCS checks it before it creates the object, so bytes
// corrupted on their way are refused (core.ErrChecksumMismatch) and
// nothing is stored. GCS cannot check a SHA-256: when the engine gives
// one, the driver checks it once the whole body has passed and, if it
// differs, abandons the upload before its end, which is what makes GCS
// create the object (core.ErrChecksumMismatch again). The driver also
// compares the CRC32C of the object stored with the body's, for servers
// that do not check: it deletes an object stored wrong and reports the
// mismatch. (GCS would also check an MD5, at the cost of another hash on
// the client; the CRC32C already catches what it would.) An object appears
// whole once its upload completes, never in part.
//
// Each upload is sized to its object. An object of at most
// Options.SingleRequestMax (64 MiB by default) goes up in one request that
// streams the body through the client, with no buffer: the driver reads
// the body a first time for its CRC32C, which the request declares, and
// for its SHA-256, checked before anything is sent. A body that changed
// between the two passes is refused by GCS like bytes damaged on their
// way. The client does not send such a request again; the engine does,
// from the body, after a transient failure. A body streamed from a store
// on this machine (a [store.ReaderAt] that is [store.Local], as a copy from
// a directory reads) goes that way too. A larger object, or a body
// streamed from a store on a server (which a second pass would download
// again), goes as before: below Options.ChunkSize in one
// request from a buffer of its size rounded up to 256 KiB, above it in a
// resumable upload, in chunks of Options.ChunkSize, each buffered so that
// the client can send it again. Options.MaxBufferBytes bounds those
// buffers of 256 KiB and more together (32 MiB by default: two large
// uploads at once); an upload whose buffer does not fit waits, but
// smaller objects never wait behind larger ones.
//
// An object of Options.CompositeThreshold or more (150 MiB by default,
// gcloud storage's threshold) read from a body on this machine and put
// with no precondition, as the engine puts large blobs, goes up in a
// parallel composite upload, as gcloud storage does: the driver reads the
// body once for its SHA-256 and the CRC32C of each part and of the whole,
// sends the parts (of Options.ComponentSize, 50 MiB by default, or 1,024
// equal ones if that makes more) as objects under "tmp/compose-" beneath
// the prefix, each in one streamed request that declares its CRC32C,
// Options.ComponentConcurrency (4) at once, sending a part that failed
// transiently again; then one compose request joins the parts, by their
// generations, into the object, declaring the whole's CRC32C, and the
// parts are deleted, however the upload ended. A compose request takes
// at most 32 sources: more parts (objects over 1.6 GiB by default) are
// first composed 32 at a time into groups under "tmp/compose-", which
// the object's compose joins, as gcloud storage composes in rounds. No buffer is held, one
// stream no longer bounds the upload, and a server that works per
// chunk on all it holds of an object (the emulator hashes it again) does
// that once per part. The object has a CRC32C but no MD5, which nothing
// here reads. Only a bucket whose default storage class is STANDARD,
// with no retention policy, default event-based holds or versioning, gets
// composite uploads: other buckets keep deleted parts, or charge for them
// (a bucket's soft-delete policy does too, for a week by default; the
// parts cost that storage once). The driver reads the bucket's settings
// once; credentials that cannot read them get no composite uploads.
// Parts that a crash left behind are deleted by CleanStale
// ([store.Cleaner]) once older than the age asked, a day by default: a
// part does not say whose it is, and `statebucket gc` asks for its grace
// period while its exclusive lock keeps writers out.
//
// A create-only Put carries the precondition DoesNotExist
// (ifGenerationMatch=0), so GCS refuses to replace an object: its answer
// 412 Precondition Failed is an error matching core.ErrExists. Other
// Puts replace the object unconditionally; the engine writes blobs so,
// their names being the SHA-256 of their content, which makes a
// replacement store the same bytes. The client retries uploads that fail
// with a 429, a 5xx or a broken connection, create-only or not: a
// replacement sent again stores the same bytes, and a create-only upload
// whose first try landed is refused with 412, which the engine resolves
// by reading the object back.
//
// A conditional Put ([Driver.PutIfMatch], the compare-and-swap that moves
// tags and refreshes locks) carries the precondition GenerationMatch
// (ifGenerationMatch) with the generation that Stat returned, in decimal,
// as ObjectInfo.Version. GCS refuses the upload with 412 if the object has
// been replaced or deleted since: an error matching core.ErrConflict (not
// core.ErrExists). A conditional upload retried after its first try
// landed meets its own generation and is refused likewise; the Store says
// so in its error.
//
// # Downloads
//
// Get and GetRange read through the client, which verifies the CRC32C of
// whole objects and resumes a download whose connection breaks. A range
// starting at or past the object's end is empty, not an error.
//
// # Failures
//
// The client tries a request at most Options.MaxAttempts times (the
// library's own default is to retry until the context ends), then the
// driver reports an error matching core.ErrTransient. Errors match the
// sentinels of package core and wrap the client's, so errors.As reaches
// *googleapi.Error: core.ErrNotFound for a missing object
// (storage.ErrObjectNotExist), core.ErrBucketNotFound for a missing bucket
// (naming it), core.ErrExists for 412 (core.ErrConflict for that of a conditional Put),
// core.ErrConflict for 409,
// core.ErrPermission for 401 and 403, core.ErrChecksumMismatch, and
// core.ErrTransient for 408, 429, 5xx and broken or refused connections.
// No error holds a credential.
package gcsstore
