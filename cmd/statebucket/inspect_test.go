package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store"
)

// newRepo returns the path of a new repository and the repository itself,
// open until the test ends.
func newRepo(t *testing.T) (string, *snapshot.Repo) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	require.NoError(t, os.Mkdir(dir, 0o755))
	r, err := snapshot.Open(t.Context(), dir)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return dir, r
}

// exportObjects exports an object store holding bodies under the keys
// k0, k1, … of bucket b, and returns the manifest.
func exportObjects(t *testing.T, r *snapshot.Repo, keys, bodies []string) *manifest.Manifest {
	t.Helper()
	ctx := t.Context()
	svc := coretest.NewObjectStore()
	require.NoError(t, svc.CreateBucket(ctx, "000000000000", "us-east-1", "b", false))
	for i, k := range keys {
		_, err := svc.PutObject(ctx, "000000000000", "us-east-1", "b", k, []byte(bodies[i]))
		require.NoError(t, err)
	}
	m, err := snapshot.Export(ctx, r, svc, "000000000000", "us-east-1", nil)
	require.NoError(t, err)
	return m
}

// hostileKV is a KV service with a hostile name.
type hostileKV struct{ *coretest.KV }

func (hostileKV) ServiceName() string { return "kv\x1b[2J\u202e" }

// requireTerminalSafe asserts that out holds no control characters other
// than newlines, and is valid UTF-8.
func requireTerminalSafe(t *testing.T, out string) {
	t.Helper()
	require.True(t, utf8.ValidString(out), "invalid UTF-8 in %q", out)
	for _, r := range out {
		require.False(t, r != '\n' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u202e'), "control character %U in %q", r, out)
	}
}

func TestMissingRepositoryIsNotCreated(t *testing.T) {
	// Needs the store layer's refusal to create a directory on open and its
	// core.ErrBucketNotFound, naming the path, on reads.
	for _, args := range [][]string{{"ls"}, {"show", "latest"}, {"verify", "latest"}, {"verify", "--read-data", "abcd1234"}, {"tag", "t", "latest"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			missing := filepath.Join(t.TempDir(), "no-such-repo")
			_, errOut, code := cli(t, append([]string{"--repo", missing}, args...)...)
			assert.Equal(t, exitNotFound, code, errOut)
			assert.Contains(t, errOut, missing, "the message names the path")
			assert.Contains(t, errOut, "never create a repository")
			assert.NoDirExists(t, missing, "%v created the repository", args)
		})
	}
}

func TestSchemeWithoutSlashesIsAURLError(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, args := range [][]string{{"--repo", "s3:/bad", "ls"}, {"--repo", "s3:bucket", "show", "latest"}, {"--repo", "s3:/bad", "--json", "verify", "latest"}} {
		_, errOut, code := cli(t, args...)
		assert.Equal(t, exitUsage, code, errOut)
		assert.Contains(t, errOut, "write s3://", "the message shows the URL form")
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "no local directory named after the scheme")
}

func TestUnknownCommandIsUsage(t *testing.T) {
	_, errOut, code := cli(t, "nosuch")
	assert.Equal(t, exitUsage, code, errOut)
	assert.Contains(t, errOut, `unknown command "nosuch"`)
	assert.Contains(t, errOut, "statebucket --help")

	_, errOut, code = cli(t, "--repo", t.TempDir(), "lss")
	assert.Equal(t, exitUsage, code, errOut)
	assert.Contains(t, errOut, "did you mean ls?")

	out, errOut, code := cli(t, "--help")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `(?m)^  2  bad usage: unknown command`, out, "--help documents it")

	out, errOut, code = cli(t)
	assert.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "Available Commands", "no command shows the help")
}

