package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/statebucket/statebucket/core"
)

// OpenFunc opens the driver for a repository URL of the scheme it was
// registered for. It must not contact the backend: a missing bucket or
// directory is reported by the first operation, with core.ErrBucketNotFound.
type OpenFunc func(ctx context.Context, u *url.URL) (Driver, error)

var registry = struct {
	sync.RWMutex
	openers map[string]OpenFunc
}{openers: map[string]OpenFunc{}}

// Register makes the driver opened by open available to [Open] for URLs of
// scheme (lowercase, without "://"). Drivers call it from an init function,
// so a program links the backends it imports, as database/sql and
// gocloud.dev do. Register panics if scheme is registered twice.
func Register(scheme string, open OpenFunc) {
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.openers[scheme]; dup {
		panic("store: Register called twice for scheme " + scheme)
	}
	registry.openers[scheme] = open
}

// Schemes returns the registered schemes, sorted.
func Schemes() []string {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]string, 0, len(registry.openers))
	for s := range registry.openers {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// schemeLike matches the start of a string that looks like a URL scheme.
var schemeLike = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)

// Open opens the repository storage at rawURL with the driver registered
// for its scheme. A string without "://" is a local path, opened with the
// "file" driver; a string that starts like a scheme but lacks "//" (such
// as "s3:/bucket") is an error, not a directory of that name; so are a
// URL with a fragment, with user information, or with a path that has an
// empty, "." or ".." segment (see [ValidURLPath]). The Store's location
// is the URL with its credentials removed (see [Redact]).
func Open(ctx context.Context, rawURL string) (*Store, error) {
	u, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	registry.RLock()
	open, ok := registry.openers[u.Scheme]
	registry.RUnlock()
	if !ok {
		return nil, fmt.Errorf("store: open %s: unknown scheme %q; known: %s (a program links a backend by importing its package, for example _ \"github.com/statebucket/statebucket/store/s3store\"): %w",
			Redact(u), u.Scheme, strings.Join(Schemes(), ", "), core.ErrInvalid)
	}
	if u.User != nil {
		return nil, fmt.Errorf("store: open %s: credentials in a repository URL are not supported (shell histories, process lists and logs would show them): "+
			"give them as the backend's SDK reads them, such as from the environment: %w", Redact(u), core.ErrInvalid)
	}
	if err := ValidURLPath(u.Path); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", Redact(u), err)
	}
	drv, err := open(ctx, u)
	if err != nil {
		return nil, RedactError(fmt.Errorf("store: open %s: %w", Redact(u), err))
	}
	return New(drv, Redact(u), nil), nil
}

// quoted matches the quoted parts of net/url's errors.
var quoted = regexp.MustCompile(`"[^"]*"`)

// parseURL turns rawURL into a URL with a lowercase scheme; a plain path
// becomes a file URL of its absolute form.
func parseURL(rawURL string) (*url.URL, error) {
	if rawURL == "" {
		return nil, fmt.Errorf("store: open: empty repository URL: %w", core.ErrInvalid)
	}
	if !strings.Contains(rawURL, "://") {
		if schemeLike.MatchString(rawURL) && !isDrivePath(rawURL) {
			scheme, _, _ := strings.Cut(rawURL, ":")
			name := RedactText(rawURL)
			if strings.ContainsAny(rawURL, "@?#") { // may hide a secret
				name = scheme + ":" + redacted
			}
			return nil, fmt.Errorf("store: open %s: looks like a URL but lacks \"//\" after %q; write %s://… (or ./%s for a local directory of that name): %w",
				name, scheme+":", scheme, name, core.ErrInvalid)
		}
		abs, err := filepath.Abs(rawURL)
		if err != nil {
			return nil, fmt.Errorf("store: open %q: %w", rawURL, err)
		}
		return &url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		// The parser quotes the part it refused ("invalid port \":pw\""),
		// which may be a secret typed in the wrong place.
		err = &redactedError{msg: quoted.ReplaceAllString(err.Error(), `"…"`), err: err}
		return nil, fmt.Errorf("store: open %s: %w: %w", redactUnparsed(rawURL), core.ErrInvalid, err)
	}
	if u.Fragment != "" || strings.Contains(rawURL, "#") {
		return nil, fmt.Errorf("store: open %s: repository URLs take no fragment ('#'); escape it as %%23: %w", Redact(u), core.ErrInvalid)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	return u, nil
}

// ValidURLPath returns an error matching core.ErrInvalid if p, the path of
// a repository URL, has an empty, "." or ".." segment, as in s3://b//x or
// s3://b/a/../c: a backend would take such a prefix literally (S3) or
// resolve it (a file system), so it would not name the place it seems to.
// One leading and one trailing '/' are allowed. Drivers whose Open may be
// called directly check the URLs they are given with it.
func ValidURLPath(p string) error {
	rest := strings.TrimPrefix(p, "/")
	if rest == "" {
		return nil
	}
	for seg := range strings.SplitSeq(strings.TrimSuffix(rest, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("path %q has an empty, \".\" or \"..\" segment; write the prefix plainly, as a/b: %w", p, core.ErrInvalid)
		}
	}
	return nil
}

// redactUnparsed returns raw, a URL that did not parse, for a message:
// with RedactText applied, and its authority hidden if it holds a ':' (a
// password typed without its user or '@', as s3://AKIA:secret/p, fails to
// parse as an invalid port).
func redactUnparsed(raw string) string {
	scheme, rest, _ := strings.Cut(raw, "://")
	auth := rest
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		auth = rest[:j]
	}
	if strings.Contains(auth, ":") {
		rest = redacted + rest[len(auth):]
	}
	return RedactText(scheme + "://" + rest)
}

// isDrivePath reports whether p starts with a Windows drive letter.
func isDrivePath(p string) bool {
	return filepath.VolumeName(p) != ""
}
