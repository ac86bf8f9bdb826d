package manifest_test

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
)

// digestOf returns the digest of s.
func digestOf(s string) digest.Digest { return digest.FromBytes([]byte(s)) }

// repeated returns the digest whose hex is pair repeated 32 times.
func repeated(pair string) digest.Digest {
	d, err := digest.FromHex(strings.Repeat(pair, 32))
	if err != nil {
		panic(err)
	}
	return d
}

// Keys of the fixture, in sorted order, as real services export them.
var (
	keyEmpty   = ""
	keyHTML    = "bucket/<a href=\"x\">&amp;</a>" // must not be HTML-escaped away
	keyNUL     = "bucket/a\x00v1"                 // S3 mock: "{bucket}/{key}\x00{versionID}"
	keyNFD     = "bucket/cafe\u0301"              // decomposed é
	keyNFC     = "bucket/caf\u00e9"               // composed é: a distinct key
	keyLong    = strings.Repeat("k", 4096)
	keyInvalid = "\xff\xfe/not-utf8"
)

// fixtureBlobs returns the fixture's entries in sorted order.
func fixtureBlobs() []manifest.Entry {
	keys := []string{keyEmpty, keyHTML, keyNUL, keyNFD, keyNFC, keyLong, keyInvalid}
	blobs := make([]manifest.Entry, len(keys))
	for i, k := range keys {
		blobs[i] = manifest.Entry{Key: k, Digest: digestOf("blob " + k), Size: int64(i * 100)}
	}
	return blobs
}

// fixtureView is the fixture's view.
var fixtureView = manifest.Object{Digest: digestOf("view"), Size: 42}

// fixture returns a valid manifest holding every kind of hostile key.
func fixture(t testing.TB) *manifest.Manifest {
	t.Helper()
	m, err := manifest.New("s3", "123456789012", "us-east-1", fixtureView, fixtureBlobs())
	require.NoError(t, err)
	return m
}

// requireInvalid asserts that err is a *manifest.ValidationError about
// field of entry index (-1 for none) with key, whose message names them,
// matching core.ErrCorrupt (bad data) or core.ErrInvalid (bad arguments)
// but not both, and returns it.
func requireInvalid(t *testing.T, err error, field string, index int, key string) *manifest.ValidationError {
	t.Helper()
	require.Error(t, err)
	require.NotEqual(t, errors.Is(err, core.ErrCorrupt), errors.Is(err, core.ErrInvalid), "exactly one of ErrCorrupt and ErrInvalid; error: %v", err)
	var ve *manifest.ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, field, ve.Field, "field; error: %v", err)
	assert.Equal(t, index, ve.Index, "index; error: %v", err)
	assert.True(t, strings.HasPrefix(err.Error(), "manifest: "), err.Error())
	if field != "" {
		assert.Contains(t, err.Error(), field+": ")
	}
	if index >= 0 {
		assert.Equal(t, key, ve.Key)
		assert.Contains(t, err.Error(), fmt.Sprintf("blobs[%d]", index))
		if key != "" || field != "key" { // else the key could not be decoded
			assert.Contains(t, err.Error(), fmt.Sprintf("%q", key))
		}
	}
	return ve
}

func TestNewSortsAndComputesID(t *testing.T) {
	want := fixtureBlobs()
	shuffled := slices.Clone(want)
	slices.Reverse(shuffled)
	shuffled[0], shuffled[3] = shuffled[3], shuffled[0]

	before := time.Now().UTC().Truncate(time.Millisecond)
	m, err := manifest.New("s3", "123456789012", "us-east-1", fixtureView, shuffled)
	require.NoError(t, err)

	assert.Equal(t, want, m.Blobs, "sorted by key bytes")
	assert.NotEqual(t, want, shuffled, "New must not sort the caller's slice")
	assert.Equal(t, manifest.Format, m.Format)
	assert.Equal(t, "statebucket", m.Producer)
	assert.Equal(t, manifest.Version, m.ProducerVersion)
	assert.Equal(t, time.UTC, m.Created.Location())
	assert.Zero(t, m.Created.Nanosecond()%int(time.Millisecond), "millisecond precision")
	assert.False(t, m.Created.Before(before))
	assert.Empty(t, m.Signature)

	c, err := m.Canonical()
	require.NoError(t, err)
	assert.Equal(t, digestOf(string(c)), m.ID)
	require.NoError(t, m.Validate())
}

