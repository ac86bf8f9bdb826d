package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/visitors"
)

// copyResult is the output of `copy --json`.
type copyResult struct {
	From             string         `json:"from"`
	To               string         `json:"to"`
	Snapshots        []copiedResult `json:"snapshots"`
	Tags             []copiedTag    `json:"tags"`
	Blobs            int            `json:"blobs"`
	Bytes            int64          `json:"bytes"`
	Transferred      int            `json:"transferred_blobs"`
	TransferredBytes int64          `json:"transferred_bytes"`
	Skipped          int            `json:"already_stored_blobs"`
}

// copiedResult is one snapshot in `copy --json`.
type copiedResult struct {
	snapshotSummary
	Existed bool `json:"existed"` // the target held it already
}

// copiedTag is one tag in `copy --json`.
type copiedTag struct {
	Name     string        `json:"name"`
	Snapshot digest.Digest `json:"snapshot"`
	Previous digest.Digest `json:"previous,omitempty"` // where it pointed on the target before
}

func (a *app) copyCmd() *cobra.Command {
	var from, to string
	var opts snapshot.CopyOptions
	cmd := &cobra.Command{
		Use:   "copy --to URL [--from URL] REF...",
		Short: "Copy snapshots, with their tags, to another repository",
		Long: `copy copies the snapshots the REFs name from --from (default: --repo) to --to,
with the tags that point at them (unless --no-tags). A REF is a full id, a
unique id prefix, a tag, or latest (the newest snapshot, of --service,
--account and --region when given).

Only the blobs the target lacks move, in parallel, streamed from source to
target with each blob's size and SHA-256 checked before it is stored; the
manifest is written last, with the source's exact bytes, so a copied
snapshot keeps its id and signature. A tag the target has pointing
elsewhere is moved to follow the source, and the output says where it
pointed. A snapshot the target holds already is not copied again.

An interrupted copy leaves only whole snapshots on the target; run it
again to finish. This is how a CI runner pulls a fixture to local disk:

  statebucket copy --from s3://fixtures/repo?region=eu-west-1 --to ./fixtures my-fixture

Exit codes: 3 when a REF names no snapshot or --from does not exist; 4
when a source blob, view or manifest is damaged (the error names the key;
the target then holds no manifest and no tag of that snapshot); see
"statebucket --help" for the others.`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 0:
				return usageError{fmt.Errorf("%s: give at least one REF", cmd.CommandPath())}
			case to == "":
				return usageError{fmt.Errorf("%s: --to is required", cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, refs []string) error {
			if from == "" {
				from = a.repoURL
			}
			return a.copy(cmd.Context(), from, to, refs, &opts)
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "source repository URL or directory (default --repo)")
	cmd.Flags().StringVar(&to, "to", "", "target repository URL or directory (required)")
	cmd.Flags().BoolVar(&opts.NoTags, "no-tags", false, "copy the snapshots without their tags")
	filterFlags(cmd, &opts.Filter)
	return cmd
}

// openURL opens the repository at rawURL; a malformed URL is a usage
// error.
func openURL(ctx context.Context, rawURL string) (*snapshot.Repo, error) {
	r, err := snapshot.Open(ctx, rawURL)
	if err != nil && errors.Is(err, core.ErrInvalid) {
		return nil, usageError{err}
	}
	return r, err
}

func (a *app) copy(ctx context.Context, fromURL, toURL string, refs []string, opts *snapshot.CopyOptions) error {
	from, err := openURL(ctx, fromURL)
	if err != nil {
		return err
	}
	defer from.Close()
	to, err := openURL(ctx, toURL)
	if err != nil {
		return err
	}
	defer to.Close()

	opts.Manifest.HMACKey = a.signingKey
	var bar *progress
	opts.OnStart = func(blobs int, _ int64) { bar = a.newProgress("copy", int64(blobs)) }
	opts.Visitor.OnBlob = func(visitors.Event) { bar.add(1) }
	rep, err := snapshot.Copy(ctx, from, to, refs, opts)
	if bar != nil {
		bar.finish()
	}
	if rep == nil {
		return checkRef(err)
	}
	res := copyResult{
		From: from.Location(), To: to.Location(),
		Snapshots: []copiedResult{}, Tags: []copiedTag{},
		Blobs: rep.Blobs, Bytes: rep.Bytes, Transferred: rep.Transferred, TransferredBytes: rep.TransferredBytes, Skipped: rep.Skipped,
	}
	for _, s := range rep.Snapshots {
		res.Snapshots = append(res.Snapshots, copiedResult{snapshotSummary: summarize(s.Manifest), Existed: s.Existed})
	}
	for _, t := range rep.Tags {
		res.Tags = append(res.Tags, copiedTag(t))
	}
	if a.json {
		a.writeJSON(a.stdout, res)
		return err
	}
	w := a.stdout
	for _, s := range res.Snapshots {
		what := "copied"
		if s.Existed {
			what = "already there"
		}
		fmt.Fprintf(w, "%s  %s %s/%s  %s\n", s.ID, displayText(s.Service), displayText(s.Account), displayText(s.Region), what)
	}
	for _, t := range res.Tags {
		moved := ""
		if t.Previous != "" {
			moved = fmt.Sprintf(" (moved from %s)", t.Previous.Short())
		}
		fmt.Fprintf(w, "tag %s -> %s%s\n", displayText(t.Name), t.Snapshot.Short(), moved)
	}
	fmt.Fprintf(w, "%d blobs (%s): %d transferred (%s), %d already stored or duplicates\n",
		res.Blobs, humanBytes(res.Bytes), res.Transferred, humanBytes(res.TransferredBytes), res.Skipped)
	return err
}
