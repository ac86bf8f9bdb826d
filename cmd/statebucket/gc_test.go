package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store"
)

func TestTagCommands(t *testing.T) {
	dir, r := newRepo(t)
	a := exportObjects(t, r, []string{"k"}, []string{"a"})
	b := exportObjects(t, r, []string{"k"}, []string{"b"})

	out, errOut, code := cli(t, "--repo", dir, "--json", "tag", "stable", a.ID.Short())
	require.Equal(t, exitOK, code, errOut)
	var res tagResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	assert.Equal(t, "stable", res.Tag.Name)
	assert.Equal(t, a.ID, res.Tag.Snapshot)
	assert.Nil(t, res.Previous)
	assert.False(t, res.Unconditional)

	out, errOut, code = cli(t, "--repo", dir, "tag", "stable", b.ID.String())
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, fmt.Sprintf("tag stable -> %s (was %s)\n", b.ID, a.ID.Short()), out)
	_, errOut, code = cli(t, "--repo", dir, "tag", "--force", "old", a.ID.String())
	require.Equal(t, exitOK, code, errOut)

	out, errOut, code = cli(t, "--repo", dir, "--json", "tags")
	require.Equal(t, exitOK, code, errOut)
	var tags tagsResult
	require.NoError(t, json.Unmarshal([]byte(out), &tags))
	require.Len(t, tags.Tags, 2)
	assert.Equal(t, "old", tags.Tags[0].Name)
	assert.Equal(t, b.ID, tags.Tags[1].Snapshot)
	assert.NotNil(t, tags.Invalid)
	out, errOut, code = cli(t, "--repo", dir, "tags")
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "stable  "+b.ID.Short())
	assert.Contains(t, errOut, "tags: 100% (2/2)", "progress")

	// ls shows the tags of each snapshot, and filters by one.
	out, _, code = cli(t, "--repo", dir, "--json", "ls", "--tag", "old")
	require.Equal(t, exitOK, code)
	var list lsResult
	require.NoError(t, json.Unmarshal([]byte(out), &list))
	require.Len(t, list.Snapshots, 1)
	assert.Equal(t, a.ID, list.Snapshots[0].ID)
	assert.Equal(t, []string{"old"}, list.Snapshots[0].Tags)
	out, errOut, code = cli(t, "--repo", dir, "ls")
	require.Equal(t, exitOK, code)
	assert.Empty(t, errOut, "ls shows no progress")
	assert.Contains(t, out, "TAGS")
	assert.Contains(t, out, "stable")
	out, _, code = cli(t, "--repo", dir, "--json", "ls", "--tag", "nosuch")
	require.Equal(t, exitOK, code)
	require.NoError(t, json.Unmarshal([]byte(out), &list))
	assert.Empty(t, list.Snapshots)

	out, errOut, code = cli(t, "--repo", dir, "--json", "untag", "old", "stable")
	require.Equal(t, exitOK, code, errOut)
	var untagged untagResult
	require.NoError(t, json.Unmarshal([]byte(out), &untagged))
	require.Len(t, untagged.Removed, 2)
	assert.Equal(t, b.ID, untagged.Removed[1].Snapshot)
	_, errOut, code = cli(t, "--repo", dir, "untag", "old")
	assert.Equal(t, exitNotFound, code, errOut)
	_, errOut, code = cli(t, "--repo", dir, "untag")
	assert.Equal(t, exitUsage, code, errOut)
	_, errOut, code = cli(t, "--repo", dir, "untag", "LATEST")
	assert.Equal(t, exitUsage, code, errOut)
}

// A lost tag race exits with the conflict code, naming the winner.
func TestTagConflictExitCode(t *testing.T) {
	err := fmt.Errorf("snapshot: tag: %w", &repo.TagConflictError{Name: "t", Current: &repo.Tag{Name: "t", Snapshot: digest.FromBytes([]byte("x"))}})
	assert.Equal(t, exitConflict, exitCode(err))
	assert.Contains(t, err.Error(), "now points at sha256:")
	assert.Contains(t, hintFor(err), "--force")
}

