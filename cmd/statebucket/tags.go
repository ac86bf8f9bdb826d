package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/snapshot"
)

// tagInfo is a tag in the output of tag, tags and untag.
type tagInfo struct {
	Name     string        `json:"name"`
	Snapshot digest.Digest `json:"snapshot"`
	Updated  time.Time     `json:"updated"`
	Signed   bool          `json:"signed"`
}

func newTagInfo(t repo.Tag) tagInfo {
	return tagInfo{Name: t.Name, Snapshot: t.Snapshot, Updated: t.Updated, Signed: t.Signature != ""}
}

// tagResult is the output of `tag --json`.
type tagResult struct {
	Tag      tagInfo  `json:"tag"`
	Previous *tagInfo `json:"previous"` // null for a new tag
	// Unconditional is true when the store cannot compare and swap, so the
	// tag was moved without checking for a concurrent move.
	Unconditional bool `json:"unconditional"`
}

// checkTagName refuses a bad tag name as bad usage, before any I/O.
func checkTagName(_ *cobra.Command, args []string) error {
	if err := repo.ValidTag(args[0]); err != nil {
		return usageError{err}
	}
	return nil
}

func (a *app) tagCmd() *cobra.Command {
	var opts snapshot.TagOptions
	cmd := &cobra.Command{
		Use:   "tag [--force] NAME REF",
		Short: "Point the tag NAME at a snapshot (creating or moving it)",
		Long: `tag points the tag NAME at the snapshot REF names, creating or moving it.

REF is a full id, a unique id prefix of 4 or more hex digits (with or
without sha256: before them), a tag, or latest. So that a ref always names
one thing, NAME is 1 to 128 letters, digits, '.', '_' and '-', and is never
something a ref reads otherwise: 4 to 64 lowercase hex digits (with or
without sha256:) and latest (in any case) are refused, with exit code 2.
An id prefix that matches several snapshots is refused too, listing them.

Moving a tag is a compare-and-swap where the storage can (S3 If-Match, a
locked rename in a local directory): if another writer creates, moves or
removes the tag at the same time, this move is not made, and tag exits
with code 6, naming where the tag points now. --force moves it anyway.

With $STATEBUCKET_SIGNING_KEY set, the tag is signed, and REF (when a
tag) and the snapshot must be signed with that key.`,
		Args:    exactArgs(2),
		PreRunE: checkTagName,
		RunE: a.withRepo(func(ctx context.Context, r *snapshot.Repo, args []string) error {
			opts.SigningKey = a.signingKey
			res, err := r.Tag(ctx, args[0], args[1], &opts)
			if err != nil {
				return checkRef(err)
			}
			out := tagResult{Tag: newTagInfo(res.Tag), Unconditional: res.Unconditional}
			if res.Previous != nil {
				prev := newTagInfo(*res.Previous)
				out.Previous = &prev
			}
			if res.Unconditional && !a.json {
				fmt.Fprintln(a.stderr, "statebucket: warning: this storage cannot compare and swap: the tag was moved without checking for a concurrent move")
			}
			if a.json {
				a.writeJSON(a.stdout, out)
				return nil
			}
			was := ""
			if p := res.Previous; p != nil && p.Snapshot != res.Tag.Snapshot {
				was = fmt.Sprintf(" (was %s)", p.Snapshot.Short())
			}
			fmt.Fprintf(a.stdout, "tag %s -> %s%s\n", displayText(args[0]), res.Tag.Snapshot, was)
			return nil
		}),
	}
	filterFlags(cmd, &opts.Filter)
	cmd.Flags().BoolVar(&opts.Force, "force", false, "move the tag even if another writer moved it meanwhile (last writer wins)")
	return cmd
}

// tagsResult is the output of `tags --json`.
type tagsResult struct {
	Tags    []tagInfo    `json:"tags"`
	Invalid []invalidTag `json:"invalid"`
}

// invalidTag is a tag that tags could not read, or whose signature failed.
type invalidTag struct {
	Name  string `json:"name"`
	Error string `json:"error"`
}

// readTags reads every tag with the signing key, showing progress under
// label unless it is empty, and returns the valid ones and the error
// naming the invalid ones, if any.
func (a *app) readTags(ctx context.Context, r *snapshot.Repo, label string) ([]repo.Tag, *snapshot.TagsError, error) {
	var bar *progress
	opts := &snapshot.TagsOptions{SigningKey: a.signingKey}
	if label != "" {
		opts.OnStart = func(n int) { bar = a.newProgress(label, int64(n)) }
		opts.OnTag = func() { bar.add(1) }
	}
	tags, err := r.Tags(ctx, opts)
	if bar != nil {
		bar.finish()
	}
	var terr *snapshot.TagsError
	if err != nil && !errors.As(err, &terr) {
		return nil, nil, err
	}
	return tags, terr, nil
}

func (a *app) tagsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "tags",
		Short: "List the tags: name, snapshot, last update",
		Long: `tags lists every tag, sorted by name, with the short id of the snapshot it
points at and when it was last moved. A tag whose record is damaged (or,
with $STATEBUCKET_SIGNING_KEY set, not signed with that key) does not
hide the others: tags lists the valid ones, names the invalid ones on
stderr (with --json, also in "invalid" on stdout), and exits with code 4.`,
		Args: exactArgs(0),
		RunE: a.withRepo(func(ctx context.Context, r *snapshot.Repo, _ []string) error {
			tags, terr, err := a.readTags(ctx, r, "tags")
			if err != nil {
				return err
			}
			res := tagsResult{Tags: make([]tagInfo, len(tags)), Invalid: []invalidTag{}}
			for i, t := range tags {
				res.Tags[i] = newTagInfo(t)
			}
			if terr != nil {
				for _, t := range terr.Invalid {
					res.Invalid = append(res.Invalid, invalidTag{Name: t.Name, Error: t.Err.Error()})
				}
				err = terr
			}
			if a.json {
				a.writeJSON(a.stdout, res)
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TAG\tSNAPSHOT\tUPDATED\tSIGNED")
			for _, t := range res.Tags {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%t\n", t.Name, t.Snapshot.Short(), t.Updated.Local().Format(time.DateTime), t.Signed)
			}
			if ferr := tw.Flush(); ferr != nil {
				return ferr
			}
			return err
		}),
	}
}

// untagResult is the output of `untag --json`.
type untagResult struct {
	Removed []tagInfo `json:"removed"`
}

func (a *app) untagCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "untag NAME...",
		Short: "Remove tags (the snapshots they point at stay)",
		Long: `untag removes each tag NAME; the snapshots they point at stay. A tag that
does not exist is exit code 3; the tags named before it are removed.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("%s: name at least one tag", cmd.CommandPath())}
			}
			for _, name := range args {
				if err := repo.ValidTag(name); err != nil {
					return usageError{err}
				}
			}
			return nil
		},
		RunE: a.withRepo(func(ctx context.Context, r *snapshot.Repo, args []string) error {
			res := untagResult{Removed: []tagInfo{}}
			var err error
			for _, name := range args {
				var t repo.Tag
				if t, err = r.Untag(ctx, name); err != nil {
					break
				}
				res.Removed = append(res.Removed, newTagInfo(t))
				if !a.json {
					was := "its record was damaged"
					if t.Snapshot != "" {
						was = "was " + t.Snapshot.Short()
					}
					fmt.Fprintf(a.stdout, "untagged %s (%s)\n", name, was)
				}
			}
			if a.json {
				a.writeJSON(a.stdout, res)
			}
			return err
		}),
	}
}
