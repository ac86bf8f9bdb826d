package snapshot

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
	"github.com/statebucket/statebucket/store/s3store"
)

// Repo is a snapshot repository: a directory or bucket prefix holding
// blobs, snapshots and tags (see the package documentation for the
// layout). A Repo is safe for concurrent use; close it when done.
type Repo struct {
	st *store.Store
}

// New returns a Repo over st, for drivers built by the caller (for
// example an s3store.Driver around an existing *s3.Client).
func New(st *store.Store) *Repo { return &Repo{st: st} }

// Store returns the repository's store.
func (r *Repo) Store() *store.Store { return r.st }

// Location returns the repository's URL, without credentials.
func (r *Repo) Location() string { return r.st.Location() }

// Close releases the repository's resources.
func (r *Repo) Close() error { return r.st.Close() }

// opener opens the driver for one URL scheme.
type opener func(ctx context.Context, u *url.URL) (store.Driver, string, error)

// openers are the backends, registered explicitly by scheme.
var openers = map[string]opener{
	"file": openFile,
	"s3":   openS3,
}

// Open opens the repository at rawURL:
//
//   - a plain path, or file:///abs/path: a local directory, created if it
//     does not exist;
//   - s3://bucket/prefix?endpoint=URL&region=R: Amazon S3 or an
//     S3-compatible server (see package s3store).
func Open(ctx context.Context, rawURL string) (*Repo, error) {
	if rawURL == "" {
		return nil, fmt.Errorf("snapshot: open: empty repository URL: %w", core.ErrInvalid)
	}
	scheme, _, hasScheme := strings.Cut(rawURL, "://")
	if !hasScheme {
		drv, loc, err := openDir(rawURL)
		if err != nil {
			return nil, err
		}
		return New(store.New(drv, loc)), nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("snapshot: open %s: %w: %w", redactRaw(rawURL), core.ErrInvalid, errors.Unwrap(err))
	}
	open, ok := openers[strings.ToLower(scheme)]
	if !ok {
		return nil, fmt.Errorf("snapshot: open %s: unknown scheme %q (use a path, file://, or s3://): %w", redact(u), scheme, core.ErrInvalid)
	}
	drv, loc, err := open(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("snapshot: open %s: %w", redact(u), err)
	}
	return New(store.New(drv, loc)), nil
}

func openFile(_ context.Context, u *url.URL) (store.Driver, string, error) {
	if u.Host != "" && u.Host != "localhost" {
		return nil, "", fmt.Errorf("file URL with host %q: want file:///absolute/path: %w", u.Host, core.ErrInvalid)
	}
	if u.RawQuery != "" {
		return nil, "", fmt.Errorf("file URL takes no query parameters: %w", core.ErrInvalid)
	}
	return openDir(u.Path)
}

func openS3(ctx context.Context, u *url.URL) (store.Driver, string, error) {
	drv, err := s3store.Open(ctx, u, nil)
	if err != nil {
		return nil, "", err
	}
	return drv, store.Redact(u), nil
}

func openDir(path string) (store.Driver, string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, "", fmt.Errorf("snapshot: open %q: %w", path, err)
	}
	drv, err := filestore.New(abs, &filestore.Options{Create: true})
	if err != nil {
		return nil, "", fmt.Errorf("snapshot: open %q: %w", path, err)
	}
	return drv, "file://" + filepath.ToSlash(abs), nil
}

// redact returns u without credentials or query values that may be
// secrets.
func redact(u *url.URL) string { return store.Redact(u) }

// redactRaw hides anything that looks like user information in a URL that
// did not parse.
func redactRaw(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		rest = "xxxxx@" + rest[at+1:]
	}
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		rest = rest[:q] + "?…"
	}
	return scheme + "://" + rest
}
