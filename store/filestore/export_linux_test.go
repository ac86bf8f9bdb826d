package filestore

// Batchable reports whether the file system of dir takes staged files.
func Batchable(dir string) bool {
	batch, _ := traits(dir)
	return batch
}

// Journaled reports whether the file system of dir stages files in the
// staging directory.
func Journaled(dir string) bool {
	_, journaled := traits(dir)
	return journaled
}

func traits(dir string) (batch, journaled bool) {
	d, err := New(dir, nil)
	if err != nil {
		return false, false
	}
	defer d.Close()
	r, err := d.open(false)
	if err != nil {
		return false, false
	}
	f, err := r.Open(".")
	if err != nil {
		return false, false
	}
	defer f.Close()
	return batchable(int(f.Fd()))
}

// SetStageGroup makes d commit its staged files in groups of n.
func SetStageGroup(d *Driver, n int) { d.staged.limit = n }

// StageMax is the largest body a deferred Put stages.
const StageMax = stageMax
