package store

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
)

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"s3://bucket/prefix?region=us-east-1", "s3://bucket/prefix?region=us-east-1"},
		{"s3://AKIAEXAMPLE:topsecret@bucket/p", "s3://REDACTED@bucket/p"},
		{"s3://bucket?endpoint=" + url.QueryEscape("http://user:topsecret@minio:9000"), "s3://bucket?endpoint=http%3A%2F%2FREDACTED%40minio%3A9000"},
		{
			"https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAEXAMPLE%2F20260101&X-Amz-Signature=abcdef&X-Amz-Security-Token=tok&x-id=GetObject",
			"https://b.s3.amazonaws.com/k?X-Amz-Credential=REDACTED&X-Amz-Security-Token=REDACTED&X-Amz-Signature=REDACTED&x-id=GetObject",
		},
		{"http://host/?aws_secret_access_key=topsecret", "http://host/?aws_secret_access_key=REDACTED"},
		{"http://host/?%zz=topsecret", "http://host/?REDACTED"},
	}
	for _, tc := range tests {
		u, err := url.Parse(tc.in)
		require.NoError(t, err)
		assert.Equal(t, tc.want, Redact(u), tc.in)
	}
	assert.Equal(t, "", Redact(nil))
}

func TestRedactHidesFragments(t *testing.T) {
	u, err := url.Parse("s3://b/p?region=r#access_token=topsecret")
	require.NoError(t, err)
	assert.Equal(t, "s3://b/p?region=r#REDACTED", Redact(u))
}

func TestRedactText(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"no URL", "store: get \"blobs/x\": not found", "store: get \"blobs/x\": not found"},
		{
			"SDK endpoint error",
			"resolve endpoint: Custom endpoint `http://user:topsecret@127.0.0.1:1/?a=1` was not a valid URI",
			"resolve endpoint: Custom endpoint `http://REDACTED@127.0.0.1:1/?a=1` was not a valid URI",
		},
		{
			"Go HTTP error",
			`Get "https://b.s3.amazonaws.com/k?X-Amz-Signature=abcdef&x-id=GetObject": dial tcp: i/o timeout`,
			`Get "https://b.s3.amazonaws.com/k?X-Amz-Signature=REDACTED&x-id=GetObject": dial tcp: i/o timeout`,
		},
		{"password with a space", "open http://u:top secret@host/x failed", "open http://REDACTED@host/x failed"},
		{"password with a slash", "at http://u:top/secret@host/x", "at http://REDACTED@host/x"},
		{"an address in a path", "at http://host:9000/a@b/c", "at http://host:9000/a@b/c"},
		{"IPv6", "at http://[::1]:9000/a@b", "at http://[::1]:9000/a@b"},
		{"unparsable query", "see s3://b/p?%zz=topsecret now", "see s3://b/p?REDACTED now"},
		{"nested endpoint", "s3://b/p?endpoint=" + url.QueryEscape("http://u:topsecret@h:9000") + ".", "s3://b/p?endpoint=http%3A%2F%2FREDACTED%40h%3A9000."},
		{"fragment, then a colon", "open s3://b/x#token=topsecret: no fragments", "open s3://b/x#REDACTED: no fragments"},
		{"bare parameter", "signing with aws_secret_access_key=topsecret and sig=abc&x=1", "signing with aws_secret_access_key=REDACTED and sig=REDACTED&x=1"},
		{"several URLs", "http://a:s1@x/ then https://b:s2@y/", "http://REDACTED@x/ then https://REDACTED@y/"},
		{"file URL", "open file:///tmp/repo: not found", "open file:///tmp/repo: not found"},
		{"scheme only", "a :// b", "a :// b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := RedactText(tc.in)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, got, RedactText(got), "not idempotent")
		})
	}
}

func TestRedactError(t *testing.T) {
	assert.NoError(t, RedactError(nil))
	plain := errors.New("no secret here")
	assert.Same(t, plain, RedactError(plain))

	cause := &url.Error{Op: "Get", URL: "http://u:topsecret@host/", Err: core.ErrTransient}
	err := RedactError(fmt.Errorf("s3store: %w", cause))
	assert.Equal(t, `s3store: Get "http://REDACTED@host/": transient failure`, err.Error())
	require.ErrorIs(t, err, core.ErrTransient)
	var ue *url.Error
	require.ErrorAs(t, err, &ue, "the chain is kept")
}

// FuzzRedactText puts a URL with a password in any text: the password
// never survives RedactText.
func FuzzRedactText(f *testing.F) {
	f.Add("error: ", "user", "topsecret", "host:9000", "/p?a=1: failed")
	f.Add("x://", "u", "pa ss'word", "h", "")
	f.Add("`", "AKIA", "s3cr3t/with/slashes", "127.0.0.1", "` was not a valid URI")
	f.Fuzz(func(t *testing.T, before, user, password, host, after string) {
		const notInUserinfo = "@/?#\r\n\"`<>"
		if len(password) < 4 || strings.ContainsAny(user+password, notInUserinfo) || strings.ContainsAny(host, notInUserinfo) ||
			strings.Count(before+user+host+after, password) > 0 || strings.Contains(password, redacted) {
			t.Skip()
		}
		text := before + "http://" + user + ":" + password + "@" + host + after
		assert.NotContains(t, RedactText(text), password, "in %q", text)
	})
}
