package coretest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
)

// entries returns entries over the given contents, counting open readers.
func entries(open *int, kv ...string) []core.BlobExportEntry {
	var batch []core.BlobExportEntry
	for i := 0; i < len(kv); i += 2 {
		*open++
		batch = append(batch, core.BlobExportEntry{Key: kv[i], Reader: closeCounter{strings.NewReader(kv[i+1]), open}, Size: -1})
	}
	return batch
}

func TestMemoryVisitor(t *testing.T) {
	ctx := t.Context()
	var v MemoryVisitor
	open := 0
	require.NoError(t, v.Visit(ctx, entries(&open, "a", "1", "b\x00", "")))
	batch := entries(&open, "c", "333")
	batch[0].Size = 3
	require.NoError(t, v.Visit(ctx, batch))
	assert.Zero(t, open)
	assert.Equal(t, []int{2, 1}, v.BatchSizes())
	assert.Equal(t, []string{"a", "b\x00", "c"}, v.Keys())
	assert.Equal(t, map[string][]byte{"a": []byte("1"), "b\x00": {}, "c": []byte("333")}, v.Blobs())

	errRead := errors.New("read failed")
	tests := []struct {
		name  string
		batch func() []core.BlobExportEntry
		is    error
	}{
		{"duplicate key", func() []core.BlobExportEntry { return entries(&open, "x", "1", "a", "2", "y", "3") }, core.ErrExists},
		{"wrong size", func() []core.BlobExportEntry {
			b := entries(&open, "x", "1", "y", "3")
			b[0].Size = 2
			return b
		}, core.ErrSizeMismatch},
		{"nil reader", func() []core.BlobExportEntry {
			return append(entries(&open, "x", "1"), append([]core.BlobExportEntry{{Key: "nil"}}, entries(&open, "y", "2")...)...)
		}, core.ErrInvalid},
		{"reader fails", func() []core.BlobExportEntry {
			b := entries(&open, "x", "1", "y", "2")
			b[0].Reader = closeCounter{io.MultiReader(strings.NewReader("1"), errReader{errRead}), &open}
			return b
		}, errRead},
		{"cancelled", func() []core.BlobExportEntry { return entries(&open, "x", "1", "y", "2") }, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			if tt.is == context.Canceled {
				c, cancel := context.WithCancel(ctx)
				cancel()
				ctx = c
			}
			var v MemoryVisitor
			open = 0
			require.NoError(t, v.Visit(t.Context(), entries(&open, "a", "0")))
			require.ErrorIs(t, v.Visit(ctx, tt.batch()), tt.is)
			assert.Zero(t, open, "every reader is closed, also after an error")
		})
	}
}

func TestMemorySource(t *testing.T) {
	ctx := t.Context()
	blobs := map[string][]byte{"a": []byte("1"), "nul\x00": {}}
	s := NewMemorySource(blobs)
	delete(blobs, "a") // the source has its own map

	for _, key := range []string{"a", "nul\x00", "a"} {
		rc, err := s.Fetch(ctx, key)
		require.NoError(t, err)
		_, err = io.ReadAll(rc)
		require.NoError(t, err)
		require.NoError(t, rc.Close())
	}
	_, err := s.Fetch(ctx, "missing\x00key")
	require.ErrorIs(t, err, core.ErrNotFound)
	assert.Contains(t, err.Error(), `"missing\x00key"`)
	assert.Equal(t, []string{"a", "nul\x00", "a", "missing\x00key"}, s.Fetched())

	_, err = (&MemorySource{}).Fetch(ctx, "a")
	require.ErrorIs(t, err, core.ErrNotFound, "the zero value is empty")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.Fetch(cancelled, "a")
	require.ErrorIs(t, err, context.Canceled)
}

func TestMemoryConcurrent(t *testing.T) {
	ctx := t.Context()
	var v MemoryVisitor
	s := NewMemorySource(map[string][]byte{"k": []byte("v")})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				open := 0
				assert.NoError(t, v.Visit(ctx, entries(&open, fmt.Sprintf("%d/%d", g, i), "x")))
				rc, err := s.Fetch(ctx, "k")
				assert.NoError(t, err)
				assert.NoError(t, rc.Close())
				v.Blobs()
				v.Keys()
				s.Fetched()
			}
		})
	}
	wg.Wait()
	assert.Len(t, v.Keys(), 160)
	assert.Len(t, s.Fetched(), 160)
}
