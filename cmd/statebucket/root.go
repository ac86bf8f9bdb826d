package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/snapshot"
)

// Exit codes, documented in the help text and the README.
const (
	exitOK       = 0
	exitError    = 1 // anything not listed below (I/O, network, server)
	exitUsage    = 2 // bad flags, arguments or repository URL
	exitNotFound = 3 // no such snapshot, tag, bucket or directory
	exitCorrupt  = 4 // verification failed: checksum or size mismatch, invalid manifest
	exitDenied   = 5 // the credentials may not do this
)

const exitCodesHelp = `Exit codes:
  0  success
  1  any other failure (I/O, network, server)
  2  usage: bad flags, arguments, tag name, ambiguous id prefix or repository URL
  3  not found: no such snapshot, tag, bucket or directory
  4  corrupt: checksum or size mismatch, invalid or tampered manifest
  5  permission denied by the storage backend`

// app holds what every command shares.
type app struct {
	repoURL string
	json    bool
	stdout  io.Writer
	stderr  io.Writer
	tty     bool // stderr is a terminal: draw progress bars
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	if f, ok := stderr.(*os.File); ok {
		a.tty = term.IsTerminal(int(f.Fd()))
	}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	if a.json {
		a.writeJSON(stderr, map[string]any{"error": err.Error(), "exit_code": code})
	} else {
		fmt.Fprintln(stderr, "statebucket:", err)
	}
	return code
}

// usageError marks an error in the command line.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ue usageError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, core.ErrPermission):
		return exitDenied
	case errors.Is(err, core.ErrNotFound), errors.Is(err, core.ErrBucketNotFound):
		return exitNotFound
	case errors.Is(err, core.ErrChecksumMismatch), errors.Is(err, core.ErrSizeMismatch), errors.As(err, new(*manifest.ValidationError)):
		return exitCorrupt
	case errors.Is(err, core.ErrInvalid), errors.Is(err, core.ErrInvalidPath):
		return exitUsage
	}
	return exitError
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "statebucket",
		Short: "Snapshots of mock cloud service state, in a directory or a bucket",
		Long: `statebucket exports the state of in-process mock cloud services (a JSON view
plus the blobs it references) to a content-addressed repository, and restores
it into fresh mocks. A repository is a local directory or a bucket prefix.

Repository URLs:
  ./path, /abs/path, file:///abs/path    a local directory (created if missing)
  s3://bucket/prefix?endpoint=URL&region=R  Amazon S3 or MinIO
  mem://                                 in memory, gone when the command ends
  gocloud+SCHEME://...                   a gocloud.dev bucket: s3, gs, file, azblob

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&a.repoURL, "repo", defaultRepo(), "repository URL or directory (env STATEBUCKET_REPO)")
	root.PersistentFlags().BoolVar(&a.json, "json", false, "print machine-readable JSON instead of text")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(a.demoCmd(), a.lsCmd(), a.showCmd(), a.verifyCmd(), a.tagCmd())
	return root
}

func defaultRepo() string {
	if r := os.Getenv("STATEBUCKET_REPO"); r != "" {
		return r
	}
	return "./snapshots"
}

// openRepo opens --repo; a malformed URL is a usage error.
func (a *app) openRepo(ctx context.Context) (*snapshot.Repo, error) {
	r, err := snapshot.Open(ctx, a.repoURL)
	if err != nil && errors.Is(err, core.ErrInvalid) {
		return nil, usageError{err}
	}
	return r, err
}

// withRepo makes a command's RunE that opens --repo, calls fn, and closes
// the repository.
func (a *app) withRepo(fn func(ctx context.Context, repo *snapshot.Repo, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		repo, err := a.openRepo(cmd.Context())
		if err != nil {
			return err
		}
		defer repo.Close()
		return fn(cmd.Context(), repo, args)
	}
}

// exactArgs is cobra.ExactArgs returning a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{fmt.Errorf("%s: %w", cmd.CommandPath(), err)}
		}
		return nil
	}
}

func (a *app) writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		fmt.Fprintln(a.stderr, "statebucket: encode JSON:", err)
	}
}
