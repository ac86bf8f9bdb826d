package main

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHostileDemoSizes: a demo the machine cannot hold is refused as bad
// usage, with the limit, before anything is allocated or created (it used
// to end in a Go runtime out-of-memory crash).
func TestHostileDemoSizes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--objects", "1000000000000"}, "--objects 1000000000000 is more than the demo's limit of 10000000 objects"},
		{[]string{"--objects", "10000001", "--size", "1"}, "limit of 10000000 objects"},
		{[]string{"--objects", "1000", "--size", "1024GiB"}, "1000 objects of up to 1024.00 GiB need about"},
		{[]string{"--objects", "10000000", "--size", "1GiB"}, "; lower --objects or --size"},
	} {
		repo := filepath.Join(t.TempDir(), "repo")
		out, errOut, code := cli(t, append([]string{"--repo", repo, "demo"}, tc.args...)...)
		require.Equal(t, exitUsage, code, errOut)
		assert.Empty(t, out)
		assert.Contains(t, errOut, tc.want)
		assert.NoDirExists(t, repo)
	}
}

func TestAvailableMemory(t *testing.T) {
	n, source := availableMemory()
	assert.Positive(t, n)
	assert.NotEmpty(t, source)
}
