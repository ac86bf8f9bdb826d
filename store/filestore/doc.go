// Package filestore is a [store.Driver] over a directory of the local file
// system: each object is a file named by its repository name under the
// directory, so a repository can be inspected, copied and backed up with
// ordinary tools.
//
// Every access goes through an [os.Root], so nothing outside the directory
// is ever touched, and symbolic links are never followed: a name whose path
// holds one is refused with an error matching core.ErrInvalidPath.
//
// Writes are atomic and durable. Put writes a temporary file (named
// ".tmp-…", which is never a repository name) in the object's directory,
// syncs it, then renames it over the object, or, for a create-only Put,
// hard-links it to the object's name, so that of two writers, in the same
// process or not, only one can win. Temporary files left by a crash are
// skipped by List and removed by [Driver.RemoveStaleTemp].
//
// Create-only Puts need a file system with hard links (every local Unix
// file system, NTFS); NFS shares work, FAT and some FUSE mounts do not.
package filestore
