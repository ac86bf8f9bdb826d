package coretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"

	"github.com/statebucket/statebucket/core"
)

var (
	_ core.BlobVisitor = (*MemoryVisitor)(nil)
	_ core.BlobSource  = (*MemorySource)(nil)
)

// MemoryVisitor is a [core.BlobVisitor] that reads every blob into memory.
// It records the keys in the order visited and the size of every batch, so
// tests can check what a service exported.
//
// Visit reads each entry to the end, with [core.ReadBlob], and closes
// every reader it is handed, also after an error. It fails (after closing all readers) when a reader
// is nil or fails, when an entry states a size that differs from the
// bytes read (core.ErrSizeMismatch), or when a key was already visited
// (core.ErrExists); a key seen twice is still recorded by Keys.
//
// The zero value is ready to use. A MemoryVisitor is safe for concurrent
// use.
type MemoryVisitor struct {
	mu      sync.Mutex
	blobs   map[string][]byte
	keys    []string
	batches []int
}

// Visit implements core.BlobVisitor.
func (v *MemoryVisitor) Visit(ctx context.Context, batch []core.BlobExportEntry) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.batches = append(v.batches, len(batch))
	if v.blobs == nil {
		v.blobs = make(map[string][]byte)
	}
	err := ctx.Err()
	for _, e := range batch {
		v.keys = append(v.keys, e.Key)
		if err != nil {
			closeEntry(e)
			continue
		}
		err = v.read(e)
	}
	return err
}

// read reads and closes e and stores its bytes.
func (v *MemoryVisitor) read(e core.BlobExportEntry) error {
	if e.Reader == nil {
		return fmt.Errorf("coretest: memory visitor: blob %q: nil reader: %w", e.Key, core.ErrInvalid)
	}
	data, err := core.ReadBlob(e.Reader, e.Size)
	if err = errors.Join(err, e.Reader.Close()); err != nil {
		return fmt.Errorf("coretest: memory visitor: blob %q: %w", e.Key, err)
	}
	if _, dup := v.blobs[e.Key]; dup {
		return fmt.Errorf("coretest: memory visitor: blob %q visited twice: %w", e.Key, core.ErrExists)
	}
	v.blobs[e.Key] = data
	return nil
}

func closeEntry(e core.BlobExportEntry) {
	if e.Reader != nil {
		_ = e.Reader.Close() // the visit already failed; this error adds nothing
	}
}

// Blobs returns a copy of the map of blob keys to bytes read so far.
func (v *MemoryVisitor) Blobs() map[string][]byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	m := make(map[string][]byte, len(v.blobs))
	for k, data := range v.blobs {
		m[k] = slices.Clone(data)
	}
	return m
}

// Keys returns the keys of every entry visited, in order, duplicates
// included.
func (v *MemoryVisitor) Keys() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.keys)
}

// BatchSizes returns the number of entries of each batch visited, in order.
func (v *MemoryVisitor) BatchSizes() []int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.batches)
}

// MemorySource is a [core.BlobSource] serving blobs from a map. It records
// the keys it is asked for, in order, found or not.
//
// The zero value is an empty source: every Fetch fails with
// core.ErrNotFound. A MemorySource is safe for concurrent use.
type MemorySource struct {
	mu      sync.Mutex
	blobs   map[string][]byte
	fetched []string
}

// NewMemorySource returns a source serving blobs. It copies the map but
// not the byte slices, which readers share: do not modify them while the
// source is in use.
func NewMemorySource(blobs map[string][]byte) *MemorySource {
	return &MemorySource{blobs: maps.Clone(blobs)}
}

// Fetch returns a reader over the bytes of key, or an error matching
// core.ErrNotFound and naming key.
func (s *MemorySource) Fetch(ctx context.Context, key string) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetched = append(s.fetched, key)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("coretest: memory source: fetch %q: %w", key, err)
	}
	data, ok := s.blobs[key]
	if !ok {
		return nil, fmt.Errorf("coretest: memory source: fetch %q: %w", key, core.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// Fetched returns the keys passed to Fetch so far, in order.
func (s *MemorySource) Fetched() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.fetched)
}
