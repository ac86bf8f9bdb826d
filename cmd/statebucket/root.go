package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store"
)

// Exit codes, documented in the help text and the README.
const (
	exitOK       = 0
	exitError    = 1 // anything not listed below (I/O, network, server)
	exitUsage    = 2 // bad usage: command, flags, arguments or repository URL
	exitNotFound = 3 // no such snapshot, tag, bucket or directory
	exitCorrupt  = 4 // bad data: checksum or size mismatch, missing blob, invalid manifest or tag
	exitDenied   = 5 // the credentials may not do this
	exitConflict = 6 // a lost race (a tag moved meanwhile) or a lock in the way
)

const exitCodesHelp = `Exit codes:
  0  success
  1  any other failure (I/O, network, server)
  2  bad usage: unknown command, bad flags or arguments, bad tag name,
     ambiguous id prefix, bad repository URL
  3  not found: no such snapshot, tag, bucket or directory
  4  bad data: a checksum or size mismatch, a missing blob or view, an
     invalid or tampered manifest or tag (ls lists the valid snapshots
     and exits 4 when some manifest is invalid)
  5  permission denied by the storage backend
  6  conflict: another writer moved the tag meanwhile (tag), or a lock is
     in the way (gc while exports run, an export while gc runs)`

// app holds what every command shares.
type app struct {
	repoURL string
	json    bool
	stdout  io.Writer
	stderr  io.Writer
	tty     bool // stderr is a terminal: draw progress bars
	// signingKey, from $STATEBUCKET_SIGNING_KEY, signs and verifies
	// manifests and tags.
	signingKey []byte
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	if key := os.Getenv("STATEBUCKET_SIGNING_KEY"); key != "" {
		a.signingKey = []byte(key)
	}
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
	msg, hint := store.RedactText(err.Error()), hintFor(err) // the last line of defence for secrets
	if a.json {
		out := map[string]any{"error": msg, "exit_code": code}
		if hint != "" {
			out["hint"] = hint
		}
		a.writeJSON(stderr, out)
		return code
	}
	fmt.Fprintln(stderr, "statebucket:", escapeControls(msg))
	if hint != "" {
		fmt.Fprintln(stderr, "statebucket: hint:", hint)
	}
	return code
}

// usageError marks bad usage: an error in the command line.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// dataError marks bad data found in the repository, such as a snapshot
// that verify found damaged.
type dataError struct{ err error }

func (e dataError) Error() string { return e.err.Error() }
func (e dataError) Unwrap() error { return e.err }

func exitCode(err error) int {
	switch {
	case errors.As(err, new(usageError)):
		return exitUsage
	case errors.As(err, new(dataError)):
		return exitCorrupt
	case errors.Is(err, core.ErrPermission):
		return exitDenied
	case errors.Is(err, core.ErrNotFound), errors.Is(err, core.ErrBucketNotFound):
		return exitNotFound
	case errors.Is(err, core.ErrCorrupt), errors.Is(err, core.ErrChecksumMismatch), errors.Is(err, core.ErrSizeMismatch):
		return exitCorrupt
	case errors.Is(err, core.ErrConflict):
		return exitConflict
	case errors.Is(err, core.ErrInvalid), errors.Is(err, core.ErrInvalidPath):
		return exitUsage
	}
	return exitError
}

// hintFor returns what to do about err, or "".
func hintFor(err error) string {
	switch {
	case errors.Is(err, core.ErrBucketNotFound):
		return "check --repo (or $STATEBUCKET_REPO); commands other than demo never create a repository"
	case errors.As(err, new(refError)):
		return `run "statebucket ls" to list the snapshots`
	case errors.As(err, new(*repo.TagConflictError)):
		return `run "statebucket tags" to see the tags; tag --force moves it anyway`
	case errors.Is(err, core.ErrConflict):
		return lockHint()
	}
	return ""
}

// refError marks a ref that matches no snapshot.
type refError struct{ err error }

func (e refError) Error() string { return e.err.Error() }
func (e refError) Unwrap() error { return e.err }

// checkRef marks err, from resolving a ref, as a refError when no
// snapshot matches the ref (rather than the repository being missing).
func checkRef(err error) error {
	if errors.Is(err, core.ErrNotFound) && !errors.Is(err, core.ErrBucketNotFound) {
		return refError{err}
	}
	return err
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "statebucket",
		Short: "Snapshots of mock cloud service state, in a directory or a bucket",
		Long: `statebucket exports the state of in-process mock cloud services (a JSON view
plus the blobs it references) to a content-addressed repository, and restores
it into fresh mocks. A repository is a local directory or a bucket prefix.

Repository URLs:
  ./path, /abs/path, file:///abs/path       a local directory
  s3://bucket/prefix?endpoint=URL&region=R  Amazon S3 or MinIO
  gs://bucket/prefix                        Google Cloud Storage (or STORAGE_EMULATOR_HOST)
  mem://                                    in memory, gone when the command ends
  gocloud+SCHEME://...                      a gocloud.dev bucket: s3, gs, file, azblob

Only demo (an export) and copy (into its target) create a repository: for
every other command a missing one is exit code 3.

With $STATEBUCKET_SIGNING_KEY set, manifests and tags are signed when
written (demo, tag), and verify, tag, tags, rm and copy refuse a manifest
or tag that is not signed with that key, with exit code 4.

Text output shows names and keys that hold control characters or invalid
UTF-8 as quoted Go strings, and shortens long keys in the middle; --json
prints them whole and exact.

` + exitCodesHelp,
		Args:                       cobra.ArbitraryArgs,
		RunE:                       unknownCommand,
		SuggestionsMinimumDistance: 2,
		SilenceUsage:               true,
		SilenceErrors:              true,
	}
	root.PersistentFlags().StringVar(&a.repoURL, "repo", defaultRepo(), "repository URL or directory (env STATEBUCKET_REPO)")
	root.PersistentFlags().BoolVar(&a.json, "json", false, "print machine-readable JSON instead of text")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(a.demoCmd(), a.lsCmd(), a.showCmd(), a.verifyCmd(), a.tagCmd(), a.tagsCmd(), a.untagCmd(), a.rmCmd(), a.gcCmd())
	root.AddCommand(a.copyCmd())
	root.SetHelpCommand(helpCmd(root))
	return root
}

// helpCmd is cobra's help command, except that a topic matching no
// command is bad usage (exit 2), as an unknown command is, rather than a
// note on standard output and success.
func helpCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		Long:  "Help shows the help of any command: statebucket help [command].",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, rest, err := root.Find(args)
			if err != nil || c == nil || len(rest) > 0 {
				return usageError{fmt.Errorf(`unknown help topic %q; run "statebucket --help" for the commands`, strings.Join(args, " "))}
			}
			return c.Help()
		},
	}
}

// unknownCommand runs when no command matches: without arguments it
// shows the help; with one, it is bad usage.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	msg := fmt.Sprintf("unknown command %q", args[0])
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
	}
	return usageError{fmt.Errorf(`%s; run "statebucket --help" for the commands`, msg)}
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
