package integration_test

import (
	"encoding/json"
	"net"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// silentListener accepts connections on a loopback port and never
// answers; it closes them when the test ends. It returns the endpoint.
func silentListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + l.Addr().String()
}

// TestTimeoutCLI: `statebucket ls` against a server that accepts
// connections and never answers used to hang forever; with ?timeout= it
// fails, once its retries are spent, with an error naming the endpoint
// and the timeout.
func TestTimeoutCLI(t *testing.T) {
	bin := buildCLI(t)
	endpoint := silentListener(t)
	repo := "s3://b/p?timeout=100ms&endpoint=" + url.QueryEscape(endpoint)
	env := []string{"AWS_ACCESS_KEY_ID=id", "AWS_SECRET_ACCESS_KEY=secret", "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true"}

	run := runCLI(t, bin, env, "--repo", repo, "ls")
	assert.Equal(t, 1, run.code, run.stderr)
	assert.Contains(t, run.stderr, endpoint+": no response within 100ms")
	assert.Contains(t, run.stderr, "?timeout=")

	run = runCLI(t, bin, env, "--repo", repo, "--json", "ls")
	assert.Equal(t, 1, run.code, run.stderr)
	var out struct {
		Error    string `json:"error"`
		ExitCode int    `json:"exit_code"`
	}
	require.NoError(t, json.Unmarshal([]byte(run.stderr), &out), run.stderr)
	assert.Equal(t, 1, out.ExitCode)
	assert.Contains(t, out.Error, endpoint+": no response within 100ms")
}
