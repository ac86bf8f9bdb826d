package store_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
	_ "github.com/statebucket/statebucket/store/filestore"
	_ "github.com/statebucket/statebucket/store/s3store"
)

// TestOpenRefusesHostileURLs: URLs that would silently name another
// place than they seem (a fragment that swallows the query, so requests
// go to AWS instead of the endpoint; a prefix with empty or dot segments)
// are refused by Open, before any request, with an error matching
// core.ErrInvalid that names the URL without its secrets.
func TestOpenRefusesHostileURLs(t *testing.T) {
	tests := []struct {
		url  string
		want string // a part of the message
	}{
		{"s3://b/p#frag?endpoint=http://127.0.0.1:9000", "take no fragment"},
		{"s3://b/p?endpoint=http://127.0.0.1:9000#x", "take no fragment"},
		{"s3://b/p#", "take no fragment"},
		{"s3://b/p?sig=canary-sig#token=canary-frag", "take no fragment"},
		{"file:///tmp/repo#x", "take no fragment"},
		{"s3://b//x", `path "//x" has an empty`},
		{"s3://b/a/../c", `path "/a/../c" has an empty, "." or ".." segment`},
		{"s3://b/a/./c", "segment"},
		{"s3://b/..", "segment"},
		{"s3://b/a//", "segment"},
		{"s3://b/x?X-Amz-Credential=canary-cred&X-Amz-Signature=canary-sig", `unknown query parameters "X-Amz-Credential", "X-Amz-Signature"`},
		{"file:///tmp/a/../c", "segment"},
		{"file:///tmp//c", "segment"},
		{"s3:/bucket", `lacks "//"`},
		{"s3:canary-user:canary-pw@bucket", `lacks "//"`},
		{"s3://canary-user:canary-pw@bucket/p", "credentials in a repository URL are not supported"},
		{"file://canary-user:canary-pw@localhost/tmp/x", "credentials in a repository URL are not supported"},
		{"s3://canary-user@bucket/p", "credentials in a repository URL are not supported"},
		{"s3://AKIA:canary-pw/p", "invalid port"},
		{"s3://b/p?endpoint=" + url.QueryEscape("http://canary-user:canary-pw@127.0.0.1:9000"), "credentials in the endpoint"},
		{"s3://b/p?endpoint=" + url.QueryEscape("http://127.0.0.1:9000/?sig=canary-sig"), "takes no query"},
		{"s3://b/p?timeout=-1s", "want a positive duration"},
		{"nosuch://b/p?sig=canary-sig", "unknown scheme"},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			st, err := store.Open(t.Context(), tc.url)
			require.ErrorIs(t, err, core.ErrInvalid)
			assert.Nil(t, st)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "canary")
		})
	}
}

// TestOpenAcceptsPlainPrefixes: one leading and one trailing slash are
// not empty segments, and the Store's location is the URL.
func TestOpenAcceptsPlainPrefixes(t *testing.T) {
	for _, raw := range []string{"s3://b", "s3://b/", "s3://b/a/b/", "s3://b/.a/b..c?timeout=2s", "file:///tmp/x/"} {
		st, err := store.Open(t.Context(), raw)
		require.NoError(t, err, raw)
		assert.Equal(t, raw, st.Location())
		require.NoError(t, st.Close())
	}
}

func TestValidURLPath(t *testing.T) {
	for _, p := range []string{"", "/", "a", "/a", "/a/", "/a/b", "/.a/b./...", "/a b"} {
		assert.NoError(t, store.ValidURLPath(p), p)
	}
	for _, p := range []string{"//", "/a//b", "//a", "/a//", "/./a", "/a/..", "..", "a/./b"} {
		assert.ErrorIs(t, store.ValidURLPath(p), core.ErrInvalid, p)
	}
}

// FuzzOpenURL opens arbitrary URLs with the file and s3 drivers (neither
// contacts anything when opening): Open never panics, and neither the
// Store's location nor an error holds the password of the URL, or of a
// URL in its query, or the value of a sensitive query parameter.
func FuzzOpenURL(f *testing.F) {
	for _, seed := range []string{
		"s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&timeout=2s",
		"s3://user:password1@bucket/p",
		"s3://b/p?endpoint=" + url.QueryEscape("http://user:password2@127.0.0.1:9000/?a=1"),
		"s3://b/p?endpoint=" + url.QueryEscape("http://u:pass word3@h"),
		"s3://b/p?X-Amz-Signature=signature4&X-Amz-Credential=credential5&X-Amz-Security-Token=token66",
		"s3://b/p?%zz=secret7&sig=secret8",
		"s3://AKIA:secret9/p",
		"s3://b//x", "s3://b/a/../c", "s3://b/p#token=secret10", "s3:/bucket", "s3:user:secret11@b",
		"file:///tmp/repo", "file://user:secret12@host/tmp", "file:///tmp/a/../b",
		"relative/dir", "", "://", "s3://", "S3://B/P", "s3://b/p?region=a&region=b",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		st, err := store.Open(t.Context(), raw)
		var out string
		if err != nil {
			out = err.Error()
			require.Nil(t, st)
		} else {
			out = st.Location()
			require.NoError(t, st.Close())
		}
		for _, s := range secretsIn(raw) {
			if len(s) >= 4 && strings.Count(raw, s) == 1 {
				require.NotContains(t, out, s, "secret %q of %q leaked", s, raw)
			}
		}
	})
}

// secretsIn returns the password and the values of sensitive query
// parameters of raw if it is a URL (not a local path), and of the URLs in
// its query's values.
func secretsIn(raw string) []string {
	if !strings.Contains(raw, "://") {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	var out []string
	if pw, ok := u.User.Password(); ok {
		out = append(out, pw)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return out
	}
	for k, vs := range q {
		for _, v := range vs {
			if sensitive(k) {
				out = append(out, v)
			}
			out = append(out, secretsIn(v)...)
		}
	}
	return out
}

// sensitive reports whether the query parameter name holds a secret, by
// the names the brief lists: those of presigned URLs' signatures,
// credentials and tokens, and any named like a secret, password or key.
func sensitive(name string) bool {
	n := strings.ToLower(name)
	if n == "sig" {
		return true
	}
	for _, part := range []string{"signature", "credential", "token", "secret", "password", "key"} {
		if strings.Contains(n, part) {
			return true
		}
	}
	return false
}
