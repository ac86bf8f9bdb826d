// Package gocloudstore is a [store.Driver] over any gocloud.dev bucket
// (*blob.Bucket): in memory, a local directory, Amazon S3 or an
// S3-compatible server, Google Cloud Storage, Azure Blob Storage, or any
// other driver of gocloud.dev's blob package. The engines give it the
// same guarantees as the native drivers, as far as the bucket's driver
// allows (see below).
//
// [New] wraps a bucket the caller opened (and keeps: the driver does not
// close it). [Open], and store.Open through the schemes this package
// registers, open one from a URL:
//
//	mem://                                   a new in-memory bucket (memblob)
//	gocloud+file:///abs/dir                  a directory (fileblob)
//	gocloud+s3://bucket/prefix?region=R      S3 (s3blob, aws-sdk-go-v2)
//	gocloud+gs://bucket/prefix               GCS (gcsblob)
//	gocloud+azblob://container/prefix        Azure Blob Storage (azureblob)
//
// The part after "gocloud+" is handed to gocloud.dev's default URL mux, so
// each driver's own query parameters apply. For S3-compatible servers such
// as MinIO:
//
//	gocloud+s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&use_path_style=true
//
// with the credentials of the AWS SDK's chain (AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY, profiles, web identity). gs:// uses Application
// Default Credentials and honours STORAGE_EMULATOR_HOST. azblob:// needs
// AZURE_STORAGE_ACCOUNT (or storage_account=) and credentials in the
// environment; without any, Open fails at once rather than let azidentity
// probe the network. file:// URLs default to no_tmp_dir and
// metadata=skip; as with a file:// repository, the directory is created
// by the first write, never by opening or reading it (a read of a missing
// one is core.ErrBucketNotFound), and not at all with create_dir empty or
// false. Importing this package links the five drivers.
//
// # Create-only writes
//
// A create-only Put writes with blob.WriterOptions.IfNotExist. On S3
// (If-None-Match: *), GCS (the DoesNotExist precondition), Azure
// (If-None-Match: *) and memblob (a check under the bucket's lock), the
// server or driver decides atomically: of concurrent writers, one wins.
//
// fileblob checks that the file is missing and then renames its temporary
// file into place, so two writers can both pass the check. The driver
// therefore, for fileblob and for any driver it does not recognise:
// serialises create-only writes of one name within the process, and
// after each one reads the object back and compares its SHA-256 with what
// it wrote; a difference means another writer replaced it, and the Put
// fails with core.ErrExists. The window that remains is across processes:
// two processes that create the same name within the time of one check,
// rename and read-back may both succeed, and the object then holds the
// later one's content. statebucket commits a snapshot by creating its
// manifest, whose name is the digest of its content, so the two writers
// of one name commit the same snapshot; use file:// (os.Link, atomic)
// where processes race on other names.
//
// # Conditional writes
//
// The driver does not implement store.ConditionalPutter: gocloud.dev's
// portable API has no precondition on replacing an object, so tags move
// and locks refresh with a plain Put (the repository layer records such a
// move as unconditional), the last writer winning, on every gocloud
// scheme. gs:// (package gcsstore) and s3:// (package s3store) compare
// and swap. Per provider it could be done through WriterOptions.BeforeWrite:
// s3blob exposes *transfermanager.UploadObjectInput, whose IfMatch reaches
// PutObject and CompleteMultipartUpload; gcsblob exposes
// **storage.ObjectHandle, to which a GenerationMatch condition can be
// added. It is not done because the conformance suite and the repository
// layer take a driver that implements the interface to support it, and
// mem, file and azblob buckets behind the same *Driver type cannot.
//
// # Uploads
//
// Put streams the body to the writer once, hashing it when the content's
// SHA-256 is given and the server does not check it (or a create-only
// write needs a read-back): a body of
// the wrong digest or shorter than its size cancels the write's context
// before the writer sees the failure, so nothing is stored. An object up
// to Options.PartSize gets a writer buffer of its own size
// (blob.WriterOptions.BufferSize), not the driver's default of 8 to
// 16 MiB; larger ones go up in parts of PartSize, PartConcurrency at a
// time, where the driver uploads in parts (S3, GCS, Azure). Unlike the
// native drivers, which send sections of the engine's spool file, the
// gocloud.dev drivers copy each part into a buffer of their own. Objects up to
// 8 MiB on GCS carry their MD5 (ContentMD5), which the server checks.
// On S3, an object below 16 MiB, which the SDK's transfer manager sends
// in one PutObject, carries the content's SHA-256 (x-amz-checksum-sha256)
// when it is known: the server checks it and the driver hashes nothing;
// larger ones go up in parts with a CRC32 each, and the driver checks the
// SHA-256. fileblob and memblob check nothing beyond the driver's SHA-256,
// and fileblob does not sync files to disk.
//
// # Errors
//
// Errors map from gcerrors codes to the sentinels of package core
// (NotFound to core.ErrNotFound, or core.ErrBucketNotFound when the
// service says the bucket or container is missing; AlreadyExists and, for
// create-only writes, FailedPrecondition to core.ErrExists;
// PermissionDenied and HTTP 401/403 to core.ErrPermission;
// ResourceExhausted, DeadlineExceeded, Internal, HTTP 429 and 5xx and
// broken connections to core.ErrTransient) and wrap the bucket's error, so
// errors.As reaches the service's error types (smithy.APIError,
// *googleapi.Error, *azcore.ResponseError), as Bucket.ErrorAs does.
// The driver neither retries nor resumes: a read that breaks off fails
// with core.ErrTransient, and the [store.Store] over the driver tries
// transient failures again and resumes reads with GetRange. Only the
// bucket's own SDK retries below it.
package gocloudstore
