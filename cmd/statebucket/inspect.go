package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store"
)

// filterFlags adds --service, --account and --region to cmd.
func filterFlags(cmd *cobra.Command, f *snapshot.Filter) {
	cmd.Flags().StringVar(&f.Service, "service", "", "only snapshots of this service")
	cmd.Flags().StringVar(&f.Account, "account", "", "only snapshots of this account")
	cmd.Flags().StringVar(&f.Region, "region", "", "only snapshots of this region")
}

// snapshotSummary is one line of `ls` and the head of `show`.
type snapshotSummary struct {
	ID       string    `json:"id"`
	Created  time.Time `json:"created"`
	Service  string    `json:"service"`
	Account  string    `json:"account"`
	Region   string    `json:"region"`
	Blobs    int       `json:"blobs"`
	Bytes    int64     `json:"bytes"`
	ViewSize int64     `json:"view_bytes"`
	Producer string    `json:"producer"`
	Signed   bool      `json:"signed"`
}

func summarize(m *manifest.Manifest) snapshotSummary {
	return snapshotSummary{
		ID: m.ID, Created: m.Created, Service: m.Service, Account: m.Account, Region: m.Region,
		Blobs: len(m.Blobs), Bytes: m.TotalSize(), ViewSize: m.View.Size,
		Producer: m.Producer + " " + m.ProducerVersion, Signed: m.Signature != "",
	}
}

func (a *app) lsCmd() *cobra.Command {
	var f snapshot.Filter
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the snapshots in the repository, newest first",
		Args:  exactArgs(0),
		RunE: a.withRepo(func(ctx context.Context, repo *snapshot.Repo, _ []string) error {
			ms, err := repo.List(ctx, f)
			if err != nil {
				return err
			}
			out := make([]snapshotSummary, len(ms))
			for i, m := range ms {
				out[i] = summarize(m)
			}
			if a.json {
				a.writeJSON(a.stdout, out)
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCREATED\tSERVICE\tACCOUNT\tREGION\tBLOBS\tSIZE")
			for _, s := range out {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.ID[len("sha256:"):len("sha256:")+12], s.Created.Local().Format(time.DateTime),
					s.Service, s.Account, s.Region, s.Blobs, humanBytes(s.Bytes))
			}
			return tw.Flush()
		}),
	}
	filterFlags(cmd, &f)
	return cmd
}

func (a *app) showCmd() *cobra.Command {
	var f snapshot.Filter
	var blobs bool
	cmd := &cobra.Command{
		Use:   "show REF",
		Short: "Show one snapshot: REF is an id, a unique id prefix, a tag, or latest",
		Args:  exactArgs(1),
		RunE: a.withRepo(func(ctx context.Context, repo *snapshot.Repo, args []string) error {
			m, err := repo.Show(ctx, args[0], f)
			if err != nil {
				return err
			}
			if a.json {
				if blobs {
					data, err := manifest.Encode(m)
					if err != nil {
						return err
					}
					_, err = a.stdout.Write(data)
					return err
				}
				a.writeJSON(a.stdout, summarize(m))
				return nil
			}
			s := summarize(m)
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "id\t%s\n", s.ID)
			fmt.Fprintf(tw, "created\t%s\n", s.Created.Format(time.RFC3339))
			fmt.Fprintf(tw, "producer\t%s\n", s.Producer)
			fmt.Fprintf(tw, "service\t%s\n", s.Service)
			fmt.Fprintf(tw, "account\t%s\n", s.Account)
			fmt.Fprintf(tw, "region\t%s\n", s.Region)
			fmt.Fprintf(tw, "view\t%s (%s)\n", m.View.Digest, humanBytes(m.View.Size))
			fmt.Fprintf(tw, "blobs\t%d (%s)\n", s.Blobs, humanBytes(s.Bytes))
			fmt.Fprintf(tw, "signed\t%t\n", s.Signed)
			if blobs {
				for _, e := range m.Blobs {
					fmt.Fprintf(tw, "  %s\t%s\t%d\n", printableKey(e.Key), e.Digest[len("sha256:"):len("sha256:")+12], e.Size)
				}
			}
			return tw.Flush()
		}),
	}
	filterFlags(cmd, &f)
	cmd.Flags().BoolVar(&blobs, "blobs", false, "list every blob (with --json: print the whole manifest)")
	return cmd
}