func TestShowBlobsKeepsColumnsWithLongHostileKeys(t *testing.T) {
	dir, r := newRepo(t)
	long := strings.Repeat("segment/", 512) + "\x1b[31m\xff\x00" // 4 KiB and more, with an escape, invalid UTF-8 and NUL
	keys := []string{long, "short", "tab\tand\nnewline", "\u202eevil.exe"}
	m := exportObjects(t, r, keys, []string{"long", "short", "tab", "evil"})

	out, errOut, code := cli(t, "--repo", dir, "show", "--blobs", "latest")
	require.Equal(t, exitOK, code, errOut)
	requireTerminalSafe(t, out)
	_, table, ok := strings.Cut(out, "\nKEY ")
	require.True(t, ok, "a table of blobs follows the summary:\n%s", out)
	rows := strings.Split(strings.TrimSpace(table), "\n")[1:]
	require.Len(t, rows, len(keys), out)
	width := utf8.RuneCountInString(rows[0])
	for _, row := range rows {
		assert.Equal(t, width, utf8.RuneCountInString(row), "columns line up:\n%s", out)
		assert.LessOrEqual(t, width, maxKeyWidth+40)
	}
	assert.Contains(t, out, "…", "the long key is shortened")
	assert.Contains(t, out, `\x1b[31m\xff\x00`, "escapes stay visible")

	// --json keeps every key whole and exact.
	out, errOut, code = cli(t, "--repo", dir, "--json", "show", "--blobs", "latest")
	require.Equal(t, exitOK, code, errOut)
	got, err := manifest.Decode([]byte(out), nil)
	require.NoError(t, err)
	assert.Equal(t, m.Blobs, got.Blobs)
}

func TestTextOutputEscapesHostileManifestFields(t *testing.T) {
	dir, r := newRepo(t)
	ctx := t.Context()
	svc := hostileKV{coretest.NewKV()}
	const account, region = "acct\x1b]0;pwned\x07", "r\u009b31m"
	require.NoError(t, svc.Put(ctx, account, region, "/k", "v"))
	m, err := snapshot.ExportState(ctx, r, svc, account, region, nil)
	require.NoError(t, err)

	for _, args := range [][]string{{"ls"}, {"show", "latest"}, {"verify", "latest"}, {"tag", "t", "latest"}} {
		out, errOut, code := cli(t, append([]string{"--repo", dir}, args...)...)
		require.Equal(t, exitOK, code, errOut)
		requireTerminalSafe(t, out)
		requireTerminalSafe(t, errOut)
	}
	out, _, _ := cli(t, "--repo", dir, "show", "latest")
	assert.Contains(t, out, `"acct\x1b]0;pwned\a"`)
	assert.Contains(t, out, `"kv\x1b[2J\u202e"`)

	out, errOut, code := cli(t, "--repo", dir, "--json", "ls")
	require.Equal(t, exitOK, code, errOut)
	var list lsResult
	require.NoError(t, json.Unmarshal([]byte(out), &list))
	require.Len(t, list.Snapshots, 1)
	assert.Equal(t, m.ID, list.Snapshots[0].ID)
	assert.Equal(t, svc.ServiceName(), list.Snapshots[0].Service, "--json is exact")
	assert.Equal(t, account, list.Snapshots[0].Account)
	assert.Equal(t, region, list.Snapshots[0].Region)
}

func TestVerifyProgressReachesTheEndWhenBlobsRepeat(t *testing.T) {
	dir, r := newRepo(t)
	exportObjects(t, r, []string{"a", "b", "c", "d", "e", "f"}, []string{"x", "y", "x", "x", "y", "z"})
	for _, flags := range [][]string{{}, {"--read-data"}} {
		_, errOut, code := cli(t, append([]string{"--repo", dir, "verify"}, append(flags, "latest")...)...)
		require.Equal(t, exitOK, code, errOut)
		assert.Contains(t, errOut, "100% (3/3)", "progress counts the 3 distinct blobs it checks")
		assert.NotContains(t, errOut, "/6)")
	}
}

