package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/statebucket/statebucket/core"
)

// Timeout defaults of [Options].
const (
	// DefaultResponseTimeout bounds the wait for a server's answer: to
	// connect and send a request's headers, and, once the request is sent,
	// to receive the response's headers.
	DefaultResponseTimeout = 30 * time.Second
	// DefaultStallTimeout bounds the time a request body being sent, or a
	// response body being read, may go without a byte moving.
	DefaultStallTimeout = 60 * time.Second
)

// TimeoutError is the error of a request that made no progress in time:
// the server did not answer within Options.ResponseTimeout, or a body
// stalled for Options.StallTimeout. It matches core.ErrTransient, and the
// SDK's retryer tries the request again, as does the store layer once the
// retryer gives up; a read that stalls is resumed by the store layer.
type TimeoutError struct {
	Endpoint string        // the server, credentials removed
	Waited   string        // what did not come: "a response", "progress sending the request body"…
	Limit    time.Duration // the limit that ran out
	Setting  string        // the Options field that sets it
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("s3store: %s: %s: no %s within %v (raise it with ?timeout= in the s3:// URL, or Options.%s)",
		core.ErrTransient, e.Endpoint, e.Waited, e.Limit, e.Setting)
}

// Unwrap returns core.ErrTransient.
func (e *TimeoutError) Unwrap() error { return core.ErrTransient }

// Timeout reports true, as the timeouts of package net do.
func (e *TimeoutError) Timeout() bool { return true }

// RetryableError reports true: the SDK's retryer tries the request again.
func (e *TimeoutError) RetryableError() bool { return true }

// withTimeouts is the per-operation option that enforces the driver's
// timeouts on the operation's requests.
func (d *Driver) withTimeouts(o *s3.Options) {
	if d.opts.ResponseTimeout > 0 || d.opts.StallTimeout > 0 {
		o.HTTPClient = &watchdog{next: o.HTTPClient, endpoint: d.endpoint, response: d.opts.ResponseTimeout, stall: d.opts.StallTimeout}
	}
}

// watchdog is an HTTP client that enforces a driver's timeouts on each
// request it passes to next, whatever next's transport. A timeout cancels
// the request, which then fails with a *TimeoutError.
type watchdog struct {
	next     aws.HTTPClient
	endpoint string
	response time.Duration // ≤ 0: none
	stall    time.Duration // ≤ 0: none
}

// Do sends req through the watchdog's client. The time to connect, send
// the headers and, once the body is sent, receive the response's headers
// is bounded by the response timeout; each wait for the request body to
// move, and each Read of the response body, by the stall timeout. Time
// spent by the caller between two Reads of the response body is not
// counted.
func (w *watchdog) Do(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	t := &transfer{w: w, cancel: cancel}
	t.arm(w.response, "response", "ResponseTimeout")
	req = req.WithContext(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &sendBody{ReadCloser: req.Body, t: t}
		if get := req.GetBody; get != nil {
			req.GetBody = func() (io.ReadCloser, error) {
				b, err := get()
				if err != nil || b == http.NoBody {
					return b, err
				}
				return &sendBody{ReadCloser: b, t: t}, nil
			}
		}
	}
	resp, err := w.next.Do(req)
	t.received()
	if err != nil {
		err = t.explain(ctx, err)
		cancel(nil)
		return nil, err
	}
	resp.Body = &receiveBody{ReadCloser: resp.Body, t: t, ctx: ctx}
	return resp, nil
}

// transfer is the timer of one request.
type transfer struct {
	w      *watchdog
	cancel context.CancelCauseFunc

	mu        sync.Mutex
	timer     *time.Timer
	deadline  time.Time // zero: disarmed
	receiving bool      // the response's headers are in
	waited    string    // what the armed timer waits for
	limit     time.Duration
	setting   string
}

// arm cancels the request unless it is re-armed or disarmed within d (no
// limit if d ≤ 0).
func (t *transfer) arm(d time.Duration, waited, setting string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if d <= 0 {
		t.disarmLocked()
		return
	}
	t.deadline = time.Now().Add(d)
	t.waited, t.limit, t.setting = waited, d, setting
	if t.timer == nil {
		t.timer = time.AfterFunc(d, t.fire)
	} else {
		t.timer.Reset(d)
	}
}

func (t *transfer) disarm() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.disarmLocked()
}

func (t *transfer) disarmLocked() {
	t.deadline = time.Time{}
	if t.timer != nil {
		t.timer.Stop()
	}
}

// sent is called after each Read of the request body: the stall timeout
// applies until it ends, then the response timeout.
func (t *transfer) sent(err error) {
	t.mu.Lock()
	receiving := t.receiving
	t.mu.Unlock()
	switch {
	case receiving: // answered early; the transport may still be reading
	case err == io.EOF:
		t.arm(t.w.response, "response", "ResponseTimeout")
	default:
		t.arm(t.w.stall, "progress sending the request body", "StallTimeout")
	}
}

// received is called once the response's headers are in, or the request
// failed.
func (t *transfer) received() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.receiving = true
	t.disarmLocked()
}

// fire cancels the request if its deadline has passed.
func (t *transfer) fire() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.deadline.IsZero() {
		return
	}
	if left := time.Until(t.deadline); left > 0 { // re-armed meanwhile
		t.timer.Reset(left)
		return
	}
	t.cancel(&TimeoutError{Endpoint: t.w.endpoint, Waited: t.waited, Limit: t.limit, Setting: t.setting})
}

// explain returns the *TimeoutError that cancelled the request, if one
// did, in place of err, the error it caused.
func (t *transfer) explain(ctx context.Context, err error) error {
	var te *TimeoutError
	if errors.As(context.Cause(ctx), &te) {
		return te
	}
	return err
}

// sendBody is a request body whose reads keep its request's timer going.
type sendBody struct {
	io.ReadCloser
	t *transfer
}

func (b *sendBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.t.sent(err)
	return n, err
}

// receiveBody is a response body each Read of which must make progress
// within the stall timeout.
type receiveBody struct {
	io.ReadCloser
	t   *transfer
	ctx context.Context
}

func (b *receiveBody) Read(p []byte) (int, error) {
	b.t.arm(b.t.w.stall, "progress reading the response body", "StallTimeout")
	n, err := b.ReadCloser.Read(p)
	b.t.disarm()
	if err != nil && err != io.EOF {
		err = b.t.explain(b.ctx, err)
	}
	return n, err
}

func (b *receiveBody) Close() error {
	b.t.disarm()
	err := b.ReadCloser.Close()
	b.t.cancel(nil)
	return err
}
