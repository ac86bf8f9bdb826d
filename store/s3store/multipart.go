package s3store

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/statebucket/statebucket/store"
)

// abortTimeout bounds the abort of a failed multipart upload, which runs
// even when the Put's context has ended.
const abortTimeout = 30 * time.Second

// putMultipart uploads body in parts, in parallel, and completes the
// upload only if every part landed and, when opts.SHA256 is given, the
// body's digest matches it. On any failure it aborts the upload.
func (d *Driver) putMultipart(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions) (err error) {
	key := d.key(name)
	att, optFn := d.newAttempts()
	created, err := d.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:            &d.bucket,
		Key:               key,
		ContentType:       contentType(opts),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
	}, optFn)
	if err != nil {
		return d.fail(ctx, err, att)
	}
	d.bucketSeen.Store(true)
	uploadID := created.UploadId
	defer func() {
		if err != nil {
			err = d.abort(ctx, key, uploadID, err)
		}
	}()

	parts, err := d.uploadParts(ctx, key, uploadID, body, size, store.SHA256ToCheck(body, opts.SHA256))
	if err != nil {
		return err
	}
	in := &s3.CompleteMultipartUploadInput{
		Bucket:          &d.bucket,
		Key:             key,
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}
	if opts.CreateOnly {
		in.IfNoneMatch = aws.String("*")
	}
	att, optFn = d.newAttempts()
	_, err = d.client.CompleteMultipartUpload(ctx, in, optFn)
	if err != nil && d.landed(ctx, key, uploadID, size, parts, err) {
		return nil
	}
	return d.fail(ctx, err, att)
}

// landed reports whether a CompleteMultipartUpload that failed with err
// completed the upload all the same: when the answer to an attempt that
// landed is lost, the retry finds the upload gone (NoSuchUpload) or, if
// create-only, the object there (412). The object is ours if the upload
// is gone and the object has the ETag S3 gives the upload of parts.
func (d *Driver) landed(ctx context.Context, key, uploadID *string, size int64, parts []types.CompletedPart, err error) bool {
	switch {
	case errorCode(err) == "NoSuchUpload":
	case statusCode(err) == http.StatusPreconditionFailed:
		_, lerr := d.client.ListParts(ctx, &s3.ListPartsInput{Bucket: &d.bucket, Key: key, UploadId: uploadID, MaxParts: aws.Int32(1)}, d.withTimeouts)
		if errorCode(lerr) != "NoSuchUpload" {
			return false // the upload is still there: another writer won
		}
	default:
		return false
	}
	return d.hasUploadETag(ctx, key, size, parts)
}

// uploadParts uploads the parts of body, PartConcurrency at a time, each
// an io.SectionReader over body with the CRC32C checksum the server
// verifies. One goroutine reads body once, in order, to compute the parts'
// checksums and, if want is not nil, the body's SHA-256 (see scanParts); a
// part goes up as soon as its checksum is known, and the reading, faster
// than any upload, soon runs ahead. It fails with core.ErrChecksumMismatch
// unless the digest is want.
func (d *Driver) uploadParts(ctx context.Context, key, uploadID *string, body io.ReaderAt, size int64, want []byte) ([]types.CompletedPart, error) {
	partSize := max(d.opts.PartSize, (size+maxParts-1)/maxParts)
	n := int((size + partSize - 1) / partSize)
	parts := make([]types.CompletedPart, n)
	scanned := make(chan int, n) // parts whose checksum is known
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(scanned)
		return scanParts(gctx, body, size, partSize, want, func(i int, crc32c string) {
			parts[i] = types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ChecksumCRC32C: aws.String(crc32c)}
			scanned <- i
		})
	})
	for range min(n, d.opts.PartConcurrency) {
		g.Go(func() error {
			for i := range scanned {
				off := int64(i) * partSize
				length := min(partSize, size-off)
				att, optFn := d.newAttempts()
				out, err := d.client.UploadPart(gctx, &s3.UploadPartInput{
					Bucket:            &d.bucket,
					Key:               key,
					UploadId:          uploadID,
					PartNumber:        parts[i].PartNumber,
					Body:              section(body, size, off, length),
					ContentLength:     aws.Int64(length),
					ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
					ChecksumCRC32C:    parts[i].ChecksumCRC32C,
				}, optFn, unsignedPayload)
				if err != nil {
					return d.fail(ctx, err, att)
				}
				parts[i].ETag = out.ETag
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return parts, nil
}

// abort aborts a failed multipart upload, so that its parts do not linger,
// and returns cause, noting a failure to abort.
func (d *Driver) abort(ctx context.Context, key, uploadID *string, cause error) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_, err := d.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &d.bucket, Key: key, UploadId: uploadID}, d.withTimeouts)
	if err != nil && errorCode(err) != "NoSuchUpload" {
		return store.RedactError(fmt.Errorf("%w (and aborting multipart upload %s failed, so its parts remain until a lifecycle rule removes them: %v)", cause, aws.ToString(uploadID), err))
	}
	return cause
}

// hasUploadETag reports whether the object key is the one the multipart
// upload of parts made: its size is size and its ETag the one S3 gives
// such an upload (the MD5 of the parts' MD5s, then "-" and their number).
func (d *Driver) hasUploadETag(ctx context.Context, key *string, size int64, parts []types.CompletedPart) bool {
	want, ok := multipartETag(parts)
	if !ok {
		return false
	}
	out, err := d.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &d.bucket, Key: key}, d.withTimeouts)
	return err == nil && aws.ToInt64(out.ContentLength) == size && strings.Trim(aws.ToString(out.ETag), `"`) == want
}

func multipartETag(parts []types.CompletedPart) (string, bool) {
	h := md5.New()
	for _, p := range parts {
		sum, err := hex.DecodeString(strings.Trim(aws.ToString(p.ETag), `"`))
		if err != nil || len(sum) != md5.Size {
			return "", false
		}
		h.Write(sum)
	}
	return fmt.Sprintf("%x-%d", h.Sum(nil), len(parts)), true
}
