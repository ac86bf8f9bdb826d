package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/statebucket/statebucket/core"
)

// objectReader reads an object, or a range of it, and when the connection
// breaks part-way (a read fails with io.ErrUnexpectedEOF or a connection
// error), goes on with a GetObject of the rest of the range, conditional
// on the object's ETag so that the bytes all come from the same version.
// It gives up after the client's retryer's MaxAttempts attempts in a row
// that yield no byte.
//
// It holds the context of the Get that opened it, as an HTTP response
// body does, and uses it for the GetObjects that resume.
type objectReader struct {
	ctx  context.Context
	d    *Driver
	key  *string
	etag *string
	off  int64 // the offset in the object of the next byte to read
	end  int64 // the offset where the range ends, exclusive; -1: unknown

	closed   bool
	body     io.ReadCloser // nil between a failure and its resumption
	failures int           // failed attempts since the last byte read
	cause    error         // the last failure
}

func (r *objectReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, errors.New("s3store: read after Close")
	}
	for {
		if r.body == nil {
			if r.end >= 0 && r.off >= r.end {
				return 0, io.EOF
			}
			if err := r.resume(); err != nil {
				return 0, err
			}
		}
		n, err := r.body.Read(p)
		r.off += int64(n)
		if n > 0 {
			r.failures = 0
		}
		if err == nil || err == io.EOF || !resumable(err) || r.ctx.Err() != nil {
			if err != nil && err != io.EOF {
				err = r.d.fail(r.ctx, err, nil)
			}
			return n, err
		}
		r.body.Close()
		r.body = nil
		r.cause = err
		r.failures++
		if n > 0 {
			return n, nil
		}
	}
}

// resumable reports whether a read failed because the connection broke.
func resumable(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || retry.RetryableConnectionError{}.IsErrorRetryable(err) == aws.TrueTernary
}

// resume opens the rest of the range, after waiting as the retryer says.
func (r *objectReader) resume() error {
	retryer := r.d.client.Options().Retryer
	if r.failures >= retryer.MaxAttempts() {
		return fmt.Errorf("s3store: reading %q broke off %d times at byte %d: %w", aws.ToString(r.key), r.failures, r.off, r.cause)
	}
	if delay, err := retryer.RetryDelay(r.failures, r.cause); err == nil && delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-r.ctx.Done():
			t.Stop()
			return fmt.Errorf("s3store: %w; reading broke off with: %w", r.ctx.Err(), r.cause)
		case <-t.C:
		}
	}
	att, optFn := newAttempts()
	out, err := r.d.client.GetObject(r.ctx, &s3.GetObjectInput{
		Bucket:  &r.d.bucket,
		Key:     r.key,
		Range:   byteRange(r.off, r.end),
		IfMatch: r.etag,
	}, optFn, noResponseChecksum)
	if err != nil {
		if statusCode(err) == http.StatusPreconditionFailed {
			return fmt.Errorf("s3store: object %q changed while being read: %w: %w", aws.ToString(r.key), core.ErrConflict, err)
		}
		return r.d.fail(r.ctx, err, att)
	}
	r.body = out.Body
	return nil
}

// byteRange returns the Range header of the bytes from off to end,
// exclusive, or to the object's end if end is -1.
func byteRange(off, end int64) *string {
	r := "bytes=" + strconv.FormatInt(off, 10) + "-"
	if end >= 0 {
		r += strconv.FormatInt(end-1, 10)
	}
	return &r
}

func (r *objectReader) Close() error {
	r.closed = true
	if r.body == nil {
		return nil
	}
	return r.body.Close()
}
