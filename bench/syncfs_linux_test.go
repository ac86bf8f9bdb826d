package bench

import (
	"os"

	"golang.org/x/sys/unix"
)

// groupSyncs is set where groupSync syncs a whole file system.
const groupSyncs = true

// groupSync makes every file written to the file system of dir durable
// in one call (syncfs), as the directory driver commits a group of
// staged files.
func groupSync(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
