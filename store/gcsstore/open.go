package gcsstore

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"cloud.google.com/go/auth/credentials"
	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/option"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
)

// Scheme is the URL scheme of GCS repositories.
const Scheme = "gs"

// EnvEmulatorHost is the environment variable through which the client
// library reaches an emulator instead of GCS, without credentials: a host
// and port (then over plain HTTP), or a base URL.
const EnvEmulatorHost = "STORAGE_EMULATOR_HOST"

// DefaultMaxBackoff caps the pause between two attempts of a request by
// the client [Open] makes (the client library's default is 30 s).
const DefaultMaxBackoff = 2 * time.Second

// parseURL reads a gs://bucket/prefix URL.
func parseURL(u *url.URL) (bucket, prefix string, err error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("gcsstore: %s: %s: %w", store.Redact(u), fmt.Sprintf(format, args...), core.ErrInvalid)
	}
	switch {
	case u.Scheme != Scheme:
		return "", "", bad("scheme is %q, want %q", u.Scheme, Scheme)
	case u.User != nil:
		return "", "", bad("credentials in the URL are not supported: use Application Default Credentials")
	case u.Host == "":
		return "", "", bad("missing bucket name: want gs://bucket/prefix")
	case strings.Contains(u.Host, ":"):
		return "", "", bad("bucket name %q holds a ':': an emulator is given by %s=host:port", u.Host, EnvEmulatorHost)
	case u.RawQuery != "" || u.ForceQuery:
		return "", "", bad("gs:// URLs take no query parameters")
	}
	return u.Host, strings.Trim(u.Path, "/"), nil
}

// Open returns a driver for a gs://bucket/prefix URL, with a client of
// its own, which Close closes. The client reaches the emulator that
// STORAGE_EMULATOR_HOST names, without credentials, if it is set, and GCS
// with Application Default Credentials otherwise; Options.ClientOptions
// adjust it. Open does not contact GCS; it fails, with an error matching
// core.ErrPermission that says where it looked, if there are no
// credentials.
func Open(ctx context.Context, u *url.URL, opts *Options) (*Driver, error) {
	bucket, prefix, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	var clientOpts []option.ClientOption
	if opts != nil {
		clientOpts = opts.ClientOptions
	}
	if os.Getenv(EnvEmulatorHost) == "" && len(clientOpts) == 0 {
		creds, err := credentials.DetectDefault(&credentials.DetectOptions{Scopes: []string{storage.ScopeReadWrite}})
		if err != nil {
			return nil, fmt.Errorf("gcsstore: no credentials for bucket %q: Application Default Credentials looked for "+
				"the key file GOOGLE_APPLICATION_CREDENTIALS names, the file `gcloud auth application-default login` writes, "+
				"and the metadata server of Google Cloud; set one up, or set %s to use an emulator: %w: %w",
				bucket, EnvEmulatorHost, core.ErrPermission, err)
		}
		clientOpts = []option.ClientOption{option.WithAuthCredentials(creds)}
	}
	client, err := storage.NewClient(ctx, clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("gcsstore: client for %s: %w", where(), err)
	}
	client.SetRetry(storage.WithBackoff(gax.Backoff{Initial: 100 * time.Millisecond, Max: DefaultMaxBackoff, Multiplier: 2}))
	d := New(client, bucket, prefix, opts)
	d.owned = true
	return d, nil
}

func init() {
	store.Register(Scheme, func(ctx context.Context, u *url.URL) (store.Driver, error) { return Open(ctx, u, nil) })
}
