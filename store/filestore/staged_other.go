//go:build !linux

package filestore

import (
	"context"
	"io"

	"github.com/statebucket/statebucket/store"
)

// staging is empty: deferred Puts are staged on Linux only (see the Linux
// Driver.stage).
type staging struct{}

func (*staging) init() {}

// batchable reports false: a group sync (syncfs) is Linux's.
func batchable(int) (batch, journaled bool) { return false, false }

// stage returns errNoStage: each file is synced on its own.
func (d *Driver) stage(context.Context, *openDir, string, string, io.ReaderAt, int64, store.PutOptions) error {
	return errNoStage
}

func (d *Driver) commitStaged() error { return nil }

func (d *Driver) settle(string) {}

func (d *Driver) discardStaged() {}
