package gocloudstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gocloud.dev/blob"
	// The gocloud.dev drivers that gocloud+<scheme> URLs reach: importing
	// this package links them.
	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/gcsblob"
	"gocloud.dev/blob/memblob"
	_ "gocloud.dev/blob/s3blob"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
)

// Schemes of the URLs this package opens.
const (
	// MemScheme is the scheme of in-memory repositories: mem://.
	MemScheme = "mem"
	// SchemePrefix starts the scheme of a URL handed to gocloud.dev:
	// gocloud+s3://, gocloud+gs://, gocloud+file://, gocloud+azblob://.
	SchemePrefix = "gocloud+"
)

// gocloudSchemes are the gocloud.dev schemes reachable as
// SchemePrefix+scheme, by the driver they reach.
var gocloudSchemes = map[string]kind{
	"s3":     kindS3,
	"gs":     kindGCS,
	"file":   kindFile,
	"azblob": kindAzure,
}

func init() {
	store.Register(MemScheme, func(ctx context.Context, u *url.URL) (store.Driver, error) { return Open(ctx, u, nil) })
	for scheme := range gocloudSchemes {
		store.Register(SchemePrefix+scheme, func(ctx context.Context, u *url.URL) (store.Driver, error) { return Open(ctx, u, nil) })
	}
}

// Open returns a driver over the bucket that u names, which the driver
// owns and closes:
//
//   - mem:// is a new, empty in-memory bucket (memblob), gone when the
//     driver is closed;
//   - gocloud+SCHEME://… for SCHEME s3, gs, file or azblob is the URL
//     SCHEME://… opened by gocloud.dev's default URL mux (see the
//     package documentation for what each needs). For s3, gs and azblob
//     the URL's path, if any, is the repository's prefix in the bucket.
//     A file directory is never created by opening or reading it: the
//     first write does, unless create_dir is given empty or false.
//
// A nil opts means the defaults. Open does not contact the server, but
// fails at once, naming the environment variables to set, for an azblob
// URL with no Azure credentials configured.
func Open(ctx context.Context, u *url.URL, opts *Options) (*Driver, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("gocloudstore: %s: %s: %w", store.Redact(u), fmt.Sprintf(format, args...), core.ErrInvalid)
	}
	if u.User != nil {
		return nil, bad("credentials in the URL are not supported: configure them as the backend's SDK reads them")
	}
	if err := store.ValidURLPath(u.Path); err != nil {
		return nil, fmt.Errorf("gocloudstore: %s: %w", store.Redact(u), err)
	}
	if u.Scheme == MemScheme {
		if u.Host != "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
			return nil, bad("an in-memory repository takes no bucket, path or parameters: write mem://")
		}
		d := New(memblob.OpenBucket(nil), opts)
		d.owned, d.kind, d.name = true, kindMem, "mem://"
		return d, nil
	}
	scheme, ok := strings.CutPrefix(u.Scheme, SchemePrefix)
	k, known := gocloudSchemes[scheme]
	if !ok || !known {
		return nil, bad("unknown scheme %q: want %s or %s followed by one of s3, gs, file, azblob", u.Scheme, MemScheme, SchemePrefix)
	}
	inner := *u
	inner.Scheme = scheme
	if k == kindFile {
		return openDir(ctx, &inner, opts)
	}
	if err := bucketURL(&inner); err != nil {
		return nil, bad("%v", err)
	}
	if k == kindAzure {
		if err := azureCredentials(&inner); err != nil {
			return nil, fmt.Errorf("gocloudstore: %s: %w", store.Redact(u), err)
		}
	}
	b, err := blob.DefaultURLMux().OpenBucketURL(ctx, &inner)
	if err != nil {
		return nil, fmt.Errorf("gocloudstore: %s: %w", store.Redact(u), err)
	}
	d := New(b, opts)
	d.owned, d.kind, d.domain, d.name = true, k, inner.String(), inner.Host
	return d, nil
}

