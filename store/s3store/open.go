package s3store

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
)

// Scheme is the URL scheme of S3 repositories.
const Scheme = "s3"

// DefaultRegion is the region used when neither the URL nor the AWS
// configuration names one.
const DefaultRegion = "us-east-1"

// queryParams are the query parameters an s3:// URL may hold.
var queryParams = []string{"endpoint", "profile", "region", "timeout"}

// location is what an s3:// URL says.
type location struct {
	bucket, prefix            string
	endpoint, region, profile string
	timeout                   time.Duration // 0: not given
}

// parseURL reads an s3://bucket/prefix?endpoint=…&region=…&profile=…&timeout=…
// URL.
func parseURL(u *url.URL) (location, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("s3store: %s: %s: %w", store.Redact(u), fmt.Sprintf(format, args...), core.ErrInvalid)
	}
	if u.Scheme != Scheme {
		return location{}, bad("scheme is %q, want %q", u.Scheme, Scheme)
	}
	if u.User != nil {
		return location{}, bad("credentials in the URL are not supported: use the AWS credential chain (environment, shared config and profiles, web identity)")
	}
	if u.Host == "" {
		return location{}, bad("missing bucket name: want s3://bucket/prefix")
	}
	if strings.Contains(u.Host, ":") {
		return location{}, bad("bucket name %q holds a ':': give a server as ?endpoint=http://host:port", u.Host)
	}
	if err := store.ValidURLPath(u.Path); err != nil {
		return location{}, fmt.Errorf("s3store: %s: %w", store.Redact(u), err)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return location{}, bad("malformed query: %v", err)
	}
	var unknown []string
	for k, vs := range q {
		switch {
		case !slices.Contains(queryParams, k):
			unknown = append(unknown, fmt.Sprintf("%q", k))
		case len(vs) > 1:
			return location{}, bad("query parameter %q given %d times", k, len(vs))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return location{}, bad("unknown query parameters %s (known: %s)", strings.Join(unknown, ", "), strings.Join(queryParams, ", "))
	}
	loc := location{
		bucket:   u.Host,
		prefix:   strings.Trim(u.Path, "/"),
		endpoint: q.Get("endpoint"),
		region:   q.Get("region"),
		profile:  q.Get("profile"),
	}
	if loc.endpoint != "" {
		e, err := url.Parse(loc.endpoint)
		switch {
		case err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "":
			return location{}, bad("endpoint must be an http:// or https:// URL")
		case e.User != nil:
			return location{}, bad("credentials in the endpoint are not supported: use the AWS credential chain (environment, shared config and profiles, web identity)")
		case e.RawQuery != "" || e.ForceQuery || e.Fragment != "":
			return location{}, bad("the endpoint takes no query or fragment: give the server's base URL, such as http://127.0.0.1:9000")
		}
	}
	if t := q.Get("timeout"); t != "" {
		loc.timeout, err = time.ParseDuration(t)
		if err != nil || loc.timeout <= 0 {
			return location{}, bad("timeout=%q: want a positive duration, such as 30s or 2m", t)
		}
	}
	return loc, nil
}

