package store

import (
	"net/url"
	"strings"
)

var sensitiveParams = []string{"signature", "credential", "token", "secret", "password", "key"}

// Redact returns u as a string with its credentials removed: the user
// information, the values of query parameters that may hold secrets (the
// signature, credential and security token of a presigned URL, and any
// parameter named like a key, secret, token or password), and the same in
// an endpoint= parameter's URL. Use it to show a repository URL in
// messages and logs.
func Redact(u *url.URL) string {
	if u == nil {
		return ""
	}
	r := *u
	if r.User != nil {
		r.User = url.User("REDACTED")
	}
	q, err := url.ParseQuery(r.RawQuery)
	if err != nil {
		r.RawQuery = "REDACTED"
		return r.String()
	}
	changed := false
	for k, vs := range q {
		for i, v := range vs {
			w := redactValue(k, v)
			if w != v {
				vs[i] = w
				changed = true
			}
		}
	}
	if changed {
		r.RawQuery = q.Encode()
	}
	return r.String()
}

func redactValue(param, value string) string {
	lower := strings.ToLower(param)
	for _, s := range sensitiveParams {
		if strings.Contains(lower, s) {
			return "REDACTED"
		}
	}
	if lower == "endpoint" {
		if e, err := url.Parse(value); err == nil && (e.User != nil || e.RawQuery != "") {
			return Redact(e)
		}
	}
	return value
}
