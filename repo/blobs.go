package repo

import (
	"context"
	"fmt"
	"io"

	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/store"
)

// MismatchError reports stored bytes that are not the ones a manifest
// records: a blob or a view whose size or SHA-256 digest differs. It
// unwraps to core.ErrSizeMismatch or core.ErrChecksumMismatch.
type MismatchError struct {
	View     bool   // the snapshot's view, not a blob
	Key      string // the blob's key, or the view's object name
	Expected string // the recorded size or digest
	Actual   string // what was read
	Err      error  // core.ErrSizeMismatch or core.ErrChecksumMismatch
}

func (e *MismatchError) Error() string {
	what := "blob"
	if e.View {
		what = "view"
	}
	return fmt.Sprintf("%s %q: %v: expected %s, got %s", what, e.Key, e.Err, e.Expected, e.Actual)
}

// Unwrap returns core.ErrSizeMismatch or core.ErrChecksumMismatch.
func (e *MismatchError) Unwrap() error { return e.Err }

// checkDigest refuses a digest that is not valid, as bad usage.
func checkDigest(op string, d digest.Digest) error {
	if _, err := digest.Parse(string(d)); err != nil {
		return fmt.Errorf("repo: %s: %w", op, err)
	}
	return nil
}

// PutBlob stores size bytes of body as the blob whose digest is d. The
// store checks the digest (see store.PutOptions.SHA256) and may defer
// making the blob durable until [Repo.Sync].
func (r *Repo) PutBlob(ctx context.Context, d digest.Digest, body io.ReaderAt, size int64) error {
	if err := checkDigest("put blob", d); err != nil {
		return err
	}
	return r.st.Put(ctx, BlobName(d), body, size, store.PutOptions{SHA256: d.Sum(), DeferSync: true})
}

// ListBlobs calls fn with the digest and size of every stored blob, in no
// particular order. fn runs while the listing holds a request slot: it
// must not wait for other calls on the repository (see store.Store).
func (r *Repo) ListBlobs(ctx context.Context, fn func(d digest.Digest, size int64) error) error {
	return r.st.List(ctx, blobsPrefix, func(info store.ObjectInfo) error {
		if d, ok := ParseBlobName(info.Name); ok {
			return fn(d, info.Size)
		}
		return nil
	})
}

// OpenBlob opens the blob whose digest is d for reading. The bytes are
// not checked: readers verify them against the digest.
func (r *Repo) OpenBlob(ctx context.Context, d digest.Digest) (io.ReadCloser, error) {
	if err := checkDigest("open blob", d); err != nil {
		return nil, err
	}
	return r.st.Get(ctx, BlobName(d))
}

// OpenBlobRange opens length bytes of the blob whose digest is d, from
// offset (see store.Store.GetRange).
func (r *Repo) OpenBlobRange(ctx context.Context, d digest.Digest, offset, length int64) (io.ReadCloser, error) {
	if err := checkDigest("open blob", d); err != nil {
		return nil, err
	}
	return r.st.GetRange(ctx, BlobName(d), offset, length)
}

// StatBlob returns the stored size of the blob whose digest is d.
func (r *Repo) StatBlob(ctx context.Context, d digest.Digest) (int64, error) {
	if err := checkDigest("stat blob", d); err != nil {
		return 0, err
	}
	info, err := r.st.Stat(ctx, BlobName(d))
	return info.Size, err
}

// Sync makes every blob stored so far durable, on stores that defer it
// (see store.Store.Sync). Writers call it before they commit a snapshot.
func (r *Repo) Sync(ctx context.Context) error { return r.st.Sync(ctx) }
