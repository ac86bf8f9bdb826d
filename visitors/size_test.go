package visitors_test

import (
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/visitors"
)

func TestSizeLeftAtZeroSaysHowToDeclareUnknownSize(t *testing.T) {
	r, _ := newRepo(t)
	v := visitors.New(r, nil)
	err := visit(t.Context(), v, []core.BlobExportEntry{{Key: "k\x00v1", Reader: io.NopCloser(strings.NewReader("bytes"))}})
	require.ErrorIs(t, err, core.ErrSizeMismatch)
	assert.Contains(t, err.Error(), "core.UnknownSize")
	assert.Contains(t, err.Error(), `"k\x00v1"`, "the error names the key")

	v = visitors.New(r, nil)
	require.NoError(t, visit(t.Context(), v, []core.BlobExportEntry{
		{Key: "unknown", Reader: io.NopCloser(strings.NewReader("bytes")), Size: core.UnknownSize},
		{Key: "empty", Reader: io.NopCloser(strings.NewReader(""))},
	}))
	assert.Len(t, v.Entries(), 2)
}
