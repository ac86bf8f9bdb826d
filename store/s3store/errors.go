package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/statebucket/statebucket/core"
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
	checksumCodes = map[string]bool{
		"BadDigest": true, "InvalidDigest": true, "XAmzContentChecksumMismatch": true,
		"XAmzContentSHA256Mismatch": true, "InvalidChecksum": true,
	}
)

// fail returns the error of an operation that failed with err, mapped to
// the sentinels of package core and wrapping err. When ctx has ended, the
// error wraps ctx's error, and the last failure of the operation's
// attempts (att, which may be nil) if the retryer was waiting to try
// again.
func (d *Driver) fail(ctx context.Context, err error, att *attempts) error {
	if err == nil {
		return nil
	}
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
	}
	return fmt.Errorf("s3store: %w", err)
}

func (d *Driver) bucketNotFound(err error) error {
	return fmt.Errorf("s3store: bucket %q does not exist at %s: create it or fix the URL: %w: %w", d.bucket, d.endpoint, core.ErrBucketNotFound, err)
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

// attempts records the last failure of the attempts of one operation.
type attempts struct {
	mu   sync.Mutex
	last error
}

// newAttempts returns an attempts and the per-operation option that
// installs it: it wraps the client's retryer in one that records each
// attempt's failure and also retries responses cut short.
func newAttempts() (*attempts, func(*s3.Options)) {
	a := &attempts{}
	return a, func(o *s3.Options) {
		o.Retryer = &recordingRetryer{RetryerV2: asRetryerV2(o.Retryer), att: a}
	}
}

func (a *attempts) record(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.last = err
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

// recordingRetryer is the retryer of one operation (see newAttempts).
type recordingRetryer struct {
	aws.RetryerV2
	att *attempts
}

// IsErrorRetryable records err, unless it is the context's, and reports
// whether the operation may be attempted again: when the client's retryer
// says so, or when the response was cut short (io.ErrUnexpectedEOF, which
// the SDK's standard retryer does not retry: a response body that breaks
// off is a broken connection all the same), but never when the request's
// body is shorter than its size.
func (r *recordingRetryer) IsErrorRetryable(err error) bool {
	if canceled(err) {
		return false
	}
	r.att.record(err)
	var short *shortBodyError
	if errors.As(err, &short) {
		return false
	}
	return r.RetryerV2.IsErrorRetryable(err) || errors.Is(err, io.ErrUnexpectedEOF)
}

// canceled reports whether err is the end of a context.
func canceled(err error) bool {
	var c interface{ CanceledError() bool }
	return errors.As(err, &c) && c.CanceledError() ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func asRetryerV2(r aws.Retryer) aws.RetryerV2 {
	switch r := r.(type) {
	case nil:
		return retry.NewStandard()
	case aws.RetryerV2:
		return r
	default:
		return retryerV1{r}
	}
}

// retryerV1 adapts an aws.Retryer that lacks GetAttemptToken.
type retryerV1 struct{ aws.Retryer }

func (r retryerV1) GetAttemptToken(context.Context) (func(error) error, error) {
	return r.GetInitialToken(), nil
}
