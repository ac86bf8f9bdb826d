package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/statebucket/statebucket/snapshot"
)

// rmResult is the output of `rm --json`.
type rmResult struct {
	Removed []snapshot.Removed `json:"removed"`
}

func (a *app) rmCmd() *cobra.Command {
	var opts snapshot.RemoveOptions
	cmd := &cobra.Command{
		Use:   "rm [--keep-tags] REF...",
		Short: "Remove snapshots and the tags that point at them",
		Long: `rm removes the snapshots the REFs name (ids, unique id prefixes, tags, or
latest) and, unless --keep-tags, the tags that point at them. Every REF is
resolved first: one that names no snapshot is exit code 3, and nothing is
removed. Each snapshot's manifest, the commit point, goes first, so it
disappears whole at once; then its view; then its tags. Its blobs stay
until gc finds that no snapshot references them. A snapshot whose manifest
is damaged can be removed by its full id.

With $STATEBUCKET_SIGNING_KEY set, a REF that is a tag must be signed with
that key.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("%s: name at least one snapshot", cmd.CommandPath())}
			}
			return nil
		},
		RunE: a.withRepo(func(ctx context.Context, r *snapshot.Repo, args []string) error {
			bar := a.newProgress("rm", int64(len(args)))
			opts.SigningKey = a.signingKey
			opts.OnRemoved = func(rm snapshot.Removed) {
				bar.add(1)
				if !a.json {
					tags := ""
					if len(rm.Tags) > 0 {
						tags = " and tag(s) " + strings.Join(rm.Tags, ", ")
					}
					fmt.Fprintf(a.stdout, "removed snapshot %s%s\n", rm.ID, tags)
				}
			}
			removed, err := r.Remove(ctx, args, &opts)
			bar.finish()
			if a.json {
				if removed == nil {
					removed = []snapshot.Removed{}
				}
				a.writeJSON(a.stdout, rmResult{Removed: removed})
			}
			return checkRef(err)
		}),
	}
	filterFlags(cmd, &opts.Filter)
	cmd.Flags().BoolVar(&opts.KeepTags, "keep-tags", false, "leave the tags that point at removed snapshots (they then name nothing)")
	return cmd
}
