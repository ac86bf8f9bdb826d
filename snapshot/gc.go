package snapshot

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/repo"
)

// DefaultGrace is the grace period of a garbage collection when
// GCOptions.Grace is 0.
const DefaultGrace = time.Hour

// GCOptions configure [Repo.GC]. nil means the zero value.
type GCOptions struct {
	// DryRun reports what a collection would delete now, deleting
	// nothing and taking no lock; GCReport.LiveLocks names the locks that
	// would make it refuse to start.
	DryRun bool
	// Grace keeps unreferenced blobs and views stored more recently than
	// this long ago (by their modification times, the store's clock), and
	// temporary objects of interrupted writes younger than it (with no
	// grace, younger than the store's default: an hour for a local
	// directory, whose writers still alive keep theirs whatever their
	// age). 0 means DefaultGrace; negative means none.
	Grace time.Duration
	// OnPlan, if set, is called once the collection knows what it will
	// delete: how many objects (blobs and views), and their bytes.
	OnPlan func(objects int, bytes int64)
	// OnDelete, if set, is called after each blob or view is deleted (in
	// a dry run, counted), possibly from several goroutines at once.
	OnDelete func(bytes int64)
}

// Count is a number of stored objects and their total size.
type Count struct {
	Objects int   `json:"objects"`
	Bytes   int64 `json:"bytes"`
}

func (c *Count) add(size int64) {
	c.Objects++
	c.Bytes += size
}

// GCReport says what [Repo.GC] found, and deleted or, in a dry run,
// would delete.
type GCReport struct {
	DryRun    bool          `json:"dry_run"`
	Grace     time.Duration `json:"grace_ns"`
	Snapshots int           `json:"snapshots"` // committed snapshots, whose blobs and views are kept
	// Referenced are the stored blobs some manifest references.
	Referenced Count `json:"referenced_blobs"`
	// Blobs are the blobs no manifest references, deleted.
	Blobs Count `json:"blobs"`
	// Views are the views of snapshots without a manifest (exports that
	// never committed, or removed snapshots), deleted.
	Views Count `json:"views"`
	// Young are the unreferenced blobs and views kept because they are
	// younger than the grace period: they may belong to an export still
	// running.
	Young Count `json:"young"`
	// TempFiles is the number of temporary objects of interrupted writes
	// removed, on stores that leave such debris (see store.Cleaner). A dry
	// run does not count them.
	TempFiles int `json:"temp_files"`
	// Heads is the number of heads removed (in a dry run, found) whose
	// snapshot is gone or whose record is damaged (see docs/design.md,
	// "Deduplication").
	Heads int `json:"heads"`
	// StaleLocks are the locks left by processes that died or lost the
	// repository, removed.
	StaleLocks []repo.LockInfo `json:"stale_locks"`
	// LiveLocks, in a dry run, are the locks that would make a collection
	// refuse to start now.
	LiveLocks []repo.LockInfo `json:"live_locks"`
}