func TestNewRejects(t *testing.T) {
	good := manifest.Entry{Key: "a", Digest: digestOf("a"), Size: 1}
	for _, tc := range []struct {
		name    string
		service string
		account string
		view    manifest.Object
		blobs   []manifest.Entry
		field   string
		index   int
		key     string
	}{
		{"empty service", "", "1", fixtureView, nil, "service", -1, ""},
		{"account not UTF-8", "s3", "\xff", fixtureView, nil, "account", -1, ""},
		{"view digest missing", "s3", "1", manifest.Object{Size: 1}, nil, "view.digest", -1, ""},
		{"view size negative", "s3", "1", manifest.Object{Digest: digestOf("v"), Size: -1}, nil, "view.size", -1, ""},
		{"duplicate key", "s3", "1", fixtureView, []manifest.Entry{good, {Key: "b\x00", Digest: digestOf("b"), Size: 2}, good}, "key", 1, "a"},
		{"uppercase digest", "s3", "1", fixtureView, []manifest.Entry{good, {Key: "b\x00", Digest: digest.Digest(strings.ToUpper(string(digestOf("b")))), Size: 2}}, "digest", 1, "b\x00"},
		{"digest without algorithm", "s3", "1", fixtureView, []manifest.Entry{{Key: "k", Digest: digest.Digest(digestOf("k").Hex())}}, "digest", 0, "k"},
		{"negative size", "s3", "1", fixtureView, []manifest.Entry{good, {Key: "\xffz", Digest: digestOf("z"), Size: -5}}, "size", 1, "\xffz"},
		{"total size overflows", "s3", "1", fixtureView, []manifest.Entry{{Key: "a", Digest: digestOf("a"), Size: math.MaxInt64 - fixtureView.Size}, {Key: "b", Digest: digestOf("b"), Size: 1}}, "size", 1, "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := manifest.New(tc.service, tc.account, "r", tc.view, tc.blobs)
			assert.Nil(t, m)
			requireInvalid(t, err, tc.field, tc.index, tc.key)
			assert.ErrorIs(t, err, core.ErrInvalid, "New's arguments are at fault: bad usage, not bad data")
		})
	}
}

func TestIDCoversContentOnly(t *testing.T) {
	m := fixture(t)
	c, err := m.Canonical()
	require.NoError(t, err)

	other := *m
	other.Created = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	other.Producer = "someone else"
	other.ProducerVersion = "9.9.9"
	require.NoError(t, other.Sign([]byte("key")))
	c2, err := other.Canonical()
	require.NoError(t, err)
	assert.Equal(t, c, c2)
	require.NoError(t, other.Validate(), "the id still matches")
	assert.True(t, m.Equal(&other))

	again, err := manifest.New(m.Service, m.Account, m.Region, m.View, m.Blobs)
	require.NoError(t, err)
	assert.Equal(t, m.ID, again.ID, "same state, same id")

	// Every id-relevant field changes the id.
	for name, change := range map[string]func(*manifest.Manifest){
		"service":      func(m *manifest.Manifest) { m.Service = "s3x" },
		"account":      func(m *manifest.Manifest) { m.Account = "" },
		"region":       func(m *manifest.Manifest) { m.Region = "eu-west-1" },
		"view digest":  func(m *manifest.Manifest) { m.View.Digest = digestOf("other") },
		"view size":    func(m *manifest.Manifest) { m.View.Size++ },
		"blob key":     func(m *manifest.Manifest) { m.Blobs[1].Key += "x" },
		"blob digest":  func(m *manifest.Manifest) { m.Blobs[2].Digest = digestOf("other") },
		"blob size":    func(m *manifest.Manifest) { m.Blobs[3].Size++ },
		"blob removed": func(m *manifest.Manifest) { m.Blobs = m.Blobs[1:] },
	} {
		t.Run(name, func(t *testing.T) {
			changed := *m
			changed.Blobs = slices.Clone(m.Blobs)
			change(&changed)
			assert.False(t, m.Equal(&changed))
			requireInvalid(t, changed.Validate(), "id", -1, "")
			n, err := manifest.New(changed.Service, changed.Account, changed.Region, changed.View, changed.Blobs)
			require.NoError(t, err)
			assert.NotEqual(t, m.ID, n.ID)
		})
	}
}

// TestCanonicalGolden pins the canonical form and so every id: changing
// either changes the id of every snapshot ever made.
func TestCanonicalGolden(t *testing.T) {
	m, err := manifest.New("s3", "000000000000", "us-east-1",
		manifest.Object{Digest: repeated("ab"), Size: 7},
		[]manifest.Entry{
			{Key: "b\x00\"\\<\u2028é", Digest: repeated("02"), Size: 2},
			{Key: "\xff", Digest: repeated("03"), Size: 0},
			{Key: "", Digest: repeated("01"), Size: 1},
		})
	require.NoError(t, err)
	c, err := m.Canonical()
	require.NoError(t, err)
	want := `{"format":"statebucket.manifest.v1","service":"s3","account":"000000000000","region":"us-east-1",` +
		`"view":{"digest":"sha256:` + strings.Repeat("ab", 32) + `","size":7},"blobs":[` +
		`{"key":"","digest":"sha256:` + strings.Repeat("01", 32) + `","size":1},` +
		`{"key":"b\u0000\"\\<` + "\u2028é" + `","digest":"sha256:` + strings.Repeat("02", 32) + `","size":2},` +
		`{"key_base64":"/w==","digest":"sha256:` + strings.Repeat("03", 32) + `","size":0}]}`
	assert.Equal(t, want, string(c))
	assert.Equal(t, digest.Digest("sha256:1f6b40619e0101f7f1c4ad376d813d98433845b6c151fd6dc9724ea070e19529"), m.ID)
}

