// Package s3store is a [store.Driver] over an Amazon S3 bucket, or a
// bucket of an S3-compatible server such as MinIO, built on aws-sdk-go-v2.
// A repository is the set of objects under a prefix of the bucket: the
// object name "tags/v1.json" under the prefix "ci/state" is the object
// key "ci/state/tags/v1.json".
//
// [Open] makes a driver from a URL,
//
//	s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&profile=dev&timeout=30s
//
// with the AWS SDK's standard configuration: credentials from the
// environment, the shared config and credentials files (profile= picks a
// profile), web identity or the instance role; AWS_REGION,
// AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_S3 as the SDK reads them. Whenever
// an endpoint is set, by the URL or the environment, requests use
// path-style addressing (http://host/bucket/key), which MinIO and most
// S3-compatible servers expect. [New] makes a driver from an existing
// *s3.Client.
//
// # Uploads
//
// The engine hands Put a spooled body of known size, an io.ReaderAt, so
// every request body is an io.SectionReader the SDK can rewind to retry,
// and nothing is buffered in memory.
//
// Every upload carries a checksum header the server verifies before it
// stores anything, and is signed without its body (UNSIGNED-PAYLOAD): over
// plain HTTP, SigV4 would otherwise have the client hash every byte with
// SHA-256 once more. A body corrupted on its way is refused; a mismatch is
// an error matching core.ErrChecksumMismatch. The header is signed, so a
// SHA-256 one also guards the body against tampering; a CRC32C one (parts,
// and objects whose digest is unknown) guards it against corruption only:
// over plain HTTP, whoever can alter the traffic could alter those bodies
// unseen by the server. Use HTTPS where that matters.
//
// Objects smaller than Options.MultipartThreshold go up in one PutObject.
// When the engine knows the content's SHA-256, it is sent as the
// x-amz-checksum-sha256 header: the server checks the engine's own digest,
// and the client hashes nothing. Otherwise the driver sends the body's
// CRC32C (x-amz-checksum-crc32c), which costs next to nothing to compute.
//
// Larger objects go up in parts of Options.PartSize, Options.PartConcurrency
// at a time, each part a section of the body with its CRC32C checksum. S3
// has no whole-object SHA-256 for multipart uploads (its full-object
// checksums are CRCs, its SHA-256 ones are checksums of the parts'
// checksums), so when the content's SHA-256 is given, the driver hashes
// the body itself. One goroutine reads the body once, in order, computing
// both the SHA-256 and the parts' CRC32C; each part goes up as soon as its
// CRC32C is known, so hashing overlaps the uploads, and the bytes the
// server accepts are the ones that were hashed. The driver completes the
// upload only if the digest matches; otherwise it aborts it and nothing is
// stored. Any failure aborts the upload. When the answer to a completion
// that landed is lost, the retry finds the upload gone (or, create-only,
// the object there); the driver then compares the object's ETag with the
// one S3 gives the upload's parts and, if it matches, reports success. A
// CreateMultipartUpload whose answer is lost leaves an upload no one
// completes: a bucket lifecycle rule (AbortIncompleteMultipartUpload)
// removes such leftovers. (The SDK's transfermanager is not used: it reads
// an io.Reader into part-sized buffers, holding PartSize × concurrency
// bytes in memory, where sections of the spool cost nothing.)
//
// A create-only Put sends If-None-Match: * with the PutObject or the
// CompleteMultipartUpload, so the server refuses to replace an object:
// 412 Precondition Failed (or 409 ConditionalRequestConflict, a concurrent
// create-only write in progress) is an error matching core.ErrExists.
// A retried request whose first attempt landed also answers so; the engine
// reads such an object back and compares it.
//
// A conditional Put ([Driver.PutIfMatch]) sends If-Match with the ETag
// Stat returned: 412, or 404 for an object deleted since, is an error
// matching core.ErrConflict. AWS S3 honours If-Match on PutObject since
// 2024, and the pinned MinIO does too (the conformance suite's
// ConditionalPutRace would fail on a server that ignored it).
//
// # Failures
//
// Requests are retried by the client's retryer (for a driver made by Open,
// [DefaultRetryer] unless Options.Retryer, AWS_MAX_ATTEMPTS or
// AWS_RETRY_MODE say otherwise; for New, the client's own). Get and
// GetRange return the response's body as it is: a read that breaks off
// fails, and the portable store layer resumes it with a ranged read, as it
// retries the failures the driver reports as transient.
//
// Every request has a bounded wait for the server: Options.ResponseTimeout
// (default 30 s) to connect, send the request and receive the response's
// headers, and Options.StallTimeout (default 60 s) for each wait for a
// body, sent or read, to move; timeout= in the URL sets both. They apply
// whatever the transport, Options.Transport and the client given to New
// included. A request that runs out fails with a *TimeoutError naming the
// endpoint and the limit, which matches core.ErrTransient: the retryer
// tries it again, then the store layer, which also resumes a read that
// stalled from the byte it reached. A server that accepts connections and
// never answers thus fails an operation in bounded time, without a
// deadline on its context.
//
// Errors match the sentinels of package core: core.ErrNotFound for a
// missing object, core.ErrBucketNotFound for a missing bucket (naming the
// bucket and the endpoint), core.ErrExists, core.ErrConflict,
// core.ErrPermission for denied access or rejected credentials,
// core.ErrChecksumMismatch, and core.ErrTransient for throttling (429,
// SlowDown), server errors (5xx), timeouts and broken connections once the
// retryer gave up; they wrap the SDK's error. No error's text holds a
// credential: the driver removes them, with [store.RedactText], from the
// text of every error it returns (the SDK repeats an endpoint as it was
// given, user information included), and [store.Redact] from URLs shown
// to users. A URL whose endpoint holds credentials, a query or a fragment
// is refused, as is a prefix with an empty, "." or ".." segment.
//
// # Connections
//
// A driver made by [Open] has its own connection pool, which keeps
// Options.MaxConcurrency idle connections to the server (Go's default of
// two would make most of many small concurrent uploads open a new
// connection), and reports that number to the engine through
// MaxConcurrency.
package s3store
