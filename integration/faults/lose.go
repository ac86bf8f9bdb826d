package faults

import (
	"io"
	"net/http"
	"sync/atomic"
	"syscall"
)

// LoseAnswer is an http.RoundTripper that sends every request on to Base
// but loses the answer to the first one Match accepts, once the server has
// applied it: it reports a connection reset ([ResetAfterSend]) instead, as
// when an answer is lost on its way back. A client that sends that request
// again meets its own write.
//
// A LoseAnswer is safe for concurrent use; its fields must not be changed
// once it is in use.
type LoseAnswer struct {
	// Base carries the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// Match picks the requests whose answer may be lost.
	Match func(*http.Request) bool

	matched atomic.Int32
}

// RoundTrip implements http.RoundTripper.
func (l *LoseAnswer) RoundTrip(req *http.Request) (*http.Response, error) {
	base := l.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if !l.Match(req) {
		return base.RoundTrip(req)
	}
	resp, err := base.RoundTrip(req)
	if l.matched.Add(1) > 1 || err != nil {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil, &Error{Kind: ResetAfterSend, Err: syscall.ECONNRESET}
}

// Matched returns how many requests Match accepted so far: more than one
// once the request whose answer was lost was sent again.
func (l *LoseAnswer) Matched() int { return int(l.matched.Load()) }
