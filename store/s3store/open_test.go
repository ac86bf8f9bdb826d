package s3store

import (
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		url  string
		want location
		err  string // a part of the error's message; "" for none
	}{
		{url: "s3://bucket", want: location{bucket: "bucket"}},
		{url: "s3://bucket/", want: location{bucket: "bucket"}},
		{url: "s3://bucket/some/prefix/", want: location{bucket: "bucket", prefix: "some/prefix"}},
		{
			url:  "s3://my.bucket/p?endpoint=http://127.0.0.1:9000&region=eu-west-3&profile=dev",
			want: location{bucket: "my.bucket", prefix: "p", endpoint: "http://127.0.0.1:9000", region: "eu-west-3", profile: "dev"},
		},
		{url: "s3://b?endpoint=" + url.QueryEscape("https://minio.example:9000/"), want: location{bucket: "b", endpoint: "https://minio.example:9000/"}},
		{url: "s3:///prefix", err: "missing bucket name"},
		{url: "s3:bucket", err: "missing bucket name"},
		{url: "gs://bucket", err: `scheme is "gs"`},
		{url: "s3://bucket?color=red&endpoint=http://x&Region=r", err: `unknown query parameters "Region", "color" (known: endpoint, profile, region, timeout)`},
		{url: "s3://bucket?region=a&region=b", err: `query parameter "region" given 2 times`},
		{url: "s3://bucket?endpoint=127.0.0.1:9000", err: "endpoint must be an http:// or https:// URL"},
		{url: "s3://bucket?endpoint=ftp://host", err: "endpoint must be an http:// or https:// URL"},
		{url: "s3://bucket:9000/p", err: "holds a ':'"},
		{url: "s3://bucket?%zz", err: "malformed query"},
		{url: "s3://AKIAEXAMPLE:topsecret@bucket/p", err: "credentials in the URL are not supported"},
		{url: "s3://b/p?timeout=2s", want: location{bucket: "b", prefix: "p", timeout: 2 * time.Second}},
		{url: "s3://b/p?timeout=0s", err: `timeout="0s": want a positive duration`},
		{url: "s3://b/p?timeout=soon", err: `timeout="soon": want a positive duration`},
		{url: "s3://b//p", err: `path "//p" has an empty`},
		{url: "s3://b/a/../p", err: `path "/a/../p" has an empty, "." or ".." segment`},
		{url: "s3://b/p?endpoint=" + url.QueryEscape("http://AKIAEXAMPLE:topsecret@minio:9000"), err: "credentials in the endpoint are not supported"},
		{url: "s3://b/p?endpoint=" + url.QueryEscape("http://minio:9000/?X-Amz-Signature=topsecret"), err: "the endpoint takes no query"},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			require.NoError(t, err)
			got, err := parseURL(u)
			if tc.err == "" {
				require.NoError(t, err)
				assert.Equal(t, tc.want, got)
				return
			}
			require.ErrorIs(t, err, core.ErrInvalid)
			assert.Contains(t, err.Error(), tc.err)
			assert.NotContains(t, err.Error(), "topsecret")
			assert.NotContains(t, err.Error(), "AKIAEXAMPLE")
		})
	}
}

func TestOptionsDefaults(t *testing.T) {
	var nilOpts *Options
	assert.Equal(t, Options{
		MaxConcurrency:     DefaultMaxConcurrency,
		PartSize:           DefaultPartSize,
		MultipartThreshold: DefaultMultipartThreshold,
		PartConcurrency:    DefaultPartConcurrency,
		ResponseTimeout:    DefaultResponseTimeout,
		StallTimeout:       DefaultStallTimeout,
	}, nilOpts.withDefaults())
	got := (&Options{PartSize: 1, MultipartThreshold: 1 << 40, MaxConcurrency: 3, ResponseTimeout: -1, StallTimeout: time.Second}).withDefaults()
	assert.Equal(t, time.Duration(-1), got.ResponseTimeout, "negative: no limit")
	assert.Equal(t, time.Second, got.StallTimeout)
	assert.Equal(t, int64(MinPartSize), got.PartSize)
	assert.Equal(t, int64(MaxPutSize), got.MultipartThreshold)
	assert.Equal(t, 3, got.MaxConcurrency)
}
