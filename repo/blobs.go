package repo

import (
	"context"
	"fmt"
	"io"
	"time"

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

// CreateBlob stores size bytes of body as the blob whose digest is d, as
// PutBlob does, but create-only: if a blob is stored under d already, it
// writes nothing and fails with an error matching core.ErrExists. A
// create-only write tried again after a transient failure may meet the
// blob an earlier attempt stored (see store.Store.Put): that is
// core.ErrExists too. Either way a blob named d is stored; callers that
// must know its size ask [Repo.StatBlob].
func (r *Repo) CreateBlob(ctx context.Context, d digest.Digest, body io.ReaderAt, size int64) error {
	if err := checkDigest("create blob", d); err != nil {
		return err
	}
	return r.st.Put(ctx, BlobName(d), body, size, store.PutOptions{SHA256: d.Sum(), DeferSync: true, CreateOnly: true})
}

// Object is a stored blob or view, as a listing reports it.
type Object struct {
	Digest  digest.Digest // the blob's digest, or the id of the view's snapshot
	Size    int64
	ModTime time.Time // when it was stored, by the store's clock
}

// ListBlobs calls fn with the digest and size of every stored blob, in no
// particular order. fn runs while the listing holds a request slot: it
// must not wait for other calls on the repository (see store.Store).
func (r *Repo) ListBlobs(ctx context.Context, fn func(d digest.Digest, size int64) error) error {
	return r.ListBlobObjects(ctx, func(o Object) error { return fn(o.Digest, o.Size) })
}

// ListBlobObjects calls fn with every stored blob, as ListBlobs does, with
// the time it was stored.
func (r *Repo) ListBlobObjects(ctx context.Context, fn func(Object) error) error {
	return r.list(ctx, blobsPrefix, ParseBlobName, fn)
}

// list calls fn with the objects under prefix whose names parse names.
func (r *Repo) list(ctx context.Context, prefix string, parse func(string) (digest.Digest, bool), fn func(Object) error) error {
	return r.st.List(ctx, prefix, func(info store.ObjectInfo) error {
		if d, ok := parse(info.Name); ok {
			return fn(Object{Digest: d, Size: info.Size, ModTime: info.ModTime})
		}
		return nil
	})
}

// DeleteBlob removes the blob whose digest is d. A missing blob is an
// error matching core.ErrNotFound. Only a garbage collection, holding an
// exclusive lock, may delete blobs: exports rely on the blobs they list.
func (r *Repo) DeleteBlob(ctx context.Context, d digest.Digest) error {
	return r.delete(ctx, "delete blob", d, BlobName)
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

// BlobReaderAt returns a reader of the blob whose digest is d, which its
// manifest entry says holds size bytes, for the body of a Put that copies
// it to another repository without spooling it (see store.ReaderAt: its
// reads take no request slot, and it reports a blob of another size).
// The bytes are not checked: the Put checks them against d.
func (r *Repo) BlobReaderAt(ctx context.Context, d digest.Digest, size int64) (*store.ReaderAt, error) {
	if err := checkDigest("open blob", d); err != nil {
		return nil, err
	}
	return r.st.ReaderAt(ctx, BlobName(d), size)
}

// StatBlob returns the stored size of the blob whose digest is d.
func (r *Repo) StatBlob(ctx context.Context, d digest.Digest) (int64, error) {
	return r.stat(ctx, "stat blob", d, BlobName)
}

// Sync makes every blob stored so far durable, on stores that defer it
// (see store.Store.Sync). Writers call it before they commit a snapshot.
func (r *Repo) Sync(ctx context.Context) error { return r.st.Sync(ctx) }
