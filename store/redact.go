package store

import (
	"net/url"
	"regexp"
	"strings"
)

// redacted replaces a secret.
const redacted = "REDACTED"

// sensitiveParts are the parts of query parameter names whose values may
// hold secrets: the signature, credential and security token of a
// presigned S3 URL (X-Amz-Signature, X-Amz-Credential,
// X-Amz-Security-Token), GCS's and Azure's (X-Goog-Signature, sig), and
// any parameter named like a key, secret, token or password.
var sensitiveParts = []string{"signature", "credential", "token", "secret", "password", "passwd", "key", "auth"}

// sensitiveNames are short parameter names that hold secrets.
var sensitiveNames = []string{"sig", "pass", "pwd"}

// sensitiveParam reports whether the query parameter name may hold a
// secret.
func sensitiveParam(name string) bool {
	lower := strings.ToLower(name)
	for _, s := range sensitiveNames {
		if lower == s {
			return true
		}
	}
	for _, s := range sensitiveParts {
		if strings.Contains(lower, s) {
			return true
		}
	}
	return false
}

// Redact returns u as a string with its credentials removed: the user
// information, the values of query parameters that may hold secrets (the
// signature, credential and security token of a presigned URL, and any
// parameter named like a key, secret, token or password), the same in
// URLs that query values hold (such as an endpoint= parameter's), and the
// fragment. Use it to show a repository URL in messages and logs.
func Redact(u *url.URL) string {
	if u == nil {
		return ""
	}
	r := *u
	if r.User != nil {
		r.User = url.User(redacted)
	}
	r.RawQuery = redactQuery(r.RawQuery)
	r.ForceQuery = r.ForceQuery && r.RawQuery == ""
	if r.Fragment != "" || r.RawFragment != "" {
		r.Fragment, r.RawFragment = redacted, ""
	}
	return r.String()
}

// redactQuery returns the raw query q with the values of sensitive
// parameters, and the secrets of URLs in other values, replaced; a query
// that does not parse is replaced whole.
func redactQuery(q string) string {
	if q == "" {
		return q
	}
	vals, err := url.ParseQuery(q)
	if err != nil {
		return redacted
	}
	changed := false
	for k, vs := range vals {
		for i, v := range vs {
			w := redacted
			if !sensitiveParam(k) {
				w = RedactText(v)
			}
			if w != v {
				vs[i] = w
				changed = true
			}
		}
	}
	if !changed {
		return q
	}
	return vals.Encode()
}

// schemeChars are the bytes of a URL scheme.
const schemeChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-"

// urlEnd are the bytes that end a URL found in text.
const urlEnd = " \t\r\n\"'`<>()[]{}|\\^"

// authorityEnd are the bytes that end the authority of a URL found in
// text: a password may hold spaces and quotes ('), so they do not.
const authorityEnd = "/?#\r\n\"`<>"

// sensitiveInText matches name=value pairs, in text, whose name says
// that the value is a secret (see sensitiveParam).
var sensitiveInText = regexp.MustCompile(`(?i)\b([a-z0-9_.-]*(?:signature|credential|token|secret|password|passwd|key|auth)[a-z0-9_.-]*|sig|pass|pwd)=([^&\s"'` + "`" + `<>]*)`)

// RedactText returns s with the credentials of every URL in it removed,
// as [Redact] removes them, whether or not the URL parses: the user
// information (everything between "://" and the authority's last '@'),
// the values of sensitive query parameters (a query that does not parse
// is removed whole), and fragments; and the values of name=value pairs
// outside URLs whose name says they are secret. It is meant for the text
// of errors and logs, which may repeat a URL that a library received;
// text around the URLs is kept.
func RedactText(s string) string {
	if !strings.Contains(s, "://") && !sensitiveInText.MatchString(s) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			break
		}
		b.WriteString(s[:i+3])
		s = s[i+3:]
		if at := userinfoEnd(s); at >= 0 {
			b.WriteString(redacted + "@")
			s = s[at+1:]
		}
		end := strings.IndexAny(s, urlEnd)
		if end < 0 {
			end = len(s)
		}
		if k := strings.Index(s[:end], "://"); k >= 0 { // the next URL
			end = len(strings.TrimRight(s[:k], schemeChars))
		}
		// Punctuation that ends a URL ends the sentence, not the URL.
		end = len(strings.TrimRight(s[:end], ".,;:!"))
		rest, frag, hasFrag := strings.Cut(s[:end], "#")
		if path, query, ok := strings.Cut(rest, "?"); ok {
			rest = path + "?" + redactQuery(query)
		}
		b.WriteString(rest)
		if hasFrag && frag != "" {
			b.WriteString("#" + redacted)
		} else if hasFrag {
			b.WriteString("#")
		}
		s = s[end:]
	}
	b.WriteString(s)
	return sensitiveInText.ReplaceAllString(b.String(), "${1}="+redacted)
}

// userinfoEnd returns the index of the '@' that ends the user information
// at the start of s, the text after a "://", or -1 if there is none: the
// last '@' of the authority, which ends at the first '/', '?' or '#'; but
// if the authority has no '@' and a ':' followed by something other than
// a port number, it is most likely "user:pass" whose password holds an
// unescaped '/', and the last '@' before any '?' or '#' ends it.
func userinfoEnd(s string) int {
	auth := s
	if j := strings.IndexAny(auth, authorityEnd); j >= 0 {
		auth = auth[:j]
	}
	if at := strings.LastIndexByte(auth, '@'); at >= 0 {
		return at
	}
	host := auth
	if j := strings.LastIndexByte(host, ']'); j >= 0 { // an IPv6 address
		host = host[j+1:]
	}
	_, port, ok := strings.Cut(host, ":")
	if !ok || strings.Trim(port, "0123456789") == "" {
		return -1
	}
	rest := s
	if j := strings.IndexAny(rest, "?#\r\n\"`<>"); j >= 0 {
		rest = rest[:j]
	}
	return strings.LastIndexByte(rest, '@')
}

// RedactError returns err with [RedactText] applied to its message, or
// err itself when its message holds nothing to redact. errors.Is and
// errors.As see through it to err; the messages of the errors in err's
// chain are not redacted.
func RedactError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if r := RedactText(msg); r != msg {
		return &redactedError{msg: r, err: err}
	}
	return err
}

// redactedError is an error whose message had secrets removed.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
