package gcsstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"

	"github.com/statebucket/statebucket/core"
)

// fail returns the error of an operation that failed with err, mapped to
// the sentinels of package core and wrapping err. When ctx has ended, the
// error wraps ctx's error too, which the client's may not (it returns the
// last attempt's failure when the context ends while it waits to retry).
func (d *Driver) fail(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(err, ctxErr) {
			return fmt.Errorf("gcsstore: %w", err)
		}
		return fmt.Errorf("gcsstore: %w; the last attempt failed with: %w", ctxErr, err)
	}
	return d.mapError(err)
}

// objectFailed is fail for an operation on one object. GCS answers 404 to
// it when the object or the bucket is missing, and the client reports
// both as storage.ErrObjectNotExist: until the bucket has answered once,
// a listing tells which.
func (d *Driver) objectFailed(ctx context.Context, err error) error {
	mapped := d.fail(ctx, err)
	if !errors.Is(mapped, core.ErrNotFound) || errors.Is(mapped, core.ErrBucketNotFound) || d.bucketSeen.Load() {
		return mapped
	}
	it := d.bucket.Objects(ctx, &storage.Query{Prefix: d.prefix})
	it.PageInfo().MaxSize = 1
	_, lerr := it.Next()
	switch {
	case lerr == nil || errors.Is(lerr, iterator.Done):
		d.bucketSeen.Store(true)
		return mapped
	case errors.Is(lerr, storage.ErrBucketNotExist):
		return d.bucketNotFound(lerr)
	}
	return d.fail(ctx, lerr)
}

// putFailed is fail for an upload with the preconditions conds, to which
// GCS answers 404 only when the bucket is missing. For a conditional
// replacement (GenerationMatch), 412 says that the object is no longer at
// that generation, or is gone: a conflict, not a name taken.
func (d *Driver) putFailed(ctx context.Context, err error, conds storage.Conditions) error {
	if ctx.Err() == nil && (statusCode(err) == http.StatusNotFound || errors.Is(err, storage.ErrObjectNotExist)) {
		return d.bucketNotFound(err)
	}
	if ctx.Err() == nil && conds.GenerationMatch != 0 && statusCode(err) == http.StatusPreconditionFailed {
		return fmt.Errorf("gcsstore: the object is no longer at generation %d: %w: %w", conds.GenerationMatch, core.ErrConflict, err)
	}
	return d.fail(ctx, err)
}

// mapError maps err, an error of the client, to the sentinels of package
// core. It is the one place that knows GCS's answers.
func (d *Driver) mapError(err error) error {
	code := statusCode(err)
	var netErr *net.OpError
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("gcsstore: %w", err)
	case errors.Is(err, storage.ErrBucketNotExist):
		return d.bucketNotFound(err)
	case errors.Is(err, storage.ErrObjectNotExist) || code == http.StatusNotFound:
		return fmt.Errorf("gcsstore: %w: %w", core.ErrNotFound, err)
	case code == http.StatusPreconditionFailed:
		return fmt.Errorf("gcsstore: %w: %w", core.ErrExists, err)
	case code == http.StatusConflict:
		return fmt.Errorf("gcsstore: %w: %w", core.ErrConflict, err)
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return fmt.Errorf("gcsstore: access to bucket %q at %s denied: check the credentials in use "+
			"(Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default login`, "+
			"or the service account of the machine) and their roles on the bucket: %w: %w", d.name, d.where, core.ErrPermission, err)
	case code == http.StatusBadRequest && checksumRefused(err):
		return fmt.Errorf("gcsstore: the server received bytes that do not match their checksum: %w: %w", core.ErrChecksumMismatch, err)
	case errors.As(err, &netErr) && netErr.Op == "dial":
		return fmt.Errorf("gcsstore: cannot connect to %s: check that it is running: %w: %w", d.where, core.ErrTransient, err)
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500 || storage.ShouldRetry(err):
		return fmt.Errorf("gcsstore: %w: %w", core.ErrTransient, err)
	}
	return fmt.Errorf("gcsstore: %w", err)
}

func (d *Driver) bucketNotFound(err error) error {
	return fmt.Errorf("gcsstore: bucket %q does not exist at %s: create it or fix the URL: %w: %w", d.name, d.where, core.ErrBucketNotFound, err)
}

// checksumRefused reports whether err is GCS refusing an upload whose
// bytes do not match the CRC32C or MD5 sent with it. The answer has no
// code of its own: its message says "Provided CRC32C … doesn't match
// calculated CRC32C …".
func checksumRefused(err error) bool {
	var apiErr *googleapi.Error
	if !errors.As(err, &apiErr) {
		return false
	}
	msg := strings.ToLower(apiErr.Message + " " + apiErr.Body)
	return strings.Contains(msg, "doesn't match calculated") || strings.Contains(msg, "does not match calculated")
}

// statusCode returns the HTTP status of the answer in err, or 0.
func statusCode(err error) int {
	var apiErr *googleapi.Error
	if errors.As(err, &apiErr) {
		return apiErr.Code
	}
	return 0
}