// openDir returns a driver over the directory of inner, a fileblob URL.
// It sets the defaults that make fileblob behave like a repository
// directory: no_tmp_dir (temporary files beside their final names, so
// that the rename that commits them stays on one file system) and
// metadata=skip (no sidecar file per object); the URL may set them
// otherwise. The bucket is opened at once if the directory exists, and
// otherwise by the first operation that finds it (see [lazyDir]); the
// first write creates the directory unless create_dir is given empty or
// false.
func openDir(ctx context.Context, inner *url.URL, opts *Options) (*Driver, error) {
	q := inner.Query()
	for k, v := range map[string]string{"no_tmp_dir": "true", "metadata": "skip"} {
		if !q.Has(k) {
			q.Set(k, v)
		}
	}
	v := q.Get("create_dir")
	on, err := strconv.ParseBool(v)
	create := !q.Has("create_dir") || v != "" && (on || err != nil) // fileblob: any value but ""
	q.Del("create_dir")
	if create {
		q.Set("create_dir", "true")
	}
	inner.RawQuery = q.Encode()
	path := filepath.FromSlash(inner.Path)
	if inner.Host == "." {
		path = strings.TrimPrefix(path, string(filepath.Separator))
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	dir := &lazyDir{url: inner, dir: abs, create: create}
	if _, err := dir.open(ctx, false); err != nil && !errors.Is(err, core.ErrBucketNotFound) {
		return nil, err
	}
	return &Driver{kind: kindFile, dir: dir, owned: true, opts: opts.withDefaults(), domain: "file:" + abs, name: abs}, nil
}

// bucketURL makes inner, the URL of a bucket of gocloud.dev, the URL to
// hand gocloud.dev: its path becomes the prefix= parameter. An s3 URL
// gets response_checksum_validation=when_required, unless it sets it: the
// engines verify the SHA-256 of what they read, and the SDK would
// otherwise check CRCs again, and log a line to stderr for each object
// stored without one.
func bucketURL(inner *url.URL) error {
	q := inner.Query()
	if inner.Scheme == "s3" && !q.Has("response_checksum_validation") {
		q.Set("response_checksum_validation", "when_required")
	}
	if inner.Host == "" {
		return errors.New("missing bucket name: want " + SchemePrefix + inner.Scheme + "://bucket/prefix")
	}
	if prefix := strings.Trim(inner.Path, "/"); prefix != "" {
		if q.Has("prefix") {
			return errors.New("give the prefix as the URL's path or as prefix=, not both")
		}
		q.Set("prefix", prefix+"/")
		inner.Path, inner.RawPath = "", ""
	}
	inner.RawQuery = q.Encode()
	return nil
}

// azureCredentialVars are environment variables any of which configures
// Azure credentials that need no probing of the network: a connection
// string, a SAS token, or an identity of azidentity's environment,
// workload or managed identity credentials.
var azureCredentialVars = []string{
	"AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGEBLOB_CONNECTIONSTRING", "AZURE_STORAGE_SAS_TOKEN",
	"AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_ENDPOINT", "MSI_ENDPOINT",
}

// azureCredentials fails, naming what to set, unless the environment
// configures Azure credentials. Without any, azureblob would fall back on
// azidentity's default chain, which probes the instance metadata service
// and runs the Azure CLI on the first request, and may hang or fail late
// with a long message.
func azureCredentials(u *url.URL) error {
	if os.Getenv("AZURE_STORAGE_KEY") != "" && (os.Getenv("AZURE_STORAGE_ACCOUNT") != "" || u.Query().Get("storage_account") != "") {
		return nil
	}
	for _, v := range azureCredentialVars {
		if os.Getenv(v) != "" {
			return nil
		}
	}
	return fmt.Errorf("no Azure credentials: set AZURE_STORAGE_ACCOUNT (or storage_account= in the URL) and AZURE_STORAGE_KEY, "+
		"or AZURE_STORAGE_SAS_TOKEN, or AZURE_STORAGE_CONNECTION_STRING, or an Azure identity (AZURE_CLIENT_ID with "+
		"AZURE_TENANT_ID and a secret, certificate or federated token); for other credentials, open the bucket with "+
		"azureblob and use gocloudstore.New: %w", core.ErrPermission)
}
