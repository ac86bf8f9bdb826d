// Package faults injects the failures of a real network into HTTP clients:
// a [RoundTripper] fails a share of the requests it carries, choosing
// among throttling responses, connection resets before and after the
// request reaches the server, and response bodies cut short.
//
// The failure that matters most is [ResetAfterSend]: the server received
// and applied the request, but its answer was lost, so the client cannot
// tell whether its write landed. Code that retries writes must survive it.
package faults

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
)

// Kind is a kind of injected failure.
type Kind int

// The kinds of failure a [RoundTripper] injects.
const (
	// SlowDown answers 503 with an S3 "SlowDown" XML error, without
	// sending the request on.
	SlowDown Kind = iota
	// ResetBeforeSend fails with a connection reset before the request is
	// sent: nothing reached the server.
	ResetBeforeSend
	// ResetAfterSend sends the request, lets the server answer, then
	// discards the answer and fails with a connection reset: the request
	// landed, but the client cannot know it.
	ResetAfterSend
	// TruncatedBody passes the response on with its body cut short: reads
	// fail with an error wrapping io.ErrUnexpectedEOF part-way through. A
	// response with an empty body cannot be cut, so it gets ResetAfterSend
	// instead (and is counted as such).
	TruncatedBody

	numKinds
)

// AllKinds lists every kind, in order.
var AllKinds = []Kind{SlowDown, ResetBeforeSend, ResetAfterSend, TruncatedBody}

func (k Kind) String() string {
	switch k {
	case SlowDown:
		return "slow-down"
	case ResetBeforeSend:
		return "reset-before-send"
	case ResetAfterSend:
		return "reset-after-send"
	case TruncatedBody:
		return "truncated-body"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// ErrInjected is matched (errors.Is) by every error a [RoundTripper]
// returns or makes a response body return.
var ErrInjected = errors.New("injected fault")

// Error is the error of an injected connection reset or truncated body.
// It matches [ErrInjected] and unwraps to its cause: syscall.ECONNRESET
// for a reset, io.ErrUnexpectedEOF for a truncated body.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("faults: injected %s: %v", e.Kind, e.Err)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is [ErrInjected].
func (e *Error) Is(target error) bool { return target == ErrInjected }

// SlowDownMessage is the message of the injected 503 SlowDown S3 error, so
// that tests can recognise it in an SDK's error.
const SlowDownMessage = "Please reduce your request rate (injected by faults.RoundTripper)."

// RoundTripper is an http.RoundTripper that fails a share of the requests
// it carries and passes the others to Base.
//
// The sequence of decisions (fail or not, which kind, where to cut) is
// determined by Seed; when requests are made concurrently, which request
// receives which decision follows the order in which they arrive.
//
// A RoundTripper must not be copied after first use. It is safe for
// concurrent use; its fields must not be changed once it is in use.
type RoundTripper struct {
	// Base carries the requests that are sent; nil means
	// http.DefaultTransport.
	Base http.RoundTripper
	// Rate is the share of requests that fail, from 0 (none) to 1 (all).
	Rate float64
	// Seed seeds the decisions.
	Seed uint64
	// Kinds are the kinds of failure chosen among, with equal chances;
	// empty means all of them.
	Kinds []Kind

	once   sync.Once
	mu     sync.Mutex
	rng    *rand.Rand
	counts [numKinds]atomic.Int64
}

// decision is what to do with one request.
type decision struct {
	fail bool
	kind Kind
	cut  uint64 // for TruncatedBody: a random number choosing where to cut
}

func (rt *RoundTripper) decide() decision {
	rt.once.Do(func() { rt.rng = rand.New(rand.NewPCG(rt.Seed, rt.Seed^0x9e3779b97f4a7c15)) })
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.Rate <= 0 || (rt.Rate < 1 && rt.rng.Float64() >= rt.Rate) {
		return decision{}
	}
	kinds := rt.Kinds
	if len(kinds) == 0 {
		kinds = AllKinds
	}
	return decision{fail: true, kind: kinds[rt.rng.IntN(len(kinds))], cut: rt.rng.Uint64()}
}

// RoundTrip implements http.RoundTripper.
func (rt *RoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	d := rt.decide()
	if !d.fail {
		return rt.base().RoundTrip(req)
	}
	switch d.kind {
	case SlowDown:
		closeBody(req)
		rt.counts[SlowDown].Add(1)
		return slowDown(req), nil
	case ResetBeforeSend:
		closeBody(req)
		return nil, rt.reset(ResetBeforeSend)
	}
	resp, err := rt.base().RoundTrip(req)
	if err != nil {
		return nil, err // a real failure; nothing to inject
	}
	if d.kind == TruncatedBody && resp.ContentLength != 0 && resp.Body != nil && resp.Body != http.NoBody {
		rt.counts[TruncatedBody].Add(1)
		resp.Body = &truncatedBody{rc: resp.Body, left: cutPoint(resp.ContentLength, d.cut)}
		resp.ContentLength = -1
		return resp, nil
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil, rt.reset(ResetAfterSend)
}

// Count returns how many failures of kind k were injected so far.
func (rt *RoundTripper) Count(k Kind) int64 {
	if k < 0 || k >= numKinds {
		return 0
	}
	return rt.counts[k].Load()
}

// Total returns how many failures were injected so far.
func (rt *RoundTripper) Total() int64 {
	var n int64
	for i := range rt.counts {
		n += rt.counts[i].Load()
	}
	return n
}

// String summarises the failures injected so far, one "kind=count" per
// kind.
func (rt *RoundTripper) String() string {
	var b bytes.Buffer
	for i, k := range AllKinds {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", k, rt.Count(k))
	}
	return b.String()
}

func (rt *RoundTripper) base() http.RoundTripper {
	if rt.Base != nil {
		return rt.Base
	}
	return http.DefaultTransport
}

func (rt *RoundTripper) reset(k Kind) error {
	rt.counts[k].Add(1)
	return &Error{Kind: k, Err: syscall.ECONNRESET}
}

// cutPoint returns how many bytes of a body of length n (-1: unknown) to
// pass on before failing: fewer than n when n is known, so the body is
// always cut; up to 1 KiB otherwise.
func cutPoint(n int64, r uint64) int64 {
	if n > 0 {
		return int64(r % uint64(n))
	}
	return int64(r % 1024)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

func slowDown(req *http.Request) *http.Response {
	body := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SlowDown</Code><Message>%s</Message><RequestId>faults</RequestId><HostId>faults</HostId></Error>`, SlowDownMessage)
	h := make(http.Header)
	h.Set("Content-Type", "application/xml")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Amz-Request-Id", "faults")
	return &http.Response{
		Status:        "503 Service Unavailable",
		StatusCode:    http.StatusServiceUnavailable,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader([]byte(body))),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// truncatedBody passes left bytes of rc on, then fails.
type truncatedBody struct {
	rc   io.ReadCloser
	left int64
	read int64
}

func (b *truncatedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, &Error{Kind: TruncatedBody, Err: fmt.Errorf("body cut after %d bytes: %w", b.read, io.ErrUnexpectedEOF)}
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	b.read += int64(n)
	if err == io.EOF {
		// The body was shorter than the cut: fail at its end instead.
		b.left = 0
		err = nil
		if n == 0 {
			return b.Read(p)
		}
	}
	return n, err
}

func (b *truncatedBody) Close() error { return b.rc.Close() }