// printableKey quotes keys that would garble a terminal.
func printableKey(k string) string {
	for _, r := range k {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError || r == '\t' || r == ' ' {
			return fmt.Sprintf("%q", k)
		}
	}
	if k == "" {
		return `""`
	}
	return k
}

type verifyResult struct {
	Snapshot    string   `json:"snapshot"`
	ReadData    bool     `json:"read_data"`
	Blobs       int      `json:"blobs"`
	UniqueBlobs int      `json:"unique_blobs"`
	Bytes       int64    `json:"bytes"`
	OK          bool     `json:"ok"`
	Problems    []string `json:"problems"`
}

func (a *app) verifyCmd() *cobra.Command {
	var opts snapshot.VerifyOptions
	cmd := &cobra.Command{
		Use:   "verify REF",
		Short: "Check that a snapshot is whole; with --read-data, re-hash every blob",
		Args:  exactArgs(1),
		RunE: a.withRepo(func(ctx context.Context, repo *snapshot.Repo, args []string) error {
			m, err := repo.Show(ctx, args[0], opts.Filter)
			if err != nil {
				return err
			}
			label := "check"
			if opts.ReadData {
				label = "read"
			}
			bar := a.newProgress(label, int64(len(m.Blobs)))
			opts.OnBlob = func(int64) { bar.add(1) }
			rep, verr := repo.Verify(ctx, m.ID, &opts)
			bar.finish()
			if rep == nil {
				return verr
			}
			res := verifyResult{Snapshot: m.ID, ReadData: opts.ReadData, Blobs: rep.Blobs, UniqueBlobs: rep.UniqueBlobs, Bytes: rep.Bytes, OK: verr == nil, Problems: []string{}}
			for _, p := range rep.Problems {
				res.Problems = append(res.Problems, p.Err.Error())
			}
			if a.json {
				a.writeJSON(a.stdout, res)
			} else {
				what := "exist with the recorded sizes"
				if opts.ReadData {
					what = "match their recorded digests"
				}
				if verr == nil {
					fmt.Fprintf(a.stdout, "snapshot %s is whole: view and %d blobs (%d distinct, %s) %s\n", m.ID, res.Blobs, res.UniqueBlobs, humanBytes(res.Bytes), what)
				} else {
					fmt.Fprintf(a.stdout, "snapshot %s has %d problem(s):\n", m.ID, len(res.Problems))
					for _, p := range res.Problems {
						fmt.Fprintf(a.stdout, "  %s\n", p)
					}
				}
			}
			return verr
		}),
	}
	filterFlags(cmd, &opts.Filter)
	cmd.Flags().BoolVar(&opts.ReadData, "read-data", false, "download every blob and check its SHA-256")
	return cmd
}

func (a *app) tagCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "tag NAME REF",
		Short: "Point the tag NAME at a snapshot (creating or moving it)",
		Args:  exactArgs(2),
		PreRunE: func(_ *cobra.Command, args []string) error {
			if err := store.ValidTag(args[0]); err != nil {
				return usageError{err}
			}
			return nil
		},
		RunE: a.withRepo(func(ctx context.Context, repo *snapshot.Repo, args []string) error {
			m, err := repo.Show(ctx, args[1], snapshot.Filter{})
			if err != nil {
				return err
			}
			if _, err := repo.Tag(ctx, args[0], m.ID); err != nil {
				return err
			}
			if a.json {
				a.writeJSON(a.stdout, map[string]string{"tag": args[0], "snapshot": m.ID})
			} else {
				fmt.Fprintf(a.stdout, "tag %s -> %s\n", args[0], m.ID)
			}
			return nil
		}),
	}
}
