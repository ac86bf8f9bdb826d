package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/snapshot"
)

// filterFlags adds --service, --account and --region to cmd.
func filterFlags(cmd *cobra.Command, f *snapshot.Filter) {
	cmd.Flags().StringVar(&f.Service, "service", "", "only snapshots of this service")
	cmd.Flags().StringVar(&f.Account, "account", "", "only snapshots of this account")
	cmd.Flags().StringVar(&f.Region, "region", "", "only snapshots of this region")
}

// snapshotSummary is one line of `ls` and the head of `show`.
type snapshotSummary struct {
	ID       digest.Digest `json:"id"`
	Created  time.Time     `json:"created"`
	Service  string        `json:"service"`
	Account  string        `json:"account"`
	Region   string        `json:"region"`
	Blobs    int           `json:"blobs"`
	Bytes    int64         `json:"bytes"`
	ViewSize int64         `json:"view_bytes"`
	Producer string        `json:"producer"`
	Signed   bool          `json:"signed"`
	Tags     []string      `json:"tags,omitempty"` // in ls: the tags that point at it
}

func summarize(m *manifest.Manifest) snapshotSummary {
	return snapshotSummary{
		ID: m.ID, Created: m.Created, Service: m.Service, Account: m.Account, Region: m.Region,
		Blobs: len(m.Blobs), Bytes: m.TotalSize(), ViewSize: m.View.Size,
		Producer: m.Producer + " " + m.ProducerVersion, Signed: m.Signature != "",
	}
}

// lsResult is the output of `ls --json`.
type lsResult struct {
	Snapshots []snapshotSummary `json:"snapshots"`
	Invalid   []invalidSnapshot `json:"invalid"`
}

// invalidSnapshot is a snapshot whose manifest ls could not read.
type invalidSnapshot struct {
	ID    digest.Digest `json:"id"`
	Error string        `json:"error"`
}

func (a *app) lsCmd() *cobra.Command {
	var f snapshot.Filter
	var tag string
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the snapshots in the repository, newest first",
		Long: `ls lists the snapshots in the repository, newest first. A snapshot whose
manifest is invalid does not hide the others: ls lists every valid one,
names the invalid ones on stderr (with --json, also in "invalid" on
stdout), and exits with code 4. Each snapshot is listed with the tags that
point at it; --tag lists only the snapshot a tag points at.`,
		Args: exactArgs(0),
		RunE: a.withRepo(func(ctx context.Context, r *snapshot.Repo, _ []string) error {
			ms, err := r.List(ctx, f)
			var lerr *snapshot.ListError
			if err != nil && !errors.As(err, &lerr) {
				return err
			}
			tags, _, terr := a.readTags(ctx, r, "")
			if terr != nil {
				return terr
			}
			tagged := map[digest.Digest][]string{}
			for _, t := range tags {
				if tag == "" || t.Name == tag {
					tagged[t.Snapshot] = append(tagged[t.Snapshot], t.Name)
				}
			}
			res := lsResult{Snapshots: []snapshotSummary{}, Invalid: []invalidSnapshot{}}
			for _, m := range ms {
				if tag == "" || tagged[m.ID] != nil {
					s := summarize(m)
					s.Tags = tagged[m.ID]
					res.Snapshots = append(res.Snapshots, s)
				}
			}
			if lerr != nil {
				for _, s := range lerr.Invalid {
					res.Invalid = append(res.Invalid, invalidSnapshot{ID: s.ID, Error: s.Err.Error()})
				}
			}
			if a.json {
				a.writeJSON(a.stdout, res)
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCREATED\tSERVICE\tACCOUNT\tREGION\tBLOBS\tSIZE\tTAGS")
			for _, s := range res.Snapshots {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.ID.Short(), s.Created.Local().Format(time.DateTime),
					displayText(s.Service), displayText(s.Account), displayText(s.Region), s.Blobs, humanBytes(s.Bytes), strings.Join(s.Tags, ","))
			}
			if ferr := tw.Flush(); ferr != nil {
				return ferr
			}
			return err
		}),
	}
	filterFlags(cmd, &f)
	cmd.Flags().StringVar(&tag, "tag", "", "only the snapshot this tag points at")
	return cmd
}

