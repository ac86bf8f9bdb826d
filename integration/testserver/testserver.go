// Package testserver starts the storage servers that statebucket's
// integration tests run against, once per test binary, on free loopback
// ports with temporary data directories and generated credentials.
//
// Tests call [S3] to get a MinIO server. The binary is looked up at
// <module root>/bin/minio (where `make tools` builds the pinned version),
// then on PATH. Environment variables point the tests at a server that is
// already running instead, for example one started by docker-compose:
//
//	STATEBUCKET_S3_ENDPOINT    e.g. http://127.0.0.1:9000
//	STATEBUCKET_S3_ACCESS_KEY
//	STATEBUCKET_S3_SECRET_KEY
//	STATEBUCKET_S3_REGION      default us-east-1
//
// Tests call [GCS] to get a GCS emulator: fake-gcs-server, found the same
// way, or the running one STATEBUCKET_GCS_ENDPOINT names (such as
// http://127.0.0.1:4443).
//
// When neither is available the test is skipped, or fails when the
// environment variable CI is true, with a message saying how to get a
// server. A package whose tests use a server must stop it when they are
// done, by calling [Main] from its TestMain:
//
//	func TestMain(m *testing.M) { testserver.Main(m) }
package testserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Main runs the tests of m, stops every server started for them, and
// exits with the tests' status. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	StopAll()
	os.Exit(code)
}

var (
	runningMu sync.Mutex
	running   []*process
)

func register(p *process) {
	runningMu.Lock()
	defer runningMu.Unlock()
	running = append(running, p)
}

func StopAll() {
	runningMu.Lock()
	defer runningMu.Unlock()
	for _, p := range running {
		if err := p.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "testserver: %v\n", err)
		}
	}
	running = nil
}

// lazy is a server started on first use, once per test binary.
type lazy[T any] struct {
	once sync.Once
	srv  T
	err  error
}

// get returns the server, starting it with start on first use; if there
// is none, it skips the test, or fails it (see fail).
func (l *lazy[T]) get(t testing.TB, start func() (T, error)) T {
	t.Helper()
	l.once.Do(func() { l.srv, l.err = start() })
	if l.err != nil {
		fail(t, l.err)
	}
	return l.srv
}

// newBucket creates a bucket with a unique name on the server at endpoint,
// with create, and returns the name. When the test ends, remove empties
// and deletes it.
func newBucket(t testing.TB, endpoint string, create func(ctx context.Context, name string) error, remove func(name string) error) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := "statebucket-test-" + randomHex(8)
	if err := create(ctx, name); err != nil {
		t.Fatalf("testserver: create bucket %q at %s: %v", name, endpoint, err)
	}
	t.Cleanup(func() {
		if err := remove(name); err != nil {
			t.Logf("testserver: remove bucket %q at %s: %v", name, endpoint, err)
		}
	})
	return name
}

// unavailableError is the failure to find a server, as opposed to the
// failure of one that was found.
type unavailableError struct{ msg string }

func (e *unavailableError) Error() string { return e.msg }

// fail reports err: a missing server skips the test, unless CI is true;
// anything else fails it.
func fail(t testing.TB, err error) {
	t.Helper()
	var unavailable *unavailableError
	if errors.As(err, &unavailable) && !inCI() {
		t.Skip(err.Error())
	}
	t.Fatal(err.Error())
}

func inCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// findBinary returns the path of the executable name in <module root>/bin
// or on PATH, or a description of where it looked.
func findBinary(name string) (string, error) {
	var looked []string
	if root, err := moduleRoot(); err == nil {
		p := filepath.Join(root, "bin", name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
		looked = append(looked, p)
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	looked = append(looked, "PATH")
	return "", fmt.Errorf("%s not found (looked in %s)", name, joinOr(looked))
}

// moduleRoot returns the nearest directory at or above the working
// directory that holds a go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory")
		}
		dir = parent
	}
}

func joinOr(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	out := s[0]
	for _, x := range s[1 : len(s)-1] {
		out += ", " + x
	}
	return out + " and " + s[len(s)-1]
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}