func TestVerifyJSONProblems(t *testing.T) {
	dir, r := newRepo(t)
	m := exportObjects(t, r, []string{"gone\x00v1", "bad\xff"}, []string{"missing body", "wrong size"})
	gone, _ := m.Lookup("b/gone\x00v1")
	bad, _ := m.Lookup("b/bad\xff")
	if gone.Key == "" || bad.Key == "" { // keys carry the bucket and version of the reference mock
		for _, e := range m.Blobs {
			if strings.Contains(e.Key, "gone") {
				gone = e
			} else {
				bad = e
			}
		}
	}
	require.NoError(t, r.Store().Delete(t.Context(), repo.BlobName(gone.Digest)))
	require.NoError(t, r.Store().PutBytes(t.Context(), repo.BlobName(bad.Digest), []byte("short"), store.PutOptions{}))

	out, errOut, code := cli(t, "--repo", dir, "--json", "verify", "latest")
	assert.Equal(t, exitCorrupt, code, errOut)
	var res verifyResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	assert.False(t, res.OK)
	require.Len(t, res.Problems, 2, out)
	byKind := map[string]verifyProblem{}
	for _, p := range res.Problems {
		byKind[string(p.Kind)] = p
		assert.Equal(t, "blob", p.Object)
		assert.NotEmpty(t, p.Error)
	}
	missing, size := byKind["missing"], byKind["size_mismatch"]
	require.NotNil(t, missing.Key, out)
	assert.Equal(t, gone.Key, *missing.Key)
	assert.Equal(t, gone.Digest, missing.Digest)
	assert.Nil(t, size.Key, "a key that is not UTF-8 is in key_base64")
	assert.Equal(t, bad.Digest, size.Digest)
	assert.NotEmpty(t, size.KeyBase64)

	out, errOut, code = cli(t, "--repo", dir, "verify", "latest")
	assert.Equal(t, exitCorrupt, code, errOut)
	requireTerminalSafe(t, out)
	assert.Contains(t, out, "missing")
	assert.Contains(t, out, "size_mismatch")
	assert.Contains(t, out, "expected 10 bytes, got 5 bytes")
}

func TestTagWithRefThatMatchesNothing(t *testing.T) {
	dir, r := newRepo(t)
	exportObjects(t, r, []string{"k"}, []string{"v"})
	for _, ref := range []string{"nosuch", "abcdef12"} {
		_, errOut, code := cli(t, "--repo", dir, "tag", "fixture", ref)
		assert.Equal(t, exitNotFound, code, errOut)
		assert.Contains(t, errOut, `no snapshot matches ref "`+ref+`"`)
		assert.Contains(t, errOut, `run "statebucket ls"`)

		_, errOut, code = cli(t, "--repo", dir, "--json", "tag", "fixture", ref)
		assert.Equal(t, exitNotFound, code, errOut)
		var res struct{ Error, Hint string }
		require.NoError(t, json.Unmarshal([]byte(errOut), &res))
		assert.Contains(t, res.Error, "no snapshot matches ref")
		assert.Contains(t, res.Hint, "statebucket ls")
	}
	_, err := r.Store().GetBytes(t.Context(), repo.TagName("fixture"), 1<<10)
	require.Error(t, err, "no tag was written")
}

func TestLsListsValidSnapshotsAndFlagsInvalidOnes(t *testing.T) {
	dir, r := newRepo(t)
	good := exportObjects(t, r, []string{"k"}, []string{"good"})
	bad := exportObjects(t, r, []string{"k"}, []string{"bad"})
	name := repo.ManifestName(bad.ID)
	data, err := r.Store().GetBytes(t.Context(), name, 1<<20)
	require.NoError(t, err)
	data = bytes.Replace(data, []byte(`"size": 3`), []byte(`"size": 4`), 1)
	require.NoError(t, r.Store().PutBytes(t.Context(), name, data, store.PutOptions{}))

	out, errOut, code := cli(t, "--repo", dir, "--json", "ls")
	assert.Equal(t, exitCorrupt, code, "scripts learn that the repository holds bad data: %s", errOut)
	var list lsResult
	require.NoError(t, json.Unmarshal([]byte(out), &list))
	require.Len(t, list.Snapshots, 1)
	assert.Equal(t, good.ID, list.Snapshots[0].ID)
	require.Len(t, list.Invalid, 1)
	assert.Equal(t, bad.ID, list.Invalid[0].ID)
	assert.Contains(t, list.Invalid[0].Error, "id")

	out, errOut, code = cli(t, "--repo", dir, "ls")
	assert.Equal(t, exitCorrupt, code)
	assert.Contains(t, out, good.ID.Short())
	assert.NotContains(t, out, bad.ID.Short())
	assert.Contains(t, errOut, bad.ID.Hex(), "stderr names the invalid manifest")

	_, errOut, code = cli(t, "--repo", dir, "show", bad.ID.String())
	assert.Equal(t, exitCorrupt, code, "bad data, not bad usage: %s", errOut)
	_, errOut, code = cli(t, "--repo", dir, "show", "latest")
	assert.Equal(t, exitOK, code, errOut)
}