func (a *app) showCmd() *cobra.Command {
	var f snapshot.Filter
	var blobs bool
	cmd := &cobra.Command{
		Use:   "show REF",
		Short: "Show one snapshot: REF is an id, a unique id prefix, a tag, or latest",
		Args:  exactArgs(1),
		RunE: a.withRepo(func(ctx context.Context, r *snapshot.Repo, args []string) error {
			m, err := r.Show(ctx, args[0], f)
			if err != nil {
				return checkRef(err)
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
			fmt.Fprintf(tw, "producer\t%s\n", displayText(s.Producer))
			fmt.Fprintf(tw, "service\t%s\n", displayText(s.Service))
			fmt.Fprintf(tw, "account\t%s\n", displayText(s.Account))
			fmt.Fprintf(tw, "region\t%s\n", displayText(s.Region))
			fmt.Fprintf(tw, "view\t%s (%s)\n", m.View.Digest, humanBytes(m.View.Size))
			fmt.Fprintf(tw, "blobs\t%d (%s)\n", s.Blobs, humanBytes(s.Bytes))
			fmt.Fprintf(tw, "signed\t%t\n", s.Signed)
			if err := tw.Flush(); err != nil {
				return err
			}
			if !blobs || len(m.Blobs) == 0 {
				return nil
			}
			fmt.Fprintln(a.stdout)
			tw = tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tDIGEST\tSIZE")
			for _, e := range m.Blobs {
				fmt.Fprintf(tw, "%s\t%s\t%d\n", displayKey(e.Key), e.Digest.Short(), e.Size)
			}
			return tw.Flush()
		}),
	}
	filterFlags(cmd, &f)
	cmd.Flags().BoolVar(&blobs, "blobs", false, fmt.Sprintf("list every blob: key (shortened to %d characters), digest, size; with --json, print the whole manifest with exact keys", maxKeyWidth))
	return cmd
}

type verifyResult struct {
	Snapshot    digest.Digest   `json:"snapshot"`
	ReadData    bool            `json:"read_data"`
	Blobs       int             `json:"blobs"`
	UniqueBlobs int             `json:"unique_blobs"`
	Bytes       int64           `json:"bytes"`
	OK          bool            `json:"ok"`
	Problems    []verifyProblem `json:"problems"`
}

// verifyProblem is one problem in `verify --json`. A blob's key is in
// "key", or in "key_base64" when it is not valid UTF-8, as in manifests.
type verifyProblem struct {
	Object    string               `json:"object"` // "view" or "blob"
	Key       *string              `json:"key,omitempty"`
	KeyBase64 string               `json:"key_base64,omitempty"`
	Digest    digest.Digest        `json:"digest"`
	Kind      snapshot.ProblemKind `json:"kind"`
	Error     string               `json:"error"`
}

func newVerifyProblem(p snapshot.Problem) verifyProblem {
	vp := verifyProblem{Object: "view", Digest: p.Digest, Kind: p.Kind, Error: p.Err.Error()}
	if !p.View {
		vp.Object = "blob"
		if utf8.ValidString(p.Key) {
			vp.Key = &p.Key
		} else {
			vp.KeyBase64 = base64.StdEncoding.EncodeToString([]byte(p.Key))
		}
	}
	return vp
}

// problemDetail says what verify found for p in a line of text.
func problemDetail(p snapshot.Problem) string {
	var mm *repo.MismatchError
	if errors.As(p.Err, &mm) {
		return fmt.Sprintf("expected %s, got %s", mm.Expected, mm.Actual)
	}
	return escapeControls(p.Err.Error())
}

func (a *app) verifyCmd() *cobra.Command {
	var opts snapshot.VerifyOptions
	cmd := &cobra.Command{
		Use:   "verify REF",
		Short: "Check that a snapshot is whole; with --read-data, re-hash every blob",
		Long: `verify checks that a snapshot's view and every blob it references are in
the repository with the recorded sizes; with --read-data it downloads them
and checks their SHA-256 too. Entries that share a digest share one stored
blob, checked once: progress counts distinct blobs. It exits with code 4
when a blob or the view is missing or damaged.`,
		Args: exactArgs(1),
		RunE: a.withRepo(func(ctx context.Context, r *snapshot.Repo, args []string) error {
			label := "check"
			if opts.ReadData {
				label = "read"
			}
			var bar *progress
			opts.OnStart = func(blobs int, _ int64) { bar = a.newProgress(label, int64(blobs)) }
			opts.OnBlob = func(int64) { bar.add(1) }
			opts.Manifest.HMACKey = a.signingKey
			rep, verr := r.Verify(ctx, args[0], &opts)
			if bar != nil {
				bar.finish()
			}
			if rep == nil {
				return checkRef(verr)
			}
			m := rep.Manifest
			res := verifyResult{Snapshot: m.ID, ReadData: opts.ReadData, Blobs: rep.Blobs, UniqueBlobs: rep.UniqueBlobs, Bytes: rep.Bytes, OK: verr == nil, Problems: []verifyProblem{}}
			damaged := false
			for _, p := range rep.Problems {
				res.Problems = append(res.Problems, newVerifyProblem(p))
				damaged = damaged || p.Kind != snapshot.ProblemUnreadable
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
					fmt.Fprintf(a.stdout, "snapshot %s has %d problem(s):\n", m.ID, len(rep.Problems))
					tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "  PROBLEM\tOBJECT\tDIGEST\tDETAIL")
					for _, p := range rep.Problems {
						object := "view"
						if !p.View {
							object = displayKey(p.Key)
						}
						fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", p.Kind, object, p.Digest.Short(), problemDetail(p))
					}
					if err := tw.Flush(); err != nil {
						return err
					}
				}
			}
			if damaged {
				return dataError{verr}
			}
			return verr
		}),
	}
	filterFlags(cmd, &opts.Filter)
	cmd.Flags().BoolVar(&opts.ReadData, "read-data", false, "download every blob and check its SHA-256")
	return cmd
}