// GC deletes what no committed snapshot needs: the blobs no manifest
// references and the views of snapshots without a manifest, both only
// when older than the grace period; the stale temporary objects of
// interrupted writes; stale locks; and the heads of scopes whose snapshot
// is gone. It returns what it deleted.
//
// A collection runs beside exports on other machines without ever leaving
// a committed manifest that references a missing blob (see
// docs/design.md, "Locks and garbage collection"): it takes an exclusive
// lock, and refuses to start, with an error matching core.ErrConflict that
// names them, while any export holds a live shared lock; it removes the
// stale locks before it lists the manifests, so that an export whose lock
// was taken for stale finds it gone when it checks its lock after its
// commit, and withdraws that commit; and it checks its own lock before
// each round of deletions. A manifest that cannot be read or decoded
// makes it fail before it deletes anything: the blobs that manifest
// references are unknown.
func (r *Repo) GC(ctx context.Context, opts *GCOptions) (*GCReport, error) {
	var o GCOptions
	if opts != nil {
		o = *opts
	}
	switch {
	case o.Grace == 0:
		o.Grace = DefaultGrace
	case o.Grace < 0:
		o.Grace = 0
	}
	rep := &GCReport{DryRun: o.DryRun, Grace: o.Grace, StaleLocks: []repo.LockInfo{}, LiveLocks: []repo.LockInfo{}}
	var lock *repo.Lock
	if !o.DryRun {
		// A read first: a repository that is not there is reported, not
		// created by the lock's write.
		if _, err := r.r.ListSnapshots(ctx); err != nil {
			return nil, fmt.Errorf("snapshot: gc: %w", err)
		}
		var err error
		if lock, err = r.r.Lock(ctx, repo.ExclusiveLock); err != nil {
			return nil, fmt.Errorf("snapshot: gc: %w", err)
		}
	}
	err := r.collect(ctx, lock, &o, rep)
	if lock != nil {
		// Released even when ctx is done: a lock left behind would stop
		// every export until it goes stale.
		if uerr := lock.Unlock(context.WithoutCancel(ctx)); uerr != nil {
			err = errors.Join(err, fmt.Errorf("snapshot: gc: %w", uerr))
		}
	}
	if err != nil {
		return rep, err
	}
	return rep, nil
}

// removeStaleHeads removes the heads that name no committed snapshot,
// the ids in committed, or whose records are damaged: hints that no
// export could use. In a dry run (lock nil) it only counts them. A head
// an export writes after the collection read it (an export whose lock
// the collection took for stale) may go: a head is a hint.
func (r *Repo) removeStaleHeads(ctx context.Context, lock *repo.Lock, committed map[digest.Digest]bool, rep *GCReport) error {
	scopes, err := r.r.ListHeads(ctx)
	if err != nil {
		return err
	}
	for _, scope := range scopes {
		h, err := r.r.ReadHeadScope(ctx, scope)
		switch {
		case repo.IsNotFound(err):
			continue
		case err != nil && !errors.Is(err, core.ErrCorrupt):
			return err
		case err == nil && committed[h.Snapshot]:
			continue
		}
		if lock != nil {
			if err := r.r.DeleteHead(ctx, scope); err != nil && !repo.IsNotFound(err) {
				return err
			}
		}
		rep.Heads++
	}
	return nil
}

// garbage is what a collection found to delete.
type garbage struct {
	blobs []repo.Object
	views []repo.Object
}

// collect runs the collection of GC, holding lock (nil in a dry run).
func (r *Repo) collect(ctx context.Context, lock *repo.Lock, o *GCOptions, rep *GCReport) error {
	if err := r.removeStaleLocks(ctx, lock, rep); err != nil {
		return fmt.Errorf("snapshot: gc: %w", err)
	}
	referenced, committed, err := r.references(ctx)
	if err != nil {
		return fmt.Errorf("snapshot: gc: %w", err)
	}
	rep.Snapshots = len(committed)
	g, err := r.findGarbage(ctx, referenced, committed, o.Grace, rep)
	if err != nil {
		return fmt.Errorf("snapshot: gc: %w", err)
	}
	if o.OnPlan != nil {
		o.OnPlan(rep.Blobs.Objects+rep.Views.Objects, rep.Blobs.Bytes+rep.Views.Bytes)
	}
	if err := r.deleteAll(ctx, lock, g.blobs, r.r.DeleteBlob, o); err != nil {
		return fmt.Errorf("snapshot: gc: delete blobs: %w", err)
	}
	if err := r.deleteAll(ctx, lock, g.views, r.r.DeleteView, o); err != nil {
		return fmt.Errorf("snapshot: gc: delete views: %w", err)
	}
	if err := r.removeStaleHeads(ctx, lock, committed, rep); err != nil {
		return fmt.Errorf("snapshot: gc: heads: %w", err)
	}
	if o.DryRun {
		return nil
	}
	n, err := r.r.Store().CleanStale(ctx, o.Grace)
	rep.TempFiles = n
	if err != nil {
		return fmt.Errorf("snapshot: gc: temporary objects: %w", err)
	}
	return nil
}

