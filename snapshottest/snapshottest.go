// Package snapshottest restores statebucket snapshots into services in Go
// tests, in one line:
//
//	snapshottest.Restore(t, svc, "s3://fixtures/repo?region=eu-west-1", "my-fixture", accountID, region)
//
// [Restore] opens the repository, copies the snapshot into a local blob
// cache (itself a repository in a directory) unless it is there already,
// and imports it from there into svc, or fails the test with a message
// naming the repository, the ref and the cause. Every blob is checked
// against its digest on the way into the cache and again on the way into
// the service, so repeated runs, and CI jobs that keep the cache
// directory in their cache, download no blob twice and never trust a
// damaged one.
//
// [MinIO] gives a test an S3 server to publish and restore fixtures
// against: one named by environment variables, or the pinned MinIO the
// project's `make tools` builds into ./bin, started on a free port.
//
// Importing the package links the local directory and S3 backends, so
// plain paths, file:// and s3:// URLs open.
package snapshottest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store"
	// The local directory and S3 backends register their schemes.
	_ "github.com/statebucket/statebucket/store/filestore"
	_ "github.com/statebucket/statebucket/store/s3store"
)

// EnvCacheDir is the environment variable that sets the blob cache
// directory (see Options.CacheDir).
const EnvCacheDir = "STATEBUCKET_CACHE_DIR"

// CacheOff, as Options.CacheDir or $STATEBUCKET_CACHE_DIR, turns the blob
// cache off.
const CacheOff = "off"

// Options configure [RestoreWith]. The zero value, like nil, means the
// defaults.
type Options struct {
	// CacheDir is the local blob cache: a repository in a directory,
	// shared by every restore, into which snapshots are copied before they
	// are imported. "" means $STATEBUCKET_CACHE_DIR; when that is unset,
	// <os.UserCacheDir()>/statebucket. CacheOff, or
	// $STATEBUCKET_CACHE_DIR set to "" or "off", turns the cache off: the
	// snapshot is imported straight from the repository. Snapshots in a
	// local directory are always imported straight from it.
	CacheDir string
	// Import configures the import: Merge instead of Restore, the HMAC key
	// that verifies signed manifests (used for the copy into the cache
	// too), the blob engine.
	Import snapshot.ImportOptions
	// Report, if not nil, receives what the restore did.
	Report *Report
}

// Report says what a restore did.
type Report struct {
	// Manifest is the manifest of the snapshot restored.
	Manifest *manifest.Manifest
	// Cache is the blob cache directory used, or "" when there was none.
	Cache string
	// Copy is what the copy into the cache did, or nil when there was no
	// copy: no cache, or a full id the cache held, which needs no look at
	// the repository at all. Copy.Transferred is the number of blobs
	// downloaded.
	Copy *snapshot.CopyReport
}

// Restore imports the snapshot ref names in the repository at repoURL into
// svc, for accountID and region, as [RestoreWith] with the default
// options does, and returns its manifest. It fails the test if anything
// goes wrong.
func Restore[V any](t testing.TB, svc core.StatefulService[V], repoURL, ref, accountID, region string) *manifest.Manifest {
	t.Helper()
	return RestoreWith(t, svc, repoURL, ref, accountID, region, nil)
}

// RestoreWith imports the snapshot ref names in the repository at repoURL
// into svc, for accountID and region, replacing its state (or adding to
// it, with opts.Import.Merge), and returns the snapshot's manifest. svc is
// a core.BlobBackedService, restored with its blobs by snapshot.Import,
// or a plain core.StatefulService, restored by snapshot.ImportState.
//
// ref is a full id, a unique id prefix, a tag, or "latest": the newest
// snapshot of svc's service, accountID and region. With the blob cache on
// (see Options.CacheDir), the snapshot is first copied into the cache with
// snapshot.Copy, which transfers only the blobs the cache lacks, verifying
// each, and then imported from the cache; a full id the cache holds
// already is imported without opening repoURL at all.
//
// On failure it stops the test (t.Fatalf) with a message naming the
// repository (without credentials), the ref and the cause. It uses
// t.Context(), so it must run in the test's goroutine.
func RestoreWith[V any](t testing.TB, svc core.StatefulService[V], repoURL, ref, accountID, region string, opts *Options) *manifest.Manifest {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	rep := opts.Report
	if rep == nil {
		rep = &Report{}
	}
	*rep = Report{}
	err := restore(t.Context(), svc, repoURL, ref, accountID, region, opts, rep)
	if err != nil {
		t.Fatalf("snapshottest: restore %q from %s into %s %s/%s: %v", ref, store.RedactText(repoURL), svc.ServiceName(), accountID, region, err)
	}
	return rep.Manifest
}

