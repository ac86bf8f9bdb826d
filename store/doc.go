// Package store is statebucket's object layer: the small contract every
// storage backend implements ([Driver]), the scheme registry that opens a
// repository URL with the right one ([Register], [Open]), and [Store], the
// portable type the engines use over any driver.
//
// The layer knows no repository layout: any name [ValidName] accepts is an
// object name, and what names mean is the repository layer's business.
// (The layout's names, [BlobName] and its kin, still live here until they
// move to that layer.)
//
// A Store does once what every backend would otherwise do again: it
// validates names; takes a request slot of its [Budget], shared by every
// transfer on the repository, for each call to the driver; tries calls
// that fail with a transient error again, with backoff (see [IsTransient]
// and [Options]); resumes reads that break off, with the driver's
// GetRange; and wraps the driver's error exactly once in an [*Error]
// naming the operation, the object and the repository.
//
// Backends live in sub-packages, such as filestore (a local directory) and
// s3store (S3 and S3-compatible servers), and register their URL schemes
// when imported. Each passes the conformance suite in storetest, which also
// runs it through storetest.Faulty, a wrapper that injects the failures of
// a real network.
package store
