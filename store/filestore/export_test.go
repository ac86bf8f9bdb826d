package filestore

// WithoutUnnamedFiles makes d's create-only Puts go through temporary
// files, as on a file system that refuses unnamed ones.
func WithoutUnnamedFiles(d *Driver) { d.noUnnamed.Store(true) }
