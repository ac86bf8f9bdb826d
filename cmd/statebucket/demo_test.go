package main

import (
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The demo reports export and import alike: the snapshot's bytes, the
// time and the throughput in MiB/s, so the two compare at a glance.
func TestDemoReportsExportAndImportInTheSameUnits(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	out, errOut, code := cli(t, "--repo", repo, "demo", "--objects", "20", "--size", "64KiB")
	require.Equal(t, exitOK, code, errOut)
	line := regexp.MustCompile(`(?m)^(exported|imported) +20 blobs, ([0-9.]+ [KMG]iB|[0-9]+ B), in [0-9.]+s \([0-9.]+ MiB/s\)`)
	got := line.FindAllStringSubmatch(out, -1)
	require.Len(t, got, 2, out)
	assert.Equal(t, "exported", got[0][1])
	assert.Equal(t, "imported", got[1][1])
	assert.Equal(t, got[0][2], got[1][2], "the same bytes on both lines")
}
