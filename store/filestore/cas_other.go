//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package filestore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
)

// lockDir fails: conditional Puts need flock, which this system lacks.
func lockDir(context.Context, *os.Root, string) (func(), error) {
	return nil, fmt.Errorf("filestore: conditional writes need flock, which %s lacks: %w", runtime.GOOS, errors.ErrUnsupported)
}

// fileVersion returns "": without conditional writes, versions serve no
// purpose.
func fileVersion(fs.FileInfo) string { return "" }
