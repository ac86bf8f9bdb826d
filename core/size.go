package core

// UnknownSize is the Size of a [BlobExportEntry] whose length is not known
// before its Reader is read, such as a versioned blob that arrives as a
// stream. Any negative Size means the same; a Size of 0 declares an empty
// blob, and a reader that then yields bytes fails the export.
const UnknownSize int64 = -1
