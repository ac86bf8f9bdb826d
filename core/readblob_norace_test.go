//go:build !race

package core_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
)

// A blob of known size is read into one buffer of that size: one
// allocation, plus the one-byte probe that checks the stream ends. (The race
// detector adds allocations of its own, hence the build tag.)
func TestReadBlobAllocatesOnce(t *testing.T) {
	data := pattern(4 << 20)
	r := bytes.NewReader(data)
	var got []byte
	var err error
	allocs := testing.AllocsPerRun(10, func() {
		r.Reset(data)
		got, err = core.ReadBlob(r, int64(len(data)))
	})
	require.NoError(t, err)
	require.Equal(t, data, got)
	assert.LessOrEqual(t, allocs, 2.0)
}
