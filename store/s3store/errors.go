package s3store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
)

// Error codes of S3 and MinIO, by the sentinel they map to.
var (
	notFoundCodes = map[string]bool{"NoSuchKey": true, "NotFound": true, "NoSuchVersion": true}
	existsCodes   = map[string]bool{"PreconditionFailed": true, "ConditionalRequestConflict": true}
	deniedCodes   = map[string]bool{
		"AccessDenied": true, "AllAccessDisabled": true, "InvalidAccessKeyId": true,
		"SignatureDoesNotMatch": true, "InvalidToken": true, "ExpiredToken": true,
		"InvalidSecurity": true, "AccountProblem": true,
	}
	transientCodes = map[string]bool{
		"SlowDown": true, "Throttling": true, "ThrottlingException": true, "RequestTimeout": true,
		"InternalError": true, "ServiceUnavailable": true, "XMinioServerNotInitialized": true,
	}
	checksumCodes = map[string]bool{
		"BadDigest": true, "InvalidDigest": true, "XAmzContentChecksumMismatch": true,
		"XAmzContentSHA256Mismatch": true, "InvalidChecksum": true,
	}
)

// fail returns the error of an operation that failed with err, mapped to
// the sentinels of package core and wrapping err, its text stripped of
// secrets (the SDK repeats endpoints as they were given, credentials
// included). When ctx has ended, the error wraps ctx's error, and the last
// failure of the operation's attempts (att, which may be nil) if the
// retryer was waiting to try again.
func (d *Driver) fail(ctx context.Context, err error, att *attempts) error {
	if err == nil {
		return nil
	}
	return store.RedactError(d.failed(ctx, err, att))
}

func (d *Driver) failed(ctx context.Context, err error, att *attempts) error {
	ctxErr := ctx.Err()
	if ctxErr == nil {
		return d.mapError(err)
	}
	if !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w: %w", ctxErr, err)
	}
	if last := att.lastError(); last != nil && !errors.Is(err, last) {
		return fmt.Errorf("s3store: %w; the last attempt failed with: %w", err, last)
	}
	return fmt.Errorf("s3store: %w", err)
}

// mapError maps err, an error of the SDK, to the sentinels of package
// core. It is the one place that knows the error codes of S3.
func (d *Driver) mapError(err error) error {
	code, status := errorCode(err), statusCode(err)
	var netErr *net.OpError
	switch {
	case errors.As(err, new(*TimeoutError)):
		return fmt.Errorf("s3store: %w", err) // transient, and says so
	case errors.As(err, &netErr) && netErr.Op == "dial":
		return fmt.Errorf("s3store: cannot connect to %s: check the endpoint and that the server is running: %w", d.endpoint, err)
	case code == "NoSuchBucket":
		return d.bucketNotFound(err)
	case notFoundCodes[code] || status == 404:
		return fmt.Errorf("s3store: %w: %w", core.ErrNotFound, err)
	case existsCodes[code] || status == 412:
		return fmt.Errorf("s3store: %w: %w", core.ErrExists, err)
	case status == 409:
		return fmt.Errorf("s3store: %w: %w", core.ErrConflict, err)
	case deniedCodes[code] || status == 403:
		return fmt.Errorf("s3store: access to bucket %q at %s denied: check the credentials in use "+
			"(environment, profile, web identity) and their permissions: %w: %w", d.bucket, d.endpoint, core.ErrPermission, err)
	case checksumCodes[code]:
		return fmt.Errorf("s3store: the server received bytes that do not match their checksum: %w: %w", core.ErrChecksumMismatch, err)
	case code == "InvalidBucketName":
		return fmt.Errorf("s3store: bucket name %q is not valid at %s: %w: %w", d.bucket, d.endpoint, core.ErrInvalid, err)
	case transientCodes[code] || status == http.StatusTooManyRequests || (status >= 500 && status != http.StatusNotImplemented) ||
		retry.RetryableConnectionError{}.IsErrorRetryable(err) == aws.TrueTernary:
		return fmt.Errorf("s3store: %w: %w", core.ErrTransient, err)
	}
	return fmt.Errorf("s3store: %w", err)
}

func (d *Driver) bucketNotFound(err error) error {
	return store.RedactError(fmt.Errorf("s3store: bucket %q does not exist at %s: create it or fix the URL: %w: %w", d.bucket, d.endpoint, core.ErrBucketNotFound, err))
}

// errorCode returns the S3 error code in err, or "".
func errorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

// statusCode returns the HTTP status of the response in err, or 0.
func statusCode(err error) int {
	var respErr interface{ HTTPStatusCode() int }
	if errors.As(err, &respErr) {
		return respErr.HTTPStatusCode()
	}
	return 0
}

// attempts is the retryer of one operation: the client's own, which also
// records the last failure, so that an operation whose context ends while
// it waits to try again says why it was trying, and which never retries a
// request whose body is shorter than its size, as no retry mends that. It
// applies to retryers of the aws.RetryerV2 kind, which the SDK's are.
type attempts struct {
	aws.RetryerV2
	mu   sync.Mutex
	last error
}

// newAttempts returns an attempts and the per-operation option that
// installs it, and the driver's timeouts (see [watchdog]).
func (d *Driver) newAttempts() (*attempts, func(*s3.Options)) {
	a := &attempts{}
	return a, func(o *s3.Options) {
		if r, ok := o.Retryer.(aws.RetryerV2); ok {
			a.RetryerV2 = r
			o.Retryer = a
		}
		d.withTimeouts(o)
	}
}

// IsErrorRetryable records err, unless it is the context's, and reports
// whether the client's retryer would try again.
func (a *attempts) IsErrorRetryable(err error) bool {
	var c interface{ CanceledError() bool }
	if errors.As(err, &c) && c.CanceledError() || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	a.mu.Lock()
	a.last = err
	a.mu.Unlock()
	if _, short := errors.AsType[*shortBodyError](err); short {
		return false
	}
	return a.RetryerV2.IsErrorRetryable(err)
}

// lastError returns the last failure recorded; a nil *attempts has none.
func (a *attempts) lastError() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}
