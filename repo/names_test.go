package repo_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/store"
)

var (
	d1 = digest.FromBytes([]byte("one"))
	h1 = d1.Hex()
)

func TestNames(t *testing.T) {
	assert.Equal(t, "blobs/sha256/"+h1[:2]+"/"+h1, repo.BlobName(d1))
	assert.Equal(t, "snapshots/"+h1+"/view.json", repo.ViewName(d1))
	assert.Equal(t, "snapshots/"+h1+"/manifest.json", repo.ManifestName(d1))
	assert.Equal(t, "tags/v1.json", repo.TagName("v1"))
	assert.Equal(t, "locks/shared-ABC234.json", repo.LockName("shared-ABC234"))
	// sha256("s3\x00123\x00eu-west-1")
	assert.Equal(t, "heads/39f1fa979d134c33fc2e83ee91c840e968adf93cb0e37a215d9247cd2123b7b7.json", repo.HeadName("s3", "123", "eu-west-1"))
	for _, name := range []string{repo.BlobName(d1), repo.ViewName(d1), repo.ManifestName(d1), repo.TagName("v1"), repo.LockName("exclusive-X"), repo.HeadName("s3", "123", "eu-west-1")} {
		assert.NoError(t, store.ValidName(name), "%q", name)
	}
}

func TestParseNames(t *testing.T) {
	for _, tc := range []struct {
		name  string
		parse func(string) (digest.Digest, bool)
		good  string
		bad   []string
	}{
		{"blob", repo.ParseBlobName, repo.BlobName(d1), []string{
			"blobs/sha256/" + h1, "blobs/sha256/00/" + h1, "blobs/sha256/" + h1[:2] + "/" + strings.ToUpper(h1),
			"blobs/sha256/" + h1[:2] + "/" + h1 + "/x", "blobs/sha256/" + h1[:2] + "/" + h1[:63], "blobs/sha512/" + h1[:2] + "/" + h1,
			repo.ManifestName(d1), "",
		}},
		{"manifest", repo.ParseManifestName, repo.ManifestName(d1), []string{
			repo.ViewName(d1), "snapshots/" + h1[:63] + "/manifest.json", "snapshots/" + h1 + "/manifest.json.tmp",
			"snapshots/x/" + h1 + "/manifest.json", "snapshots/sha256:" + h1 + "/manifest.json", "snapshots//manifest.json",
		}},
		{"view", repo.ParseViewName, repo.ViewName(d1), []string{repo.ManifestName(d1), "snapshots/" + h1 + "/view.json/x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.parse(tc.good)
			require.True(t, ok)
			assert.Equal(t, d1, got)
			for _, bad := range tc.bad {
				_, ok := tc.parse(bad)
				assert.False(t, ok, "%q", bad)
			}
		})
	}

	tag, ok := repo.ParseTagName(repo.TagName("release-1.0_rc.2"))
	assert.True(t, ok)
	assert.Equal(t, "release-1.0_rc.2", tag)
	for _, bad := range []string{"tags/.json", "tags/abcd.json", "tags/latest.json", "tags/v1", "tags/a/b.json", "tag/v1.json", "tags/-v.json"} {
		_, ok := repo.ParseTagName(bad)
		assert.False(t, ok, "%q", bad)
	}

	id, ok := repo.ParseLockName(repo.LockName("shared-ABC234"))
	assert.True(t, ok)
	assert.Equal(t, "shared-ABC234", id)
	for _, bad := range []string{"locks/other-ABC.json", "locks/shared-.json", "locks/shared.json", "locks/shared-A.B.json", "locks/shared-A", "locks/x/shared-A.json"} {
		_, ok := repo.ParseLockName(bad)
		assert.False(t, ok, "%q", bad)
	}
}

// Hostile scopes never reach an object's name, and scopes that would be
// equal once joined naively stay apart.
func TestHeadNames(t *testing.T) {
	names := map[string]bool{}
	for _, scope := range [][3]string{
		{"s3", "123", "eu-west-1"}, {"s3\x00123", "", "eu-west-1"}, {"s3", "123\x00eu-west-1", ""},
		{"../../etc", "passwd", "/"}, {"\xff\xfe", "a/b", "c\\d"}, {"", "", ""}, {strings.Repeat("x", 5000), "a", "r"},
	} {
		name := repo.HeadName(scope[0], scope[1], scope[2])
		require.NoError(t, store.ValidName(name), "%q", scope)
		assert.False(t, names[name], "%q shares its name", scope)
		names[name] = true
		h, ok := repo.ParseHeadName(name)
		require.True(t, ok, name)
		assert.Equal(t, name, "heads/"+h+".json")
	}
	for _, bad := range []string{"heads/" + h1, "heads/" + h1[:63] + ".json", "heads/" + strings.ToUpper(h1) + ".json", "head/" + h1 + ".json", "heads/x/" + h1 + ".json", repo.TagName("v1")} {
		_, ok := repo.ParseHeadName(bad)
		assert.False(t, ok, "%q", bad)
	}
}

func TestValidTag(t *testing.T) {
	for _, tag := range []string{
		"a", "A", "0", "v1.2.3", "a-b_c", "fixture-v1", strings.Repeat("x", repo.MaxTagLength),
		"abc",                         // 3 hex digits: too short to be read as an id prefix
		"ABCD",                        // ids are lowercase
		"abcg", "cafe-1", "deadbeefx", // not only hex
		strings.Repeat("a", 65), // longer than any id
		"latest1", "the-latest",
	} {
		assert.NoError(t, repo.ValidTag(tag), "%q", tag)
	}
	for _, tc := range []struct{ tag, why string }{
		{"", "length"},
		{strings.Repeat("x", repo.MaxTagLength+1), "length"},
		{".a", "start"},
		{"-a", "start"},
		{"a..b", `".."`},
		{"a.", `".."`},
		{"a/b", "byte '/'"},
		{"a\x00", `byte '\x00'`},
		{"a b", "byte ' '"},
		{"é", "byte"},
		{`a\b`, "byte"},
		{"abcd", "snapshot id"},
		{"cafe", "snapshot id"},
		{"0123456789ab", "snapshot id"},
		{h1, "snapshot id"},
		{"sha256:abcd", "snapshot id"},
		{d1.String(), "snapshot id"},
		{strings.TrimSuffix(d1.String(), h1[4:]), "snapshot id"},
		{"latest", "reserved"},
		{"LATEST", "reserved"},
		{"Latest", "reserved"},
	} {
		err := repo.ValidTag(tc.tag)
		require.ErrorIs(t, err, core.ErrInvalid, "%q", tc.tag)
		assert.Contains(t, err.Error(), tc.why, "%q", tc.tag)
	}
}
