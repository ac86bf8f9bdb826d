package digest_test

import (
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
)

const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" // SHA-256 of "abc"

func TestFromBytesAndSum(t *testing.T) {
	d := digest.FromBytes([]byte("abc"))
	assert.Equal(t, digest.Digest("sha256:"+abc), d)
	sum := sha256.Sum256([]byte("abc"))
	assert.Equal(t, d, digest.FromSum(sum[:]))
	assert.Equal(t, sum[:], d.Sum())
	assert.Equal(t, abc, d.Hex())
	assert.Equal(t, abc[:12], d.Short())
	assert.Equal(t, "sha256:"+abc, d.String())
	assert.True(t, d.IsValid())
	assert.Panics(t, func() { digest.FromSum(sum[:31]) })
}

func TestParse(t *testing.T) {
	d, err := digest.Parse("sha256:" + abc)
	require.NoError(t, err)
	assert.Equal(t, abc, d.Hex())

	for _, bad := range []string{
		"", abc, "sha256:", "sha256:" + abc[:63], "sha256:" + abc + "0", "sha256:" + strings.ToUpper(abc),
		"sha512:" + abc, "SHA256:" + abc, " sha256:" + abc, "sha256:" + abc + "\n", "sha256:" + strings.Replace(abc, "b", "g", 1),
	} {
		_, err := digest.Parse(bad)
		require.ErrorIs(t, err, core.ErrInvalid, "%q", bad)
		assert.Contains(t, err.Error(), "sha256:<64 lowercase hex digits>")
		assert.False(t, digest.Digest(bad).IsValid(), "%q", bad)
		assert.Nil(t, digest.Digest(bad).Sum(), "%q", bad)
	}
}

func TestFromHex(t *testing.T) {
	d, err := digest.FromHex(abc)
	require.NoError(t, err)
	assert.Equal(t, digest.Digest("sha256:"+abc), d)
	for _, bad := range []string{"", "sha256:" + abc, abc[:63], strings.ToUpper(abc)} {
		_, err := digest.FromHex(bad)
		assert.ErrorIs(t, err, core.ErrInvalid, "%q", bad)
	}
}

func TestHexOfInvalid(t *testing.T) {
	assert.Equal(t, "", digest.Digest(abc).Hex(), "no prefix")
	assert.Equal(t, "ab", digest.Digest("sha256:ab").Hex())
	assert.Equal(t, "ab", digest.Digest("sha256:ab").Short())
	assert.Equal(t, "", digest.Digest("").Short())
}

func TestHexChecks(t *testing.T) {
	assert.True(t, digest.IsHex(abc))
	for _, s := range []string{"", abc[:63], abc + "0", strings.ToUpper(abc), "sha256:" + abc} {
		assert.False(t, digest.IsHex(s), "%q", s)
	}
	for _, s := range []string{"0", "abcd", abc[:12], abc} {
		assert.True(t, digest.IsHexPrefix(s), "%q", s)
	}
	for _, s := range []string{"", "ABCD", "abcg", abc + "0", "sha256:ab", "v1"} {
		assert.False(t, digest.IsHexPrefix(s), "%q", s)
	}
}

func TestCutPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"abcd": "abcd", "sha256:abcd": "abcd", abc: abc, "sha256:" + abc: abc,
	} {
		got, ok := digest.CutPrefix(in)
		assert.True(t, ok, "%q", in)
		assert.Equal(t, want, got, "%q", in)
	}
	for _, in := range []string{"", "sha256:", "latest", "sha256:ABCD", "sha256:sha256:ab", abc + "0", "fixture-v1"} {
		_, ok := digest.CutPrefix(in)
		assert.False(t, ok, "%q", in)
	}
}

// A Digest encodes to JSON as the plain string it is.
func TestJSON(t *testing.T) {
	d := digest.FromBytes(nil)
	data, err := json.Marshal(struct{ D digest.Digest }{d})
	require.NoError(t, err)
	assert.Equal(t, `{"D":"`+string(d)+`"}`, string(data))
	var back struct{ D digest.Digest }
	require.NoError(t, json.Unmarshal(data, &back))
	assert.Equal(t, d, back.D)
}
