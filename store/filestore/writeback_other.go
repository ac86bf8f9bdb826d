//go:build !linux

package filestore

// startWriteback does nothing: sync_file_range is Linux's, and the syncs
// write everything.
func startWriteback(syncWriter, int64, int64) {}

// dropCache does nothing: posix_fadvise is not on every system, and the
// pages are only a cache.
func dropCache(syncWriter, int64, int64) {}
