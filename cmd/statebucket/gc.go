package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/snapshot"
)

// gcResult is the output of `gc --json`.
type gcResult struct {
	*snapshot.GCReport
	Grace string `json:"grace"`
}

func (a *app) gcCmd() *cobra.Command {
	var opts snapshot.GCOptions
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "gc [--dry-run] [--grace DURATION]",
		Short: "Delete blobs no snapshot references, and leftovers of interrupted exports",
		Long: `gc deletes the blobs that no snapshot's manifest references, the views of
snapshots that were never committed (interrupted exports) or were removed,
stale temporary files, and stale locks, and reports what it deleted, with
counts and bytes. Blobs and views stored less than --grace ago are kept:
they may belong to an export still running. Temporary files are removed
once older than --grace (with --grace 0, than an hour) and their writing
process is gone.

gc takes an exclusive lock on the repository: while any export runs (its
shared lock is live) gc refuses to start, naming the locks, with exit
code 6; while gc runs, exports fail at once. A lock whose holder died goes
stale after 30 minutes without a refresh, or at once when its holder was a
process of this host that no longer runs; gc removes stale locks. A
manifest that cannot be read stops gc before it deletes anything.

--dry-run reports what gc would delete now (temporary files aside),
deletes nothing, takes no lock, and lists the live locks that would make
gc refuse.`,
		Args: exactArgs(0),
		RunE: a.withRepo(func(ctx context.Context, r *snapshot.Repo, _ []string) error {
			opts.Grace = grace
			if grace == 0 {
				opts.Grace = -1 // none
			}
			label := "gc"
			if opts.DryRun {
				label = "gc (dry run)"
			}
			var bar *progress
			opts.OnPlan = func(objects int, _ int64) { bar = a.newProgress(label, int64(objects)) }
			opts.OnDelete = func(int64) { bar.add(1) }
			rep, err := r.GC(ctx, &opts)
			if bar != nil {
				bar.finish()
			}
			if rep == nil {
				return err
			}
			if a.json {
				a.writeJSON(a.stdout, gcResult{GCReport: rep, Grace: rep.Grace.String()})
				return err
			}
			a.printGC(rep)
			return err
		}),
	}
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "report what would be deleted; delete nothing")
	cmd.Flags().DurationVar(&grace, "grace", snapshot.DefaultGrace, "keep unreferenced blobs and views younger than this (0: none)")
	return cmd
}

// printGC prints a collection's report as text.
func (a *app) printGC(rep *snapshot.GCReport) {
	verb := "deleted"
	if rep.DryRun {
		verb = "would delete"
	}
	fmt.Fprintf(a.stdout, "%d snapshot(s) reference %d blob(s) (%s)\n", rep.Snapshots, rep.Referenced.Objects, humanBytes(rep.Referenced.Bytes))
	fmt.Fprintf(a.stdout, "%s %d unreferenced blob(s) (%s), %d view(s) without a snapshot (%s), %d stale lock(s)\n",
		verb, rep.Blobs.Objects, humanBytes(rep.Blobs.Bytes), rep.Views.Objects, humanBytes(rep.Views.Bytes), len(rep.StaleLocks))
	if !rep.DryRun {
		fmt.Fprintf(a.stdout, "removed %d temporary file(s) of interrupted writes\n", rep.TempFiles)
	}
	if rep.Young.Objects > 0 {
		fmt.Fprintf(a.stdout, "kept %d unreferenced object(s) (%s) stored less than %s ago\n", rep.Young.Objects, humanBytes(rep.Young.Bytes), rep.Grace)
	}
	for _, l := range rep.LiveLocks {
		fmt.Fprintf(a.stdout, "gc would refuse to start now: %s lock %s held by pid %d on %s\n", l.Kind, l.ID, l.PID, displayText(l.Host))
	}
}

// lockHint says what to do about a lock conflict.
func lockHint() string {
	return fmt.Sprintf("another process (an export, or a gc) holds a lock on the repository: try again once it ends; a lock left by a killed process goes stale after %s, or at once if it was a process of this host",
		repo.DefaultLockStaleAge)
}
