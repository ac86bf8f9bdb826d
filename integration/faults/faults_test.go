package faults_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/integration/faults"
)

// server counts the requests that reach it and answers each with body.
func server(t *testing.T, body string) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// outcome is what one request through a RoundTripper came to.
type outcome struct {
	kind    string // "ok", or the kind of fault seen
	reached bool   // whether the server saw the request
}

func do(t *testing.T, client *http.Client, url string, hits *atomic.Int64) outcome {
	t.Helper()
	before := hits.Load()
	resp, err := client.Get(url)
	reached := func() bool { return hits.Load() > before }
	if err != nil {
		var fe *faults.Error
		require.ErrorAs(t, err, &fe)
		require.ErrorIs(t, err, faults.ErrInjected)
		require.ErrorIs(t, err, syscall.ECONNRESET)
		assert.Contains(t, err.Error(), "connection reset")
		return outcome{fe.Kind.String(), reached()}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode == http.StatusServiceUnavailable:
		require.NoError(t, err)
		assert.Contains(t, string(data), "<Code>SlowDown</Code>")
		assert.Contains(t, string(data), faults.SlowDownMessage)
		return outcome{faults.SlowDown.String(), reached()}
	case err != nil:
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		require.ErrorIs(t, err, faults.ErrInjected)
		return outcome{faults.TruncatedBody.String(), reached()}
	}
	return outcome{"ok", reached()}
}

func TestKinds(t *testing.T) {
	srv, hits := server(t, strings.Repeat("x", 1000))
	rt := &faults.RoundTripper{Base: srv.Client().Transport, Rate: 0.5, Seed: 1}
	client := &http.Client{Transport: rt}
	seen := map[string]int{}
	for range 400 {
		o := do(t, client, srv.URL, hits)
		seen[o.kind]++
		switch o.kind {
		case "slow-down", "reset-before-send":
			assert.False(t, o.reached, "%s sent the request on", o.kind)
		default:
			assert.True(t, o.reached, "%s did not send the request on", o.kind)
		}
	}
	for _, k := range faults.AllKinds {
		assert.Equal(t, int64(seen[k.String()]), rt.Count(k), k.String())
		assert.Positive(t, rt.Count(k), k.String())
	}
	assert.InDelta(t, 200, rt.Total(), 40, "rate 0.5 of 400 requests")
	assert.Equal(t, 400-int(rt.Total()), seen["ok"])
}

func TestRateOneFailsEveryRequest(t *testing.T) {
	srv, hits := server(t, "")
	rt := &faults.RoundTripper{Base: srv.Client().Transport, Rate: 1, Seed: 2}
	client := &http.Client{Transport: rt}
	for range 100 {
		o := do(t, client, srv.URL, hits)
		assert.NotEqual(t, "ok", o.kind)
		assert.NotEqual(t, faults.TruncatedBody.String(), o.kind, "an empty body cannot be cut")
	}
	assert.Equal(t, int64(100), rt.Total())
	assert.Zero(t, rt.Count(faults.TruncatedBody))
}

func TestRateZeroPassesEverything(t *testing.T) {
	srv, hits := server(t, "hello")
	client := &http.Client{Transport: &faults.RoundTripper{Base: srv.Client().Transport}}
	for range 20 {
		assert.Equal(t, outcome{"ok", true}, do(t, client, srv.URL, hits))
	}
}

func TestDeterministic(t *testing.T) {
	srv, hits := server(t, strings.Repeat("y", 100))
	run := func(seed uint64) []outcome {
		client := &http.Client{Transport: &faults.RoundTripper{Base: srv.Client().Transport, Rate: 0.3, Seed: seed}}
		var outcomes []outcome
		for range 100 {
			outcomes = append(outcomes, do(t, client, srv.URL, hits))
		}
		return outcomes
	}
	assert.Equal(t, run(7), run(7))
	assert.NotEqual(t, run(7), run(8))
}

func TestKindsRestricted(t *testing.T) {
	srv, hits := server(t, "body")
	rt := &faults.RoundTripper{Base: srv.Client().Transport, Rate: 1, Kinds: []faults.Kind{faults.ResetAfterSend}}
	client := &http.Client{Transport: rt}
	for range 10 {
		assert.Equal(t, outcome{"reset-after-send", true}, do(t, client, srv.URL, hits))
	}
	assert.Equal(t, int64(10), rt.Count(faults.ResetAfterSend))
}

func TestConcurrentUse(t *testing.T) {
	srv, _ := server(t, "body")
	rt := &faults.RoundTripper{Base: srv.Client().Transport, Rate: 0.5, Seed: 4}
	client := &http.Client{Transport: rt}
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 8 {
		wg.Go(func() {
			for range 25 {
				resp, err := client.Get(srv.URL)
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = errors.New(resp.Status)
					}
				}
				if err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, failed.Load(), rt.Total())
}

func TestKindString(t *testing.T) {
	assert.Equal(t, "truncated-body", faults.TruncatedBody.String())
	assert.Equal(t, "Kind(9)", faults.Kind(9).String())
}
