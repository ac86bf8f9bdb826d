package gocloudstore_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"
	"gocloud.dev/blob/driver"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/gocloudstore"
)

// checkThenWrite is a gocloud.dev driver whose IfNotExist, like
// fileblob's, checks that the key is missing and then writes, with hooks
// between the steps so a test can interleave two writers. It keeps its
// objects in a memblob bucket and implements only what Put and Get use.
type checkThenWrite struct {
	driver.Bucket // nil: the methods the tests do not use panic
	base          *blob.Bucket
	// afterCheck and afterWrite, if set, are called with the first byte
	// of the content being written.
	afterCheck, afterWrite func(first byte)
}

var errTaken = errors.New("checkThenWrite: key exists")

func (b *checkThenWrite) ErrorCode(err error) gcerrors.ErrorCode {
	if errors.Is(err, errTaken) {
		return gcerrors.FailedPrecondition
	}
	return gcerrors.Code(err)
}

func (b *checkThenWrite) As(any) bool             { return false }
func (b *checkThenWrite) ErrorAs(error, any) bool { return false }
func (b *checkThenWrite) Close() error            { return nil }

func (b *checkThenWrite) Attributes(ctx context.Context, key string) (*driver.Attributes, error) {
	a, err := b.base.Attributes(ctx, key)
	if err != nil {
		return nil, err
	}
	return &driver.Attributes{Size: a.Size, ModTime: a.ModTime}, nil
}

func (b *checkThenWrite) NewRangeReader(ctx context.Context, key string, offset, length int64, _ *driver.ReaderOptions) (driver.Reader, error) {
	r, err := b.base.NewRangeReader(ctx, key, offset, length, nil)
	if err != nil {
		return nil, err
	}
	return rangeReader{r}, nil
}

type rangeReader struct{ *blob.Reader }

func (r rangeReader) Attributes() *driver.ReaderAttributes {
	return &driver.ReaderAttributes{Size: r.Size(), ModTime: r.ModTime()}
}

func (b *checkThenWrite) NewTypedWriter(ctx context.Context, key, _ string, opts *driver.WriterOptions) (driver.Writer, error) {
	return &checkingWriter{ctx: ctx, b: b, key: key, ifNotExist: opts.IfNotExist}, nil
}

type checkingWriter struct {
	ctx        context.Context
	b          *checkThenWrite
	key        string
	ifNotExist bool
	buf        bytes.Buffer
}

func (w *checkingWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }

func (w *checkingWriter) Close() error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	first := w.buf.Bytes()[0]
	if w.ifNotExist {
		if ok, err := w.b.base.Exists(w.ctx, w.key); err != nil || ok {
			return errors.Join(err, errTaken)
		}
	}
	if w.b.afterCheck != nil {
		w.b.afterCheck(first)
	}
	if err := w.b.base.WriteAll(w.ctx, w.key, w.buf.Bytes(), nil); err != nil {
		return err
	}
	if w.b.afterWrite != nil {
		w.b.afterWrite(first)
	}
	return nil
}

// TestCreateOnlyReadBack interleaves two create-only writers of one name,
// as two processes might, over a driver whose IfNotExist is not atomic: B
// passes the check, then A checks, writes and, before it reads back, B
// writes. Both writes report success to the driver; the read-back makes
// A's Put fail with core.ErrExists, so exactly one writer wins, and the
// object holds the winner's content.
func TestCreateOnlyReadBack(t *testing.T) {
	base := memblob.OpenBucket(nil)
	defer base.Close()
	racy := &checkThenWrite{base: base}
	bChecked, releaseB, bWritten := make(chan struct{}), make(chan struct{}), make(chan struct{})
	racy.afterCheck = func(first byte) {
		if first == 'B' {
			close(bChecked)
			<-releaseB
		}
	}
	racy.afterWrite = func(first byte) {
		switch first {
		case 'A':
			close(releaseB)
			<-bWritten
		case 'B':
			close(bWritten)
		}
	}
	// Two buckets over one driver: two writers that do not share the
	// driver's in-process locks, as two processes would not.
	a := store.New(gocloudstore.New(blob.NewBucket(racy), nil), "a", nil)
	b := store.New(gocloudstore.New(blob.NewBucket(racy), nil), "b", nil)
	name := "snapshots/1/manifest.json"
	contentA, contentB := []byte("A's manifest"), []byte("B's manifest, longer")

	var errB error
	var wg sync.WaitGroup
	wg.Go(func() { errB = b.PutBytes(t.Context(), name, contentB, store.PutOptions{CreateOnly: true}) })
	<-bChecked
	errA := a.PutBytes(t.Context(), name, contentA, store.PutOptions{CreateOnly: true})
	wg.Wait()

	require.NoError(t, errB)
	require.ErrorIs(t, errA, core.ErrExists)
	got, err := a.GetBytes(t.Context(), name, 1<<10)
	require.NoError(t, err)
	assert.Equal(t, contentB, got)
}
