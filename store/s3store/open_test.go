package s3store

import (
	"net/url"
	"testing"

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
		{url: "s3://bucket?color=red&endpoint=http://x&Region=r", err: `unknown query parameters "Region", "color" (known: endpoint, profile, region)`},
		{url: "s3://bucket?region=a&region=b", err: `query parameter "region" given 2 times`},
		{url: "s3://bucket?endpoint=127.0.0.1:9000", err: "endpoint must be an http:// or https:// URL"},
		{url: "s3://bucket?endpoint=ftp://host", err: "endpoint must be an http:// or https:// URL"},
		{url: "s3://bucket:9000/p", err: "holds a ':'"},
		{url: "s3://bucket?%zz", err: "malformed query"},
		{url: "s3://AKIAEXAMPLE:topsecret@bucket/p", err: "credentials in the URL are not supported"},
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
	}, nilOpts.withDefaults())
	got := (&Options{PartSize: 1, MultipartThreshold: 1 << 40, MaxConcurrency: 3}).withDefaults()
	assert.Equal(t, int64(MinPartSize), got.PartSize)
	assert.Equal(t, int64(MaxPutSize), got.MultipartThreshold)
	assert.Equal(t, 3, got.MaxConcurrency)
}
