// Package coretest holds reference mock services and checks for the
// contracts of package core, for tests, benchmarks and the statebucket demo
// command:
//
//   - [ObjectStore]: an in-memory S3-like object store, a
//     [core.BlobBackedService] whose blobs are exported under the keys real
//     callers use ("{bucket}/{key}\x00{versionID}");
//   - [KV]: an in-memory parameter store, a plain [core.StatefulService];
//   - [MemoryVisitor] and [MemorySource]: a [core.BlobVisitor] and a
//     [core.BlobSource] over memory, recording what they are handed;
//   - [CheckBlobRoundTrip] and [CheckRoundTrip]: checks any service author
//     can run on their own service, returning an error that describes the
//     first failure, like testing/fstest.TestFS;
//   - [Fill] and [HostileKeys]: deterministic test data, with keys that
//     break naive storage (NUL bytes, "..", invalid UTF-8, 4 KiB keys…).
//
// The package depends on core and the standard library only.
package coretest
