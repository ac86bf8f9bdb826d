//go:build !linux

package filestore

import (
	"context"
	"io"
	"os"
)

// openDirFile returns nil: unnamed files are Linux's.
func openDirFile(*os.Root) (*os.File, int) { return nil, -1 }

// createUnnamed returns errNoUnnamed: unnamed files (O_TMPFILE) are
// Linux's.
func (d *Driver) createUnnamed(context.Context, *openDir, string, string, io.ReaderAt, int64, []byte) error {
	return errNoUnnamed
}