// Open returns a driver for the repository at u, a URL of the form
// s3://bucket/prefix?endpoint=URL&region=R&profile=P&timeout=D, configured
// by the AWS SDK's standard chain (see the package documentation). The
// query parameters are optional; any other is an error. timeout= sets both
// Options.ResponseTimeout and Options.StallTimeout, overriding opts. A
// prefix with an empty, "." or ".." segment is an error. Open does not
// contact the server. A nil opts means the defaults.
func Open(ctx context.Context, u *url.URL, opts *Options) (*Driver, error) {
	loc, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	if loc.timeout > 0 {
		o.ResponseTimeout, o.StallTimeout = loc.timeout, loc.timeout
	}
	p := &pool{}
	load := []func(*config.LoadOptions) error{
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(p.configure(o.MaxConcurrency))),
	}
	if loc.region != "" {
		load = append(load, config.WithRegion(loc.region))
	}
	if loc.profile != "" {
		load = append(load, config.WithSharedConfigProfile(loc.profile))
	}
	if o.Credentials != nil {
		load = append(load, config.WithCredentialsProvider(o.Credentials))
	}
	switch {
	case o.Retryer != nil:
		load = append(load, config.WithRetryer(o.Retryer))
	case os.Getenv("AWS_MAX_ATTEMPTS") == "" && os.Getenv("AWS_RETRY_MODE") == "":
		load = append(load, config.WithRetryer(DefaultRetryer))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, store.RedactError(fmt.Errorf("s3store: %s: load the AWS configuration: %w", store.Redact(u), err))
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	if o.Transport != nil {
		// Set after loading, which insists on an SDK client to add a CA
		// bundle to (AWS_CA_BUNDLE); o.Transport brings its own TLS
		// settings. Credential providers keep the SDK's client.
		cfg.HTTPClient = &http.Client{
			Transport: o.Transport,
			// As the SDK's client: a redirect from S3 is an answer.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if loc.endpoint != "" {
			so.BaseEndpoint = aws.String(loc.endpoint)
		}
		// An endpoint from the URL, AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_S3
		// is most likely not AWS: address buckets by path.
		if so.BaseEndpoint != nil {
			so.UsePathStyle = true
		}
	})
	d := New(client, loc.bucket, loc.prefix, &o)
	d.pool = p
	return d, nil
}

// Retry defaults of a driver made by [Open].
const (
	DefaultMaxAttempts = 3
	DefaultMaxBackoff  = 2 * time.Second
)

// DefaultRetryer is the retryer of a driver made by [Open] when neither
// Options.Retryer nor AWS_MAX_ATTEMPTS / AWS_RETRY_MODE say otherwise: the
// SDK's standard retryer with DefaultMaxAttempts attempts, backoff capped
// at DefaultMaxBackoff, and no client-side retry quota, which on a flaky
// network runs dry after about 100 retries and then fails requests at
// once. The portable store layer tries again, with backoff, the requests
// whose attempts are spent.
func DefaultRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = DefaultMaxAttempts
		o.MaxBackoff = DefaultMaxBackoff
		o.RateLimiter = ratelimit.None
	})
}

// NewTransport returns a transport like the one of a driver made by
// [Open]: the SDK's defaults, with room for maxConcurrency idle
// connections to the server, but without a CA bundle from AWS_CA_BUNDLE.
// It does not cap the number of connections; the engine's budget caps the
// number of requests. Tests wrap it to inject faults (Options.Transport).
func NewTransport(maxConcurrency int) *http.Transport {
	if maxConcurrency <= 0 {
		maxConcurrency = DefaultMaxConcurrency
	}
	return awshttp.NewBuildableClient().WithTransportOptions(sizePool(maxConcurrency)).GetTransport()
}

func sizePool(maxConcurrency int) func(*http.Transport) {
	return func(tr *http.Transport) {
		tr.MaxIdleConns = maxConcurrency
		tr.MaxIdleConnsPerHost = maxConcurrency
	}
}

// pool is the connection pool of a driver made by Open: every transport
// that the SDK builds from the driver's configuration (it builds one per
// copy of its client), so that Close can close their idle connections.
type pool struct {
	mu         sync.Mutex
	transports []*http.Transport
}

// configure returns the transport option that sizes and records each
// transport.
func (p *pool) configure(maxConcurrency int) func(*http.Transport) {
	size := sizePool(maxConcurrency)
	return func(tr *http.Transport) {
		size(tr)
		p.mu.Lock()
		defer p.mu.Unlock()
		p.transports = append(p.transports, tr)
	}
}

func (p *pool) closeIdleConnections() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, tr := range p.transports {
		tr.CloseIdleConnections()
	}
}

// endpointOf names where a client sends its requests, for messages.
func endpointOf(o s3.Options) string {
	if o.BaseEndpoint != nil {
		if u, err := url.Parse(*o.BaseEndpoint); err == nil {
			return store.Redact(u)
		}
		return "the configured endpoint"
	}
	return "AWS S3 (region " + o.Region + ")"
}

func init() {
	store.Register("s3", func(ctx context.Context, u *url.URL) (store.Driver, error) { return Open(ctx, u, nil) })
}