func TestRmAndGC(t *testing.T) {
	dir, r := newRepo(t)
	a := exportObjects(t, r, []string{"k1", "k2"}, []string{"one", "two"})
	b := exportObjects(t, r, []string{"k1", "k3"}, []string{"one", "three"})
	_, errOut, code := cli(t, "--repo", dir, "tag", "a", a.ID.String())
	require.Equal(t, exitOK, code, errOut)

	// A ref that names nothing removes nothing.
	_, errOut, code = cli(t, "--repo", dir, "rm", "a", "nosuch")
	assert.Equal(t, exitNotFound, code, errOut)
	assert.Contains(t, errOut, "nosuch")
	_, errOut, code = cli(t, "--repo", dir, "rm")
	assert.Equal(t, exitUsage, code, errOut)

	out, errOut, code := cli(t, "--repo", dir, "--json", "rm", "a")
	require.Equal(t, exitOK, code, errOut)
	var rm rmResult
	require.NoError(t, json.Unmarshal([]byte(out), &rm))
	assert.Equal(t, []snapshot.Removed{{ID: a.ID, Tags: []string{"a"}, View: true}}, rm.Removed)

	out, errOut, code = cli(t, "--repo", dir, "--json", "gc", "--dry-run", "--grace", "0")
	require.Equal(t, exitOK, code, errOut)
	var dry gcResult
	require.NoError(t, json.Unmarshal([]byte(out), &dry))
	assert.True(t, dry.DryRun)
	assert.Equal(t, "0s", dry.Grace)
	assert.Equal(t, 1, dry.Snapshots)
	assert.Equal(t, 1, dry.Blobs.Objects, `"two" is referenced by a only`)
	assert.Equal(t, int64(3), dry.Blobs.Bytes)

	// The default grace keeps what was just stored.
	out, errOut, code = cli(t, "--repo", dir, "gc")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "deleted 0 unreferenced blob(s)")
	assert.Contains(t, out, "kept 1 unreferenced object(s)")

	out, errOut, code = cli(t, "--repo", dir, "gc", "--grace", "0")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "deleted 1 unreferenced blob(s) (3 B)")
	assert.Contains(t, errOut, "gc: 100% (1/1)", "progress")

	// gc refuses while an export holds its lock.
	lock, err := repo.New(r.Store(), nil).Lock(t.Context(), repo.SharedLock)
	require.NoError(t, err)
	_, errOut, code = cli(t, "--repo", dir, "gc")
	assert.Equal(t, exitConflict, code, errOut)
	assert.Contains(t, errOut, lock.Info().ID)
	assert.Contains(t, errOut, "hint: another process")
	out, errOut, code = cli(t, "--repo", dir, "gc", "--dry-run")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "gc would refuse to start now: shared lock "+lock.Info().ID)
	require.NoError(t, lock.Unlock(t.Context()))

	// After rm of every snapshot, gc leaves no blob.
	_, errOut, code = cli(t, "--repo", dir, "rm", b.ID.String())
	require.Equal(t, exitOK, code, errOut)
	out, errOut, code = cli(t, "--repo", dir, "--json", "gc", "--grace", "0")
	require.Equal(t, exitOK, code, errOut)
	var rep gcResult
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	assert.Equal(t, 2, rep.Blobs.Objects)
	var left []string
	require.NoError(t, r.Store().List(t.Context(), "", func(info store.ObjectInfo) error {
		left = append(left, info.Name)
		return nil
	}))
	assert.Empty(t, left, "objects left after rm of everything and gc")

	_, errOut, code = cli(t, "--repo", filepath.Join(dir, "missing"), "gc")
	assert.Equal(t, exitNotFound, code, errOut)
	assert.NoDirExists(t, filepath.Join(dir, "missing"))
}

// With STATEBUCKET_SIGNING_KEY, demo signs, and tag, tags, verify and rm
// refuse what is not signed with the key.
func TestSigningKey(t *testing.T) {
	dir, r := newRepo(t)
	unsigned := exportObjects(t, r, []string{"k"}, []string{"unsigned"})
	_, errOut, code := cli(t, "--repo", dir, "tag", "plain", unsigned.ID.String())
	require.Equal(t, exitOK, code, errOut)

	t.Setenv("STATEBUCKET_SIGNING_KEY", "ci secret")
	out, errOut, code := cli(t, "--repo", dir, "--json", "demo", "--objects", "5")
	require.Equal(t, exitOK, code, errOut)
	var demo demoResult
	require.NoError(t, json.Unmarshal([]byte(out), &demo))
	m, err := r.Show(t.Context(), demo.Snapshot.String(), snapshot.Filter{})
	require.NoError(t, err)
	assert.NotEmpty(t, m.Signature)

	out, errOut, code = cli(t, "--repo", dir, "--json", "tag", "signed", demo.Snapshot.String())
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, `"signed": true`)
	_, errOut, code = cli(t, "--repo", dir, "verify", "signed")
	require.Equal(t, exitOK, code, errOut)

	for _, args := range [][]string{
		{"verify", unsigned.ID.String()},
		{"verify", "plain"},
		{"tag", "other", unsigned.ID.String()},
		{"rm", "plain"},
	} {
		_, errOut, code = cli(t, append([]string{"--repo", dir}, args...)...)
		assert.Equal(t, exitCorrupt, code, "%v: %s", args, errOut)
		assert.Contains(t, errOut, "not signed", args)
		assert.NotContains(t, errOut, "ci secret", "the key never shows")
	}
	out, errOut, code = cli(t, "--repo", dir, "--json", "tags")
	assert.Equal(t, exitCorrupt, code, errOut)
	var tags tagsResult
	require.NoError(t, json.Unmarshal([]byte(out), &tags))
	require.Len(t, tags.Tags, 1)
	assert.Equal(t, "signed", tags.Tags[0].Name)
	require.Len(t, tags.Invalid, 1)
	assert.Equal(t, "plain", tags.Invalid[0].Name)
	assert.True(t, strings.Contains(tags.Invalid[0].Error, "not signed"))
}
