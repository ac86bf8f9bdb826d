package gocloudstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sync"
	"sync/atomic"

	"gocloud.dev/blob"

	"github.com/statebucket/statebucket/core"
)

// lazyDir is the fileblob bucket of a gocloud+file directory that did not
// exist when [Open] ran. Like a file:// repository, the directory is
// created by the first write, never by opening or reading: until then a
// read finds core.ErrBucketNotFound.
type lazyDir struct {
	url    *url.URL // the fileblob URL, create_dir set when create is
	dir    string   // the directory, for messages
	create bool     // the first write creates the directory
	mu     sync.Mutex
	bucket atomic.Pointer[blob.Bucket]
}

// open returns the bucket, opening it if the directory exists, or, for a
// write when create is set, after creating it.
func (l *lazyDir) open(ctx context.Context, write bool) (*blob.Bucket, error) {
	if b := l.bucket.Load(); b != nil {
		return b, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.bucket.Load(); b != nil {
		return b, nil
	}
	if !write || !l.create {
		if _, err := os.Stat(l.dir); err != nil {
			return nil, l.missing(err)
		}
	}
	b, err := blob.DefaultURLMux().OpenBucketURL(ctx, l.url)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, l.missing(err)
		}
		return nil, fmt.Errorf("gocloudstore: open directory %q: %w", l.dir, err)
	}
	l.bucket.Store(b)
	return b, nil
}

// close closes the bucket if it was opened.
func (l *lazyDir) close() error {
	if b := l.bucket.Load(); b != nil {
		return b.Close()
	}
	return nil
}

// missing is the error of an operation on the directory while it does
// not exist, wrapping err.
func (l *lazyDir) missing(err error) error {
	hint := "the first write creates it"
	if !l.create {
		hint = "create it, or drop create_dir=false from the URL"
	}
	return fmt.Errorf("gocloudstore: repository directory %q does not exist (check the path; %s): %w: %w", l.dir, hint, core.ErrBucketNotFound, err)
}
