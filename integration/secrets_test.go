package integration_test

import (
	"encoding/json"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/integration/testserver"
)

// buildCLI builds the statebucket command into a temporary directory and
// returns its path.
func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "statebucket")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/statebucket").CombinedOutput()
	require.NoError(t, err, string(out))
	return bin
}

// cliRun is the outcome of one run of the command.
type cliRun struct {
	stdout, stderr string
	code           int
}

// runCLI runs bin with args and env added to this process's environment
// (the last value of a variable wins).
func runCLI(t *testing.T, bin string, env []string, args ...string) cliRun {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return cliRun{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// closedEndpoint returns the URL of a loopback port nothing listens on.
func closedEndpoint(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, l.Close())
	return "http://" + l.Addr().String()
}

// TestSecretsNeverPrinted runs failing commands with canary credentials
// in the environment (secret key, session token, endpoint URL), in
// repository URLs (user information, presigned-style query parameters, a
// fragment) and in endpoints, against no server, a bad endpoint and MinIO
// (wrong secret, unknown bucket, with MinIO's real secret key as one more
// canary), in text and --json: every command fails, saying why, and no
// canary appears in anything it prints (the CLI logs nothing else).
func TestSecretsNeverPrinted(t *testing.T) {
	srv := testserver.S3(t)
	bin := buildCLI(t)
	bucket := srv.NewBucket(t)
	noServer := closedEndpoint(t)
	const (
		envSecret   = "canary-env-secret-7e1d"
		envToken    = "canary-env-session-token-53ab"
		urlPassword = "canary-url-password-0c9f"
		signature   = "canary-signature-9a41"
		credential  = "canary-credential-2b77"
		secToken    = "canary-security-token-64d0"
		fragment    = "canary-fragment-token-e5c2"
		envEndpoint = "canary-endpoint-password-1f08"
	)
	canaries := []string{envSecret, envToken, urlPassword, signature, credential, secToken, fragment, envEndpoint, srv.SecretKey}
	presigned := url.Values{"X-Amz-Signature": {signature}, "X-Amz-Credential": {credential}, "X-Amz-Security-Token": {secToken}}.Encode()
	withCanaries := func(env ...string) []string {
		return append(append(srv.Env(), "AWS_SECRET_ACCESS_KEY="+envSecret, "AWS_SESSION_TOKEN="+envToken), env...)
	}
	realCredentials := append(srv.Env(), "AWS_SESSION_TOKEN=")

	// Exit codes: 1 other failure, 2 bad usage, 3 not found, 5 denied.
	scenarios := []struct {
		name string
		repo string
		env  []string
		code int
	}{
		{"endpoint with user information", "s3://b/p?endpoint=" + url.QueryEscape("http://canary-user:"+urlPassword+"@127.0.0.1:9/"), withCanaries(), 2},
		{"endpoint with a presigned query", "s3://b/p?endpoint=" + url.QueryEscape("http://127.0.0.1:9/?"+presigned), withCanaries(), 2},
		{"endpoint from the environment", "s3://b/p", withCanaries("AWS_ENDPOINT_URL=http://canary-user:" + envEndpoint + "@127.0.0.1:9/?" + presigned), 1},
		{"no server", "s3://b/p?endpoint=" + url.QueryEscape(noServer), withCanaries(), 1},
		{"repository URL with user information", "s3://canary-user:" + urlPassword + "@" + bucket + "/p?endpoint=" + url.QueryEscape(srv.Endpoint), withCanaries(), 2},
		{"repository URL with a presigned query", "s3://" + bucket + "/p?" + presigned, withCanaries(), 2},
		{"repository URL with a fragment", srv.URL(bucket, "p") + "#access_token=" + fragment, withCanaries(), 2},
		{"repository URL without //", "s3:canary-user:" + urlPassword + "@" + bucket, withCanaries(), 2},
		{"password typed without its user", "s3://AKIA:" + urlPassword + "/p", withCanaries(), 2},
		{"file URL with user information", "file://canary-user:" + urlPassword + "@localhost/tmp/x", withCanaries(), 2},
		{"wrong secret against MinIO", srv.URL(bucket, "p"), withCanaries(), 5},
		{"unknown bucket", srv.URL("statebucket-no-such-bucket", "p"), realCredentials, 3},
	}
	commands := [][]string{{"ls"}, {"show", "latest"}, {"verify", "latest"}, {"tag", "t", "latest"}, {"demo", "--objects", "3"}}
	checked, runs := 0, 0
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			for _, command := range commands {
				for _, jsonOut := range []bool{false, true} {
					args := []string{"--repo", sc.repo}
					if jsonOut {
						args = append(args, "--json")
					}
					run := runCLI(t, bin, sc.env, append(args, command...)...)
					runs++
					assert.Equal(t, sc.code, run.code, "%v: %s", command, run.stderr)
					if jsonOut {
						var out struct{ Error string }
						require.NoError(t, json.Unmarshal([]byte(run.stderr), &out), run.stderr)
						assert.NotEmpty(t, out.Error)
					} else {
						assert.Contains(t, run.stderr, "statebucket: ")
					}
					for _, c := range canaries {
						assert.NotContains(t, run.stdout+run.stderr, c, "%v --json=%v", command, jsonOut)
						checked++
					}
				}
			}
		})
	}
	t.Logf("%d canaries checked over %d failing runs of %d scenarios", checked, runs, len(scenarios))
}