func TestCorruptTagIsBadData(t *testing.T) {
	dir, r := newRepo(t)
	exportObjects(t, r, []string{"k"}, []string{"v"})
	require.NoError(t, r.Store().PutBytes(t.Context(), repo.TagName("broken"), []byte(`{"name": "broken", "snapshot": 7}`), store.PutOptions{}))
	_, errOut, code := cli(t, "--repo", dir, "show", "broken")
	assert.Equal(t, exitCorrupt, code, errOut)
	_, errOut, code = cli(t, "--repo", dir, "tag", "bad..name", "latest")
	assert.Equal(t, exitUsage, code, errOut)
}

// A tag may not take a name that a ref reads as an id or as latest, so
// that a tag can never hide a snapshot's short id (issue 10.3).
func TestTagNamesThatLookLikeRefsAreRefused(t *testing.T) {
	dir, r := newRepo(t)
	m := exportObjects(t, r, []string{"k"}, []string{"v"})
	for name, why := range map[string]string{
		m.ID.Short():  "snapshot id",
		"deadbeef":    "snapshot id",
		m.ID.String(): "snapshot id",
		"latest":      "reserved",
		"LATEST":      "reserved",
	} {
		_, errOut, code := cli(t, "--repo", dir, "tag", name, "latest")
		assert.Equal(t, exitUsage, code, errOut)
		assert.Contains(t, errOut, why, name)
	}
	names, err := repo.New(r.Store(), nil).ListTags(t.Context())
	require.NoError(t, err)
	assert.Empty(t, names, "no tag was written")

	// So the short id that ls prints always names the snapshot.
	_, errOut, code := cli(t, "--repo", dir, "tag", "release-1", m.ID.Short())
	require.Equal(t, exitOK, code, errOut)
	out, errOut, code := cli(t, "--repo", dir, "--json", "show", m.ID.Short())
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, m.ID.String())
}

// An id prefix that several snapshots share is bad usage, and the error
// lists them by short id.
func TestAmbiguousIDPrefix(t *testing.T) {
	dir, r := newRepo(t)
	var short []string
	for _, tail := range []string{"1", "2"} {
		id, err := digest.FromHex("beef" + strings.Repeat(tail, 60))
		require.NoError(t, err)
		require.NoError(t, r.Store().PutBytes(t.Context(), repo.ManifestName(id), []byte("{}"), store.PutOptions{}))
		short = append(short, id.Short())
	}
	_, errOut, code := cli(t, "--repo", dir, "show", "beef")
	assert.Equal(t, exitUsage, code, errOut)
	assert.Contains(t, errOut, "ambiguous")
	for _, s := range short {
		assert.Contains(t, errOut, s)
	}
}

func TestHelpOfUnknownTopicIsUsage(t *testing.T) {
	_, errOut, code := cli(t, "help", "nosuch")
	assert.Equal(t, exitUsage, code, errOut)
	assert.Contains(t, errOut, `unknown help topic "nosuch"`)

	out, errOut, code := cli(t, "help", "copy")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "statebucket copy", "help of a command shows its usage")

	out, errOut, code = cli(t, "help")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "Available Commands")
}
