package store

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
