package gocloudstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"

	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/aws/smithy-go"
	"gocloud.dev/gcerrors"
	"google.golang.org/api/googleapi"

	"github.com/statebucket/statebucket/core"
)

// mapError maps err, an error of the bucket, to the sentinels of package
// core, by its gcerrors code and, where the code does not tell, by the
// service's own error. The result wraps err, so errors.As still reaches
// the service's error types (smithy.APIError, *googleapi.Error,
// *azcore.ResponseError, *os.PathError). createOnly says that err ends a
// create-only write, whose failed precondition means the name is taken.
// Once ctx has ended, the error wraps ctx's error.
func (d *Driver) mapError(ctx context.Context, err error, createOnly bool) error {
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		if !errors.Is(err, ctxErr) {
			err = fmt.Errorf("%w: %w", ctxErr, err)
		}
		return fmt.Errorf("gocloudstore: %w", err)
	}
	code, status := gcerrors.Code(err), statusCode(err)
	var netErr *net.OpError
	switch {
	case bucketMissing(err):
		return d.bucketNotFound(err)
	case status == http.StatusForbidden || status == http.StatusUnauthorized || code == gcerrors.PermissionDenied:
		// Before NotFound: gcsblob reports 403 as NotFound.
		return fmt.Errorf("gocloudstore: access to bucket %sdenied: check the credentials in use and their permissions: %w: %w", d.quotedName(), core.ErrPermission, err)
	case code == gcerrors.NotFound:
		return fmt.Errorf("gocloudstore: %w: %w", core.ErrNotFound, err)
	case code == gcerrors.AlreadyExists, createOnly && code == gcerrors.FailedPrecondition, createOnly && status == http.StatusPreconditionFailed:
		return fmt.Errorf("gocloudstore: %w: %w", core.ErrExists, err)
	case checksumCodes[apiCode(err)]:
		return fmt.Errorf("gocloudstore: the server received bytes that do not match their checksum: %w: %w", core.ErrChecksumMismatch, err)
	case status == http.StatusConflict:
		return fmt.Errorf("gocloudstore: %w: %w", core.ErrConflict, err)
	case errors.As(err, &netErr) && netErr.Op == "dial":
		return fmt.Errorf("gocloudstore: cannot connect to the server of bucket %s: check the endpoint and that the server is running: %w", d.quotedName(), err)
	case transient(code, status, err):
		return fmt.Errorf("gocloudstore: %w: %w", core.ErrTransient, err)
	}
	return fmt.Errorf("gocloudstore: %w", err)
}

// bucketNotFound returns the error of an operation that found the bucket
// missing, wrapping err.
func (d *Driver) bucketNotFound(err error) error {
	return fmt.Errorf("gocloudstore: bucket %sdoes not exist: create it or fix the URL: %w: %w", d.quotedName(), core.ErrBucketNotFound, err)
}

// checksumCodes are the error codes of S3 and MinIO for a body that does
// not match its checksum header.
var checksumCodes = map[string]bool{
	"BadDigest": true, "InvalidDigest": true, "XAmzContentChecksumMismatch": true,
	"XAmzContentSHA256Mismatch": true, "InvalidChecksum": true,
}

// apiCode returns the error code of an AWS API error in err, or "".
func apiCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

// quotedName returns the bucket's name quoted and followed by a space, or
// nothing when it is not known.
func (d *Driver) quotedName() string {
	if d.name == "" {
		return ""
	}
	return fmt.Sprintf("%q ", d.name)
}

// bucketMissing reports whether err says the bucket (S3, GCS) or container
// (Azure) does not exist.
func bucketMissing(err error) bool {
	var azErr *azcore.ResponseError
	return apiCode(err) == "NoSuchBucket" ||
		errors.Is(err, storage.ErrBucketNotExist) ||
		errors.As(err, &azErr) && azErr.ErrorCode == "ContainerNotFound"
}

// statusCode returns the HTTP status of the service's answer in err, or 0.
func statusCode(err error) int {
	var withStatus interface{ HTTPStatusCode() int } // aws-sdk-go-v2, smithy
	var gErr *googleapi.Error
	var azErr *azcore.ResponseError
	switch {
	case errors.As(err, &withStatus):
		return withStatus.HTTPStatusCode()
	case errors.As(err, &gErr):
		return gErr.Code
	case errors.As(err, &azErr):
		return azErr.StatusCode
	}
	return 0
}

// transient reports whether err may not happen again: throttling, a
// server error, a timeout, a broken connection.
func transient(code gcerrors.ErrorCode, status int, err error) bool {
	var netErr net.Error
	switch {
	case code == gcerrors.ResourceExhausted || code == gcerrors.DeadlineExceeded || code == gcerrors.Internal:
		return true
	case status == http.StatusTooManyRequests || status >= 500:
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.As(err, &netErr)
}