// removeStaleLocks removes the stale locks of other processes, or in a
// dry run (lock nil) only reports them, and the live ones.
func (r *Repo) removeStaleLocks(ctx context.Context, lock *repo.Lock, rep *GCReport) error {
	locks, err := r.r.Locks(ctx)
	if err != nil {
		return err
	}
	for _, l := range locks {
		switch {
		case lock != nil && l.ID == lock.Info().ID:
		case !l.Stale:
			rep.LiveLocks = append(rep.LiveLocks, l)
		case lock == nil:
			rep.StaleLocks = append(rep.StaleLocks, l)
		default:
			if err := r.r.RemoveLock(ctx, l.ID); err != nil && !repo.IsNotFound(err) {
				return err
			}
			rep.StaleLocks = append(rep.StaleLocks, l)
		}
	}
	return nil
}

// references reads every committed manifest and returns the digests of
// the blobs they reference and the ids of the snapshots. A manifest that
// fails to read is an error: what it references is unknown.
func (r *Repo) references(ctx context.Context) (map[digest.Digest]bool, map[digest.Digest]bool, error) {
	ids, err := r.r.ListSnapshots(ctx)
	if err != nil {
		return nil, nil, err
	}
	referenced, committed := map[digest.Digest]bool{}, map[digest.Digest]bool{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.r.Budget().MaxRequests())
	for _, id := range ids {
		g.Go(func() error {
			m, err := r.r.ReadManifest(gctx, id, nil)
			switch {
			case repo.IsNotFound(err):
				return nil // removed since it was listed
			case err != nil:
				return fmt.Errorf("%w; the blobs of snapshot %s are unknown, so nothing was deleted: remove it (statebucket rm %s) or restore its manifest, then run gc again",
					err, id.Short(), id.Hex())
			}
			mu.Lock()
			defer mu.Unlock()
			committed[id] = true
			for _, e := range m.Blobs {
				referenced[e.Digest] = true
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	return referenced, committed, nil
}

// findGarbage lists the blobs and views, counts them in rep, and returns
// those to delete: unreferenced, uncommitted, and older than grace.
func (r *Repo) findGarbage(ctx context.Context, referenced, committed map[digest.Digest]bool, grace time.Duration, rep *GCReport) (*garbage, error) {
	cutoff := r.r.Now().Add(-grace)
	g := &garbage{}
	// classify returns the listing callback that counts each object whose
	// digest is in keep in kept, and sorts the others by age.
	classify := func(keep map[digest.Digest]bool, kept, deleted *Count, out *[]repo.Object) func(repo.Object) error {
		return func(o repo.Object) error {
			switch {
			case keep[o.Digest]:
				kept.add(o.Size)
			case o.ModTime.After(cutoff):
				rep.Young.add(o.Size)
			default:
				deleted.add(o.Size)
				*out = append(*out, o)
			}
			return nil
		}
	}
	if err := r.r.ListBlobObjects(ctx, classify(referenced, &rep.Referenced, &rep.Blobs, &g.blobs)); err != nil {
		return nil, err
	}
	var views Count // committed snapshots' views: counted by rep.Snapshots
	if err := r.r.ListViews(ctx, classify(committed, &views, &rep.Views, &g.views)); err != nil {
		return nil, err
	}
	return g, nil
}

// deleteAll deletes objects with del, in parallel within the budget,
// after checking that lock is still held; in a dry run (lock nil) it only
// reports them to o.OnDelete.
func (r *Repo) deleteAll(ctx context.Context, lock *repo.Lock, objects []repo.Object, del func(context.Context, digest.Digest) error, o *GCOptions) error {
	if len(objects) == 0 {
		return nil
	}
	if lock != nil {
		if err := lock.Check(ctx); err != nil {
			return err
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.r.Budget().MaxRequests())
	for _, obj := range objects {
		g.Go(func() error {
			if lock != nil {
				if err := del(gctx, obj.Digest); err != nil && !repo.IsNotFound(err) {
					return err
				}
			}
			if o.OnDelete != nil {
				o.OnDelete(obj.Size)
			}
			return nil
		})
	}
	return g.Wait()
}
