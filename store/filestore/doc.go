// Package filestore is a [store.Driver] over a directory of the local file
// system: each object is a file whose path under the directory is the
// object's name, '/' separating folders, so a repository can be inspected,
// copied and backed up with ordinary tools. The driver gives names no
// meaning; any valid object name (see [store.ValidName]) is stored at any
// depth, and List walks the whole tree under a prefix.
//
// Opening a directory never creates it: a missing directory is reported,
// naming it, by every operation but Put (an error matching
// core.ErrBucketNotFound), and the first Put creates it with its missing
// parents, as mkdir -p does.
//
// Every access goes through an [os.Root], so nothing outside the directory
// is ever touched, and symbolic links are never followed: a name whose path
// holds one is refused with an error matching core.ErrInvalidPath. A
// Driver keeps a handle on each directory it uses (up to 512), so that an
// operation on a file costs one system call rather than a walk from the
// root: an operation that finds something missing opens the directory
// anew, and a sync fails with an error matching core.ErrConflict if a
// directory written into was replaced meanwhile (its objects are then not
// in the repository). Like the handle on the root, a handle follows its
// directory if it is moved: move a repository's folders only while no
// process uses it.
//
// Writes are atomic and durable. Put writes a temporary file (named
// ".tmp-…": no valid object name has a segment starting with '.') in the
// object's directory, syncs it, then renames it over the object, or, for a
// create-only Put, hard-links it to the object's name, so that of two
// writers, in the same process or not, only one can win. On Linux a
// create-only Put into a folder writes an unnamed file instead
// (O_TMPFILE), syncs it and links it to the object's name (linkat through
// /proc/self/fd): no name to make, rename or remove, and nothing left if
// the process dies; where the file system refuses unnamed files, or /proc
// is missing, it takes the temporary file's way. It then syncs the
// directories leading to the object, unless the Put defers that
// (PutOptions.DeferSync) to the next [Driver.Sync], which syncs each
// directory written once however many files it received. Temporary files
// left by a crash are skipped by List and removed by [Driver.CleanStale]
// once they are old and their writer is gone.
//
// On Linux, on ext4, XFS, Btrfs, F2FS and tmpfs, a deferred Put of at
// most 256 KiB is staged instead: its temporary file is written and not
// synced, and stays open. On ext4 and XFS it is written in the
// directory ".staging" of the Driver's root rather than in the object's:
// a temporary name that comes and goes in a directory holding thousands
// of blobs dirties one more of its blocks per file, which made an export
// into a repository of 1,000,000 blobs 1.6 times as slow as into an
// empty one. A group of staged files (up to 1,024 files or
// 64 MiB, fewer files where the limit on open files is low) commits in
// the Put that fills it, and at Sync: one sync of the whole file system
// (syncfs) makes the group durable, each file is checked for a failure
// to write it back (sync_file_range waiting for it, which reports the
// file's own errors), then renamed to its object's name (create-only:
// renameat2 RENAME_NOREPLACE). A file system's journal commits once per
// group instead of once per file, which made 10,000 files of 4 KiB about
// 1.6 times as fast to store here (docs/benchmarks.md). Until its group
// commits, a staged object is out of its name: an operation of the same
// Driver on that name (or a List) commits the group first, so a Driver
// reads its own writes, but other Drivers and processes find it only
// after the Sync; a crash leaves only temporary files. A failure to
// commit a file is reported by the Put that committed the group and by
// the next Sync. The sync of a whole file system also writes what other
// programs wrote to it; on other file systems (network and FUSE mounts
// among them), each file is synced on its own.
//
// A large body's bytes are on their way to the disk before the final
// sync: Put asks the system to start writing each megabyte as soon as it
// is written (sync_file_range on Linux) and syncs the file beside the
// copy every 16 MiB, and, while few large Puts run at once, hashes the
// body on another goroutine as it copies it. The final sync still
// follows the last byte, and a failure of any sync fails the Put. Once
// synced, a large body's pages leave the page cache (posix_fadvise
// POSIX_FADV_DONTNEED on Linux), as those synced beside the copy do as
// it goes on: a snapshot's blobs are seldom read back soon, a large
// export no longer pushes what other programs read out of the cache, and
// the next writes reuse the pages just dropped. [Options.KeepCache]
// keeps them, for a machine that reads the objects back at once.
//
// Conditional writes ([Driver.PutIfMatch], a compare-and-swap on the
// version Stat reports: the file's device, inode, modification time and
// size) compare and rename while holding an advisory lock (flock) on a
// file ".cas.lock" of the object's directory; the kernel releases it when
// its holder dies, so no lock is ever left stale. Where flock is missing
// (Windows, Solaris) they fail with errors.ErrUnsupported, and callers
// fall back to plain writes.
//
// A file system cannot hold both an object "a" and an object "a/b"; a Put
// of the second fails with an error matching core.ErrInvalidPath.
// Create-only Puts need a file system with hard links (every local Unix
// file system, NTFS); NFS shares work, FAT and some FUSE mounts do not.
package filestore