func TestEncodeDeterministic(t *testing.T) {
	m := fixture(t)
	a, err := manifest.Encode(m)
	require.NoError(t, err)
	b, err := manifest.Encode(m)
	require.NoError(t, err)
	assert.Equal(t, a, b)
	assert.True(t, strings.HasSuffix(string(a), "}\n"), "trailing newline")
	assert.Contains(t, string(a), "\n  \"id\": ", "indented")

	shuffled := slices.Clone(m.Blobs)
	slices.Reverse(shuffled)
	n, err := manifest.New(m.Service, m.Account, m.Region, m.View, shuffled)
	require.NoError(t, err)
	n.Created = m.Created
	c, err := manifest.Encode(n)
	require.NoError(t, err)
	assert.Equal(t, a, c, "input order does not matter")
}

func TestEncodeRejectsInvalid(t *testing.T) {
	m := fixture(t)
	m.Blobs[2].Size = 12345 // the id is now stale
	_, err := manifest.Encode(m)
	requireInvalid(t, err, "id", -1, "")

	_, err = manifest.Encode(nil)
	requireInvalid(t, err, "", -1, "")

	m = fixture(t)
	m.Created = time.Time{}
	_, err = manifest.Encode(m)
	requireInvalid(t, err, "created", -1, "")

	m = fixture(t)
	m.Signature = "hmac-sha256:secret-looking-but-malformed"
	_, err = manifest.Encode(m)
	requireInvalid(t, err, "signature", -1, "")
	assert.NotContains(t, err.Error(), "secret", "signatures never appear in errors")
}

func TestLookupAndIndex(t *testing.T) {
	m := fixture(t)
	for i, e := range m.Blobs {
		assert.Equal(t, i, m.Index(e.Key), "%q", e.Key)
		got, ok := m.Lookup(e.Key)
		assert.True(t, ok, "%q", e.Key)
		assert.Equal(t, e, got)
	}
	for _, k := range []string{"bucket/a", "bucket/a\x00", "zzz", "\xff", keyLong + "k"} {
		assert.Equal(t, -1, m.Index(k), "%q", k)
		_, ok := m.Lookup(k)
		assert.False(t, ok, "%q", k)
	}
	empty, err := manifest.New("s3", "", "", fixtureView, nil)
	require.NoError(t, err)
	assert.Equal(t, -1, empty.Index(""))
}

func TestTotalSize(t *testing.T) {
	m := fixture(t)
	want := m.View.Size
	for _, e := range m.Blobs {
		want += e.Size
	}
	assert.Equal(t, want, m.TotalSize())

	m.Blobs[0].Size = math.MaxInt64
	assert.Equal(t, int64(math.MaxInt64), m.TotalSize(), "saturates")
}

func TestEqual(t *testing.T) {
	m := fixture(t)
	var nilM *manifest.Manifest
	assert.True(t, nilM.Equal(nil))
	assert.False(t, m.Equal(nil))
	assert.False(t, nilM.Equal(m))
	assert.True(t, m.Equal(fixture(t)))
}

func TestValidationErrorMessage(t *testing.T) {
	cause := errors.New("\"sha256:AB\" is not sha256:<64 lowercase hex digits>")
	for _, tc := range []struct {
		err  manifest.ValidationError
		want string
	}{
		{manifest.ValidationError{Field: "digest", Index: 3, Key: "b/k\x00v1", Err: cause},
			`manifest: blobs[3] (key "b/k\x00v1"): digest: "sha256:AB" is not sha256:<64 lowercase hex digits>`},
		{manifest.ValidationError{Field: "key", Index: 0, Err: errors.New(`"a" repeats`)},
			`manifest: blobs[0]: key: "a" repeats`},
		{manifest.ValidationError{Field: "id", Index: -1, Err: errors.New("mismatch")},
			`manifest: id: mismatch`},
		{manifest.ValidationError{Index: -1}, `manifest: invalid`},
	} {
		assert.Equal(t, tc.want, tc.err.Error())
		assert.ErrorIs(t, &tc.err, core.ErrCorrupt)
		assert.NotErrorIs(t, &tc.err, core.ErrInvalid)
		if tc.err.Err != nil {
			assert.ErrorIs(t, &tc.err, tc.err.Err)
		}
	}
}
