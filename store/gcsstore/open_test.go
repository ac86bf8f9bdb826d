package gcsstore_test

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/integration/testserver"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/gcsstore"
)

func TestOpenBadURL(t *testing.T) {
	for raw, want := range map[string]string{
		"gs:///prefix":                    "missing bucket name",
		"gs://bucket:4443/prefix":         "holds a ':'",
		"gs://user:hunter2@bucket/prefix": "credentials in the URL are not supported",
		"gs://bucket/prefix?endpoint=x":   "take no query parameters",
		"s3://bucket/prefix":              `scheme is "s3"`,
	} {
		u, err := url.Parse(raw)
		require.NoError(t, err, raw)
		_, err = gcsstore.Open(t.Context(), u, nil)
		require.ErrorIs(t, err, core.ErrInvalid, raw)
		assert.Contains(t, err.Error(), want, raw)
		assert.NotContains(t, err.Error(), "hunter2", raw)
	}
}

// TestOpenEmulator opens gs:// URLs the way users do, through store.Open,
// with STORAGE_EMULATOR_HOST pointing at the emulator.
func TestOpenEmulator(t *testing.T) {
	srv := testserver.GCS(t)
	srv.SetEnv(t)
	assert.Contains(t, store.Schemes(), gcsstore.Scheme)
	bucket := srv.NewBucket(t)
	ctx := t.Context()

	st, err := store.Open(ctx, srv.URL(bucket, "ci/state/"))
	require.NoError(t, err)
	assert.Equal(t, "gs://"+bucket+"/ci/state/", st.Location())
	require.NoError(t, st.PutBytes(ctx, tag, []byte("v1"), store.PutOptions{}))
	require.NoError(t, st.Close())
	assert.Equal(t, []byte("v1"), readAll(t, srv.Client(t).Bucket(bucket).Object("ci/state/"+tag)),
		"the object is not under the URL's prefix")

	st, err = store.Open(ctx, srv.URL("statebucket-no-such-bucket", "p"))
	require.NoError(t, err)
	defer st.Close()
	_, err = st.Stat(ctx, tag)
	require.ErrorIs(t, err, core.ErrBucketNotFound)
	assert.Contains(t, err.Error(), `bucket "statebucket-no-such-bucket" does not exist at the emulator at `+srv.Endpoint)
}

// TestNoCredentials opens a gs:// URL without an emulator, in a child
// process whose HOME is empty. With no Application Default Credentials,
// Open fails at once, with an error that says where it looked and how to
// fix it. With a malformed key file, which the client reads only when it
// first needs a token, the first request fails, and the error does not
// show the key. Looking for credentials asks the metadata server of
// Google Cloud (169.254.169.254) whether it is there: the child runs in a
// network namespace of its own, so that nothing leaves the machine.
func TestNoCredentials(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err == nil {
		err = exec.Command(unshare, "--net", "true").Run()
	}
	if err != nil {
		t.Skipf("cannot run the child in a network namespace of its own (unshare --net: %v), "+
			"and without one it would ask the network for a metadata server", err)
	}
	keyFile := filepath.Join(t.TempDir(), "key.json")
	require.NoError(t, os.WriteFile(keyFile, []byte(`{"type":"service_account","client_email":"x@example.com","private_key":"`+fakeKey+`"}`), 0o600))
	for name, tc := range map[string]struct{ adc, want string }{
		"None":       {"", `gcsstore: no credentials for bucket "statebucket-creds": Application Default Credentials looked for`},
		"BadKeyFile": {keyFile, "private key"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a hang fails the test
			defer cancel()
			home := t.TempDir()
			cmd := exec.CommandContext(ctx, unshare, "--net", os.Args[0], "-test.run=^TestHelperNoCredentials$", "-test.v")
			cmd.Env = append(os.Environ(),
				"GCSSTORE_HELPER="+name, "HOME="+home, "CLOUDSDK_CONFIG="+home,
				"GOOGLE_APPLICATION_CREDENTIALS="+tc.adc,
				gcsstore.EnvEmulatorHost+"=", "GCE_METADATA_HOST=", "GCE_METADATA_IP=",
			)
			out, err := cmd.CombinedOutput()
			msg := string(out)
			require.NoError(t, err, msg)
			assert.Contains(t, msg, "--- PASS: TestHelperNoCredentials")
			assert.Contains(t, msg, tc.want)
			assert.NotContains(t, msg, fakeKey)
		})
	}
}

// fakeKey stands for the private key of a key file.
const fakeKey = "SECRET-KEY-MATERIAL-0123456789"

func TestHelperNoCredentials(t *testing.T) {
	helper := os.Getenv("GCSSTORE_HELPER")
	if helper == "" {
		t.Skip("run by TestNoCredentials")
	}
	st, err := store.Open(t.Context(), "gs://statebucket-creds/p")
	if helper == "None" {
		require.ErrorIs(t, err, core.ErrPermission)
		for _, want := range []string{"GOOGLE_APPLICATION_CREDENTIALS", "gcloud auth application-default login", "set STORAGE_EMULATOR_HOST to use an emulator"} {
			assert.Contains(t, err.Error(), want)
		}
	} else {
		require.NoError(t, err)
		defer st.Close()
		_, err = st.Stat(t.Context(), tag)
		require.Error(t, err)
	}
	t.Log(strings.ReplaceAll(err.Error(), "\n", " "))
}

func TestOptionsDefaults(t *testing.T) {
	srv := testserver.GCS(t)
	client := srv.Client(t)
	for _, tc := range []struct {
		opts *gcsstore.Options
		want int
	}{
		{nil, gcsstore.DefaultMaxConcurrency},
		{&gcsstore.Options{MaxConcurrency: 5}, 5},
	} {
		assert.Equal(t, tc.want, gcsstore.New(client, "b", "", tc.opts).MaxConcurrency())
	}
	// A chunk size that is not a multiple of 256 KiB is rounded up: an
	// object of 256 KiB + 1 byte then goes up in one request.
	st := newStore(t, srv, client, &gcsstore.Options{ChunkSize: 256<<10 + 1})
	data := randomBytes(9, 256<<10+1)
	require.NoError(t, st.PutBytes(t.Context(), tag, data, store.PutOptions{}))
	got, err := st.GetBytes(t.Context(), tag, 1<<20)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(data, got))
}
