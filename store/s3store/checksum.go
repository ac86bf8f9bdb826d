package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/statebucket/statebucket/core"
)

// scanChunk is the most scanParts reads at once: small enough to stay in
// the CPU's cache while both of its hashes run over it, and to check the
// context often.
const scanChunk = 256 << 10

// castagnoli is the CRC32C table; hash/crc32 computes it with the CPU's
// CRC32 instructions where there are some (amd64, arm64).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// unsignedPayload is the option of every upload: SigV4 signs the request
// but not its body (X-Amz-Content-Sha256: UNSIGNED-PAYLOAD), so the SDK
// does not hash the body with SHA-256 before sending it, as it does over
// plain HTTP. The body's integrity rests instead on the checksum header
// each upload carries (x-amz-checksum-sha256 or x-amz-checksum-crc32c),
// computed by the driver or given by the engine, which the server verifies
// before it stores anything. With a checksum header set, the SDK computes
// no checksum of its own either.
var unsignedPayload = s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)

// scanParts reads the first size bytes of body once, in order, and calls
// part with the index and the base64 CRC32C of each part of partSize bytes
// as soon as it has read the part. If want is not nil, it also hashes the
// bytes, and fails with core.ErrChecksumMismatch, after the last call to
// part, unless their SHA-256 is want. It stops, failing with ctx's error,
// once ctx is done.
//
// Reading the bytes once for both sums ties them together: the server
// stores a part only if its CRC32C matches, so the bytes stored are the
// ones whose SHA-256 was checked (short of a CRC collision), even if body
// changed in between.
func scanParts(ctx context.Context, body io.ReaderAt, size, partSize int64, want []byte, part func(i int, crc32c string)) error {
	var sha hash.Hash
	if want != nil {
		sha = sha256.New()
	}
	crc := crc32.New(castagnoli)
	buf := make([]byte, min(size, scanChunk))
	r := sizedReaderAt{body, size}
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		partEnd := min((off/partSize+1)*partSize, size)
		chunk := buf[:min(int64(len(buf)), partEnd-off)]
		n, err := r.ReadAt(chunk, off)
		if n < len(chunk) {
			if _, short := errors.AsType[*shortBodyError](err); short {
				return err
			}
			return fmt.Errorf("s3store: read the body to checksum it: %w", err)
		}
		crc.Write(chunk)
		if sha != nil {
			sha.Write(chunk)
		}
		off += int64(n)
		if off == partEnd {
			part(int((off-1)/partSize), base64.StdEncoding.EncodeToString(crc.Sum(nil)))
			crc.Reset()
		}
	}
	if sha == nil {
		return nil
	}
	if got := sha.Sum(nil); !bytes.Equal(got, want) {
		return fmt.Errorf("s3store: the body's SHA-256 is %x, not the expected %x: %w", got, want, core.ErrChecksumMismatch)
	}
	return nil
}

// crc32cOf returns the base64 CRC32C of the first size bytes of body.
func crc32cOf(ctx context.Context, body io.ReaderAt, size int64) (string, error) {
	sum := base64.StdEncoding.EncodeToString(crc32.New(castagnoli).Sum(nil)) // of no bytes
	err := scanParts(ctx, body, size, max(size, 1), nil, func(_ int, crc32c string) { sum = crc32c })
	return sum, err
}
