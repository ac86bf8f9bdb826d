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
// A large body's bytes are on their way to the disk before the final
// sync: Put asks the system to start writing each megabyte as soon as it
// is written (sync_file_range on Linux) and syncs the file beside the
// copy every 16 MiB, and, while few large Puts run at once, hashes the
// body on another goroutine as it copies it. The final sync still
// follows the last byte, and a failure of any sync fails the Put.
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
