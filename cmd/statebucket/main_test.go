package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cli runs the command line and returns stdout, stderr and the exit code.
func cli(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(t.Context(), args, &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestDemoTwiceUploadsNothingTheSecondTime(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	var first, second demoResult
	for _, res := range []*demoResult{&first, &second} {
		out, errOut, code := cli(t, "--repo", repo, "--json", "demo", "--objects", "120", "--size", "16KiB")
		require.Equal(t, exitOK, code, errOut)
		require.NoError(t, json.Unmarshal([]byte(out), res))
	}
	assert.True(t, first.Matches)
	assert.True(t, second.Matches)
	assert.Equal(t, 120, first.Objects)
	assert.Positive(t, first.Uploaded)
	assert.Zero(t, second.Uploaded, "second export uploaded blobs")
	assert.Equal(t, first.Snapshot, second.Snapshot)

	out, errOut, code := cli(t, "--repo", repo, "demo", "--objects", "30")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "restored state matches")
	assert.Contains(t, out, "snapshot    sha256:")
	assert.Contains(t, errOut, "export: 100% (30/30)", "plain progress lines when not on a terminal")
}

func TestInspectCommands(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	out, errOut, code := cli(t, "--repo", repo, "--json", "demo", "--objects", "40")
	require.Equal(t, exitOK, code, errOut)
	var demo demoResult
	require.NoError(t, json.Unmarshal([]byte(out), &demo))

	out, errOut, code = cli(t, "--repo", repo, "--json", "ls")
	require.Equal(t, exitOK, code, errOut)
	var list lsResult
	require.NoError(t, json.Unmarshal([]byte(out), &list))
	require.Len(t, list.Snapshots, 1)
	assert.Equal(t, demo.Snapshot, list.Snapshots[0].ID)
	assert.Equal(t, "s3", list.Snapshots[0].Service)
	assert.NotNil(t, list.Invalid, `"invalid" is always a list`)
	assert.Empty(t, list.Invalid)

	out, _, code = cli(t, "--repo", repo, "ls")
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, demo.Snapshot.Short())

	for _, ref := range []string{demo.Snapshot.String(), demo.Snapshot.Hex()[:8], "latest"} {
		out, errOut, code = cli(t, "--repo", repo, "show", ref)
		require.Equal(t, exitOK, code, errOut)
		assert.Contains(t, out, demo.Snapshot.String())
	}
	out, _, code = cli(t, "--repo", repo, "--json", "show", "--blobs", "latest")
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, `"format": "statebucket.manifest.v1"`)

	_, errOut, code = cli(t, "--repo", repo, "tag", "fixture", "latest")
	require.Equal(t, exitOK, code, errOut)
	out, errOut, code = cli(t, "--repo", repo, "--json", "verify", "--read-data", "fixture")
	require.Equal(t, exitOK, code, errOut)
	var vr verifyResult
	require.NoError(t, json.Unmarshal([]byte(out), &vr))
	assert.True(t, vr.OK)
	assert.Equal(t, demo.Blobs, vr.Blobs)

	// Corrupt one blob: verify --read-data fails with the corrupt code.
	var blob string
	require.NoError(t, filepath.WalkDir(filepath.Join(repo, "blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && blob == "" {
			if info, _ := d.Info(); info.Size() > 0 {
				blob = p
			}
		}
		return err
	}))
	data, err := os.ReadFile(blob)
	require.NoError(t, err)
	data[0] ^= 0xff
	require.NoError(t, os.WriteFile(blob, data, 0o644))
	_, _, code = cli(t, "--repo", repo, "verify", "latest")
	assert.Equal(t, exitOK, code, "a same-size corruption needs --read-data")
	out, errOut, code = cli(t, "--repo", repo, "verify", "--read-data", "latest")
	assert.Equal(t, exitCorrupt, code)
	assert.Contains(t, out, "checksum_mismatch")
	assert.Contains(t, errOut, "checksum mismatch")
}

func TestExitCodes(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--repo", repo, "show", "nosuchtag"}, exitNotFound, "nosuchtag"},
		{[]string{"--repo", repo, "show"}, exitUsage, "accepts 1 arg"},
		{[]string{"--repo", repo, "--no-such-flag", "ls"}, exitUsage, "unknown flag"},
		{[]string{"--repo", "ftp://user:hunter2@host/x", "ls"}, exitUsage, "unknown scheme"},
		{[]string{"--repo", repo, "demo", "--size", "lots"}, exitUsage, "--size"},
		{[]string{"--repo", repo, "tag", "bad/name", "latest"}, exitUsage, "bad/name"},
	} {
		t.Run(strings.Join(tc.args[2:], " "), func(t *testing.T) {
			_, errOut, code := cli(t, tc.args...)
			assert.Equal(t, tc.code, code, errOut)
			assert.Contains(t, errOut, tc.msg)
			assert.NotContains(t, errOut, "hunter2", "secrets never reach the output")
		})
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1234": 1234, "64KiB": 64 << 10, "1.5MiB": 3 << 19, "2G": 2 << 30, "10KB": 10000, "7B": 7, "1TiB": 1 << 40, " 1 T ": 1 << 40} {
		got, err := parseSize(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "x", "-1", "5TiB", "1.5TiB", "2TB", "1e20"} {
		_, err := parseSize(in)
		assert.Error(t, err, in)
	}
}
