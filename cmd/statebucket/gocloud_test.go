package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReadsCreateNoGocloudDirectory checks that ls, show and verify on a
// gocloud+file directory that does not exist say so with the not-found
// exit code, and leave it missing, as they do with a file:// directory.
func TestReadsCreateNoGocloudDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	repo := (&url.URL{Scheme: "gocloud+file", Path: dir}).String()
	for _, args := range [][]string{{"ls"}, {"show", "latest"}, {"verify", "latest"}} {
		_, errOut, code := cli(t, append([]string{"--repo", repo}, args...)...)
		assert.Equal(t, exitNotFound, code, "%s: %s", args[0], errOut)
		assert.Contains(t, errOut, dir, args[0])
		assert.NoDirExists(t, dir, args[0])
	}
}

// TestDemoOnGocloudURLs runs the demo on an in-memory repository and on a
// gocloud.dev file bucket; the second run on the directory finds the
// snapshot there and uploads nothing.
func TestDemoOnGocloudURLs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "x")
	fileURL := (&url.URL{Scheme: "gocloud+file", Path: dir}).String()
	for _, tc := range []struct {
		repo       string
		nothingNew bool // the run uploads nothing
	}{
		{"mem://", false},
		{fileURL, false},
		{fileURL, true},
	} {
		out, errOut, code := cli(t, "--repo", tc.repo, "--json", "demo", "--objects", "60", "--size", "8KiB")
		require.Equal(t, exitOK, code, errOut)
		var res demoResult
		require.NoError(t, json.Unmarshal([]byte(out), &res))
		assert.True(t, res.Matches, tc.repo)
		assert.Equal(t, 60, res.Objects, tc.repo)
		assert.Equal(t, tc.nothingNew, res.Uploaded == 0, "%s: uploaded %d", tc.repo, res.Uploaded)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "snapshots"))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "one snapshot in the directory")
}

// TestAzureWithoutCredentialsFailsFast opens an Azure container with no
// credentials in the environment: the CLI fails before its context's
// deadline, with the permission exit code, a message that says what to
// set, and no secret.
func TestAzureWithoutCredentialsFailsFast(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AZURE_") || k == "IDENTITY_ENDPOINT" || k == "MSI_ENDPOINT" {
			t.Setenv(k, "")
		}
	}
	t.Setenv("AZURE_STORAGE_ACCOUNT", "statebucketacct")
	t.Setenv("AZURE_CLIENT_SECRET", "hunter2-secret")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"--repo", "gocloud+azblob://fixtures/ci", "demo", "--objects", "1"}, &out, &errOut)
	require.NoError(t, ctx.Err(), "the CLI ran into its deadline")
	assert.Equal(t, exitDenied, code, errOut.String())
	assert.Contains(t, errOut.String(), "no Azure credentials")
	assert.Contains(t, errOut.String(), "gocloud+azblob://fixtures/ci")
	assert.NotContains(t, errOut.String(), "hunter2")
}
