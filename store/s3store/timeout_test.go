package s3store_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/integration/testserver"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/s3store"
)

// silentServer is a loopback listener that accepts connections and
// answers each with answer, which may read the request, write, and
// return; the connection then stays open, silent, until the test ends.
type silentServer struct {
	l        net.Listener
	accepted atomic.Int32
	mu       sync.Mutex
	requests []string // the Range header of each request read by readRequest
}

func newSilentServer(t *testing.T, answer func(s *silentServer, c net.Conn)) *silentServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &silentServer{l: l}
	var conns sync.WaitGroup
	done := make(chan struct{})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			conns.Go(func() {
				if answer != nil {
					answer(s, c)
				}
				<-done
				c.Close()
			})
		}
	}()
	t.Cleanup(func() {
		l.Close()
		close(done)
		conns.Wait()
	})
	return s
}

func (s *silentServer) endpoint() string { return "http://" + s.l.Addr().String() }

// readRequest reads a request's head from c and records its Range.
func (s *silentServer) readRequest(c net.Conn) bool {
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return false
	}
	s.mu.Lock()
	s.requests = append(s.requests, req.Header.Get("Range"))
	s.mu.Unlock()
	return true
}

func (s *silentServer) ranges() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// openAt returns a Store over a driver made by s3store.Open for a bucket
// at endpoint, with opts (credentials and a retryer of two quick attempts
// added), and one retry in the store layer.
func openAt(t *testing.T, endpoint string, opts s3store.Options) *store.Store {
	t.Helper()
	u, err := url.Parse("s3://bucket/repo?region=us-east-1&endpoint=" + url.QueryEscape(endpoint))
	require.NoError(t, err)
	opts.Credentials = credentials.NewStaticCredentialsProvider("id", "secret", "")
	opts.Retryer = testserver.Retryer(2, time.Millisecond)
	drv, err := s3store.Open(t.Context(), u, &opts)
	require.NoError(t, err)
	st := store.New(drv, store.Redact(u), &store.Options{Retries: 1, Backoff: -1})
	t.Cleanup(func() { st.Close() })
	return st
}

// requireTimeout checks that err is a transient *TimeoutError from
// endpoint, waiting for what, after limit, saying so.
func requireTimeout(t *testing.T, err error, endpoint, what string, limit time.Duration) {
	t.Helper()
	require.ErrorIs(t, err, core.ErrTransient)
	assert.True(t, store.IsTransient(err))
	var te *s3store.TimeoutError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, endpoint, te.Endpoint)
	assert.Equal(t, what, te.Waited)
	assert.Equal(t, limit, te.Limit)
	assert.Contains(t, err.Error(), endpoint+": no "+what+" within "+limit.String())
}

// TestTimeoutNoAnswer: a server that accepts connections and never
// answers fails every operation, with no deadline on the context, once
// the client's two attempts and the store layer's two are spent.
func TestTimeoutNoAnswer(t *testing.T) {
	srv := newSilentServer(t, nil)
	st := openAt(t, srv.endpoint(), s3store.Options{ResponseTimeout: 50 * time.Millisecond})
	for op, err := range everyOperation(t, st) {
		requireTimeout(t, err, srv.endpoint(), "response", 50*time.Millisecond)
		assert.Contains(t, err.Error(), "gave up after 2 attempts", op)
	}
	// put, stat, get, list: 2 × 2 attempts each; delete stops at its Stat.
	assert.Equal(t, int32(5*4), srv.accepted.Load(), "not every attempt was made")
}

// TestTimeoutUploadStalls: a server that takes a request but never reads
// its body stalls the upload, which fails after StallTimeout.
func TestTimeoutUploadStalls(t *testing.T) {
	srv := newSilentServer(t, nil)
	st := openAt(t, srv.endpoint(), s3store.Options{ResponseTimeout: time.Minute, StallTimeout: 50 * time.Millisecond})
	// More than the socket buffers of both ends hold.
	body := make([]byte, 64<<20)
	err := st.Put(t.Context(), tag, bytes.NewReader(body), int64(len(body)), store.PutOptions{})
	requireTimeout(t, err, srv.endpoint(), "progress sending the request body", 50*time.Millisecond)
}

// TestTimeoutDownloadStalls: a server that sends a response's headers and
// part of its body, then nothing, makes the read fail after StallTimeout
// with a transient error; the store layer resumes the read from the byte
// it reached, and gives up when the resumed read stalls too.
func TestTimeoutDownloadStalls(t *testing.T) {
	srv := newSilentServer(t, func(s *silentServer, c net.Conn) {
		for s.readRequest(c) {
			if len(s.ranges()) == 1 {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Type: application/octet-stream\r\n\r\n0123456789")
			} else {
				io.WriteString(c, "HTTP/1.1 206 Partial Content\r\nContent-Length: 990\r\nContent-Range: bytes 10-999/1000\r\n\r\n")
			}
		}
	})
	st := openAt(t, srv.endpoint(), s3store.Options{ResponseTimeout: time.Minute, StallTimeout: 50 * time.Millisecond})
	rc, err := st.Get(t.Context(), tag)
	require.NoError(t, err)
	defer rc.Close()
	data, err := io.ReadAll(rc)
	assert.Equal(t, "0123456789", string(data))
	requireTimeout(t, err, srv.endpoint(), "progress reading the response body", 50*time.Millisecond)
	assert.Contains(t, err.Error(), "gave up at byte 10 after 2 attempts")
	ranges := srv.ranges()
	require.Len(t, ranges, 2)
	assert.Empty(t, ranges[0])
	assert.True(t, strings.HasPrefix(ranges[1], "bytes=10-"), "the read resumed at %q", ranges[1])
}

// stallOnce is a transport whose first GET response body stalls after
// its first kilobyte, until the request is cancelled.
type stallOnce struct {
	base    http.RoundTripper
	stalled atomic.Bool
	ranges  []string
}

func (s *stallOnce) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.base.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || req.URL.Query().Has("list-type") {
		return resp, err
	}
	s.ranges = append(s.ranges, req.Header.Get("Range"))
	if s.stalled.CompareAndSwap(false, true) {
		resp.Body = &stallingBody{rc: resp.Body, left: 1024, done: req.Context().Done()}
	}
	return resp, nil
}

type stallingBody struct {
	rc   io.ReadCloser
	left int
	done <-chan struct{}
}

func (b *stallingBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		<-b.done
		return 0, io.ErrUnexpectedEOF
	}
	n, err := b.rc.Read(p[:min(len(p), b.left)])
	b.left -= n
	return n, err
}

func (b *stallingBody) Close() error { return b.rc.Close() }

// TestTimeoutStallResumes: against MinIO, a download whose body stalls
// (in a transport given as Options.Transport: the timeouts apply to it
// too) is resumed by the store layer and reads back byte-exact.
func TestTimeoutStallResumes(t *testing.T) {
	srv := testserver.S3(t)
	rt := &stallOnce{base: s3store.NewTransport(4)}
	st := open(t, srv, s3store.Options{Transport: rt, StallTimeout: 50 * time.Millisecond}, &store.Options{Backoff: -1})
	data := randomBytes(7, 1<<20)
	require.NoError(t, st.PutBytes(t.Context(), tag, data, store.PutOptions{}))
	got, err := st.GetBytes(t.Context(), tag, 2<<20)
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got), "content read back differs")
	require.Len(t, rt.ranges, 2)
	assert.Empty(t, rt.ranges[0])
	assert.True(t, strings.HasPrefix(rt.ranges[1], "bytes=1024-"), "the read resumed at %q", rt.ranges[1])
}
