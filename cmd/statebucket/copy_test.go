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

	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/repo"
)

// demoRepo runs demo into a new repository, tags its snapshot fixture,
// and returns the repository and the demo's result.
func demoRepo(t *testing.T, objects string) (string, demoResult) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "from")
	out, errOut, code := cli(t, "--repo", dir, "--json", "demo", "--objects", objects, "--size", "8KiB")
	require.Equal(t, exitOK, code, errOut)
	var res demoResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	_, errOut, code = cli(t, "--repo", dir, "tag", "fixture", res.Snapshot.String())
	require.Equal(t, exitOK, code, errOut)
	return dir, res
}

func TestCopyCommand(t *testing.T) {
	from, demo := demoRepo(t, "60")
	to := filepath.Join(t.TempDir(), "to")

	out, errOut, code := cli(t, "--repo", from, "copy", "--to", to, "fixture")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, demo.Snapshot.String()+"  s3 "+demoAccount+"/"+demoRegion+"  copied")
	assert.Contains(t, out, "tag fixture -> "+demo.Snapshot.Short())
	assert.Contains(t, errOut, "copy: 100% (60/60)", "plain progress lines when not on a terminal")

	out, errOut, code = cli(t, "--json", "copy", "--from", from, "--to", to, "fixture", demo.Snapshot.Hex()[:8])
	require.Equal(t, exitOK, code, errOut)
	var res copyResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Len(t, res.Snapshots, 1, "two refs to one snapshot copy it once")
	assert.True(t, res.Snapshots[0].Existed)
	assert.Equal(t, demo.Snapshot, res.Snapshots[0].ID)
	assert.Zero(t, res.Transferred, "a second copy transfers no blob")
	assert.NotNil(t, res.Tags, `"tags" is always a list`)
	assert.Empty(t, errOut, "no progress with --json")

	out, errOut, code = cli(t, "--repo", to, "--json", "verify", "--read-data", "fixture")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, `"ok": true`)
}

// A tag the target has pointing elsewhere follows the source, and the
// output says where it pointed.
func TestCopyCommandMovesTags(t *testing.T) {
	from, demo := demoRepo(t, "10")
	to, other := demoRepo(t, "11")
	require.NotEqual(t, demo.Snapshot, other.Snapshot)
	out, errOut, code := cli(t, "--json", "copy", "--from", from, "--to", to, "latest")
	require.Equal(t, exitOK, code, errOut)
	var res copyResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	assert.Equal(t, []copiedTag{{Name: "fixture", Snapshot: demo.Snapshot, Previous: other.Snapshot}}, res.Tags)

	out, _, code = cli(t, "copy", "--from", from, "--to", filepath.Join(t.TempDir(), "x"), "--no-tags", "fixture")
	require.Equal(t, exitOK, code)
	assert.NotContains(t, out, "tag ")
}

func TestCopyCommandExitCodes(t *testing.T) {
	from, demo := demoRepo(t, "20")
	to := filepath.Join(t.TempDir(), "to")
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no --to", []string{"copy", "--from", from, "fixture"}, exitUsage, "--to is required"},
		{"no ref", []string{"copy", "--from", from, "--to", to}, exitUsage, "at least one REF"},
		{"bad target URL", []string{"copy", "--from", from, "--to", "ftp://u:hunter2@h/x", "fixture"}, exitUsage, "unknown scheme"},
		{"no such tag", []string{"copy", "--from", from, "--to", to, "nosuchtag"}, exitNotFound, "nosuchtag"},
		{"no such source", []string{"copy", "--from", filepath.Join(t.TempDir(), "missing"), "--to", to, "fixture"}, exitNotFound, "missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := cli(t, tc.args...)
			assert.Equal(t, tc.code, code, errOut)
			assert.Contains(t, errOut, tc.msg)
			assert.NotContains(t, errOut, "hunter2")
		})
	}

	// A damaged source blob: exit 4, the key named, nothing committed.
	var blob string
	require.NoError(t, filepath.WalkDir(filepath.Join(from, "blobs"), func(p string, d os.DirEntry, err error) error {
		if info, ierr := d.Info(); err == nil && ierr == nil && !d.IsDir() && info.Size() > 100 && blob == "" {
			blob = p
		}
		return err
	}))
	require.NotEmpty(t, blob)
	data, err := os.ReadFile(blob)
	require.NoError(t, err)
	data[10] ^= 0xff
	require.NoError(t, os.WriteFile(blob, data, 0o644))
	out, errOut, code := cli(t, "--json", "copy", "--from", from, "--to", to, "fixture")
	assert.Equal(t, exitCorrupt, code, errOut)
	assert.Contains(t, errOut, "checksum mismatch")
	assert.Contains(t, errOut, `blob \"`, "the error names the key")
	var res copyResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	assert.Empty(t, res.Snapshots)
	_, err = os.Stat(filepath.Join(to, repo.ManifestName(demo.Snapshot)))
	assert.ErrorIs(t, err, os.ErrNotExist, "a manifest was committed")
	_, err = os.Stat(filepath.Join(to, repo.TagName("fixture")))
	assert.ErrorIs(t, err, os.ErrNotExist, "a tag was written")
}

// On a terminal, copy draws a progress bar on stderr.
func TestCopyCommandProgressBarOnATerminal(t *testing.T) {
	from, _ := demoRepo(t, "30")
	var out, errOut bytes.Buffer
	a := &app{stdout: &out, stderr: &errOut, tty: true}
	root := a.rootCmd()
	root.SetArgs([]string{"copy", "--from", from, "--to", filepath.Join(t.TempDir(), "to"), "fixture"})
	require.NoError(t, root.ExecuteContext(t.Context()))
	assert.Contains(t, errOut.String(), "copy")
	assert.Contains(t, errOut.String(), "\r", "a bar redraws its line")
	assert.NotContains(t, errOut.String(), "100% (30/30)\n", "no plain progress lines on a terminal")
}

// demo --dry-run prints the id the export then commits, and writes
// nothing.
func TestDemoDryRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	out, errOut, code := cli(t, "--repo", dir, "demo", "--dry-run", "--objects", "40")
	require.Equal(t, exitOK, code, errOut)
	id, err := digest.Parse(strings.TrimSpace(out))
	require.NoError(t, err, "the output is the id alone: %q", out)
	_, err = os.Stat(dir)
	require.ErrorIs(t, err, os.ErrNotExist, "a dry run created the repository")

	out, errOut, code = cli(t, "--repo", dir, "--json", "demo", "--dry-run", "--objects", "40")
	require.Equal(t, exitOK, code, errOut)
	var dry demoResult
	require.NoError(t, json.Unmarshal([]byte(out), &dry))
	assert.True(t, dry.DryRun)
	assert.Equal(t, id, dry.Snapshot)

	out, errOut, code = cli(t, "--repo", dir, "--json", "demo", "--objects", "40")
	require.Equal(t, exitOK, code, errOut)
	var real demoResult
	require.NoError(t, json.Unmarshal([]byte(out), &real))
	assert.Equal(t, id, real.Snapshot, "the dry run's id is the one committed")
	assert.False(t, real.DryRun)
}