// restore does the work of RestoreWith, recording it in rep.
func restore[V any](ctx context.Context, svc core.StatefulService[V], repoURL, ref, accountID, region string, opts *Options, rep *Report) error {
	cacheDir, err := cacheDir(opts.CacheDir)
	if err != nil {
		return err
	}
	var cache *snapshot.Repo
	if cacheDir != "" {
		if cache, err = snapshot.Open(ctx, cacheDir); err != nil {
			return fmt.Errorf("blob cache: %w", err)
		}
		defer cache.Close()
		rep.Cache = cacheDir
		if held, err := holds(ctx, cache, ref); err != nil || held {
			if err == nil {
				rep.Manifest, err = importFrom(ctx, cache, svc, ref, accountID, region, opts)
			}
			return fromCache(cacheDir, err)
		}
	}
	src, err := snapshot.Open(ctx, repoURL)
	if err != nil {
		return err
	}
	defer src.Close()
	if cache == nil || strings.HasPrefix(src.Location(), "file://") {
		rep.Cache = ""
		rep.Manifest, err = importFrom(ctx, src, svc, ref, accountID, region, opts)
		return err
	}
	cp, err := snapshot.Copy(ctx, src, cache, []string{ref}, &snapshot.CopyOptions{
		Filter:   snapshot.Filter{Service: svc.ServiceName(), Account: accountID, Region: region},
		NoTags:   true,
		Manifest: opts.Import.Manifest,
	})
	rep.Copy = cp
	if err != nil {
		return fmt.Errorf("copy into the blob cache %s: %w", cacheDir, err)
	}
	rep.Manifest, err = importFrom(ctx, cache, svc, cp.Snapshots[0].Manifest.ID.String(), accountID, region, opts)
	return fromCache(cacheDir, err)
}

// holds reports whether ref is a full snapshot id whose manifest the
// cache holds: then the repository need not be asked anything.
func holds(ctx context.Context, cache *snapshot.Repo, ref string) (bool, error) {
	if h, ok := digest.CutPrefix(ref); !ok || !digest.IsHex(h) {
		return false, nil
	}
	_, err := cache.Show(ctx, ref, snapshot.Filter{})
	if errors.Is(err, core.ErrNotFound) || errors.Is(err, core.ErrBucketNotFound) {
		return false, nil // not cached, or no cache yet
	}
	return err == nil, err
}

// fromCache says that err, if any, came from the blob cache in dir.
func fromCache(dir string, err error) error {
	if err != nil {
		return fmt.Errorf("from the blob cache %s (remove it if it is damaged): %w", dir, err)
	}
	return nil
}

// importFrom imports the snapshot ref names in r into svc.
func importFrom[V any](ctx context.Context, r *snapshot.Repo, svc core.StatefulService[V], ref, accountID, region string, opts *Options) (*manifest.Manifest, error) {
	iopts := opts.Import
	if bs, ok := svc.(core.BlobBackedService[V]); ok {
		return snapshot.Import(ctx, r, bs, accountID, region, ref, &iopts)
	}
	return snapshot.ImportState(ctx, r, svc, accountID, region, ref, &iopts)
}

// cacheDir returns the blob cache directory dir (an Options.CacheDir)
// selects, or "" for none.
func cacheDir(dir string) (string, error) {
	if dir == "" {
		env, set := os.LookupEnv(EnvCacheDir)
		if set && (env == "" || env == CacheOff) {
			return "", nil
		}
		dir = env
	}
	if dir == CacheOff {
		return "", nil
	}
	if dir == "" {
		user, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("blob cache: no user cache directory (set %s to a directory, or to %q): %w", EnvCacheDir, CacheOff, err)
		}
		dir = filepath.Join(user, "statebucket")
	}
	return dir, nil
}
