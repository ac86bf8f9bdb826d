package gcsstore_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash/crc32"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/integration/faults"
	"github.com/statebucket/statebucket/integration/testserver"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
	"github.com/statebucket/statebucket/store/gcsstore"
	"github.com/statebucket/statebucket/store/storetest"
)

// inParts makes every unconditional Put of more than 256 KiB a composite
// upload, in parts of 256 KiB (or 1,024 equal parts), two at a time.
// Other Puts go up in resumable uploads of 256 KiB chunks.
var inParts = &gcsstore.Options{SingleRequestMax: -1, ChunkSize: 256 << 10, CompositeThreshold: 1, ComponentSize: 256 << 10, ComponentConcurrency: 2}

// TestConformanceComposite runs the suite with every unconditional Put of
// more than 256 KiB a composite upload; conditional ones go up in one
// resumable upload, as the driver sends them.
func TestConformanceComposite(t *testing.T) {
	srv := testserver.GCS(t)
	client := srv.Client(t)
	storetest.RunDriverTests(t, func(t *testing.T) store.Driver {
		return gcsstore.New(client, srv.NewBucket(t), "some/prefix", inParts)
	})
}

// requests counts the requests that go through it: uploads by
// uploadType, composes and deletes by name.
type requests struct {
	base http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
}

func newRequests(base http.RoundTripper) *requests {
	return &requests{base: base, n: map[string]int{}}
}

func (c *requests) RoundTrip(req *http.Request) (*http.Response, error) {
	kind := req.URL.Query().Get("uploadType")
	switch {
	case strings.HasSuffix(req.URL.Path, "/compose"):
		kind = "compose"
	case req.Method == http.MethodDelete:
		kind = "delete"
	}
	c.mu.Lock()
	c.n[kind]++
	c.mu.Unlock()
	return c.base.RoundTrip(req)
}

func (c *requests) count(kind string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[kind]
}

// TestCompositeUpload: a large object from a body on this machine goes up
// in parts, one request each, joined by one compose, with the CRC32C of
// the whole; the parts are gone once the Put returns. A body on a server,
// which the parts would download again, and create-only or conditional
// Puts, whose precondition the compose would carry alone, go up in a
// resumable upload.
func TestCompositeUpload(t *testing.T) {
	srv := testserver.GCS(t)
	data := randomBytes(11, 3<<20+5)
	sum := sha256.Sum256(data)
	fs, err := filestore.New(t.TempDir(), nil)
	require.NoError(t, err)
	from := store.New(fs, "from", nil)
	require.NoError(t, from.PutBytes(t.Context(), "blobs/local", data, store.PutOptions{}))
	remote := store.New(notLocal{fs}, "from", nil)
	// putFrom puts the blob as a body that src streams.
	putFrom := func(src *store.Store) func(st *store.Store) error {
		return func(st *store.Store) error {
			body, err := src.ReaderAt(t.Context(), "blobs/local", int64(len(data)))
			require.NoError(t, err)
			defer body.Close()
			return st.Put(t.Context(), tag, body, int64(len(data)), store.PutOptions{SHA256: sum[:]})
		}
	}

	for _, tc := range []struct {
		name      string
		put       func(st *store.Store) error
		composite bool
	}{
		{"Bytes", func(st *store.Store) error {
			return st.PutBytes(t.Context(), tag, data, store.PutOptions{SHA256: sum[:]})
		}, true},
		{"LocalStore", putFrom(from), true},
		{"RemoteStore", putFrom(remote), false},
		{"CreateOnly", func(st *store.Store) error {
			return st.PutBytes(t.Context(), tag, data, store.PutOptions{SHA256: sum[:], CreateOnly: true})
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := newRequests(newTransport())
			client := srv.Client(t, option.WithHTTPClient(&http.Client{Transport: rt}))
			bucket := srv.NewBucket(t)
			opts := &gcsstore.Options{SingleRequestMax: -1, ChunkSize: 256 << 10, CompositeThreshold: 1 << 20, ComponentSize: 1 << 20}
			st := store.New(gcsstore.New(client, bucket, "repo", opts), "gs://"+bucket+"/repo", nil)
			require.NoError(t, tc.put(st))
			if tc.composite {
				assert.Equal(t, 4, rt.count("multipart"), "one request per part")
				assert.Equal(t, 1, rt.count("compose"))
				assert.Equal(t, 4, rt.count("delete"), "the parts deleted")
				assert.Zero(t, rt.count("resumable"))
			} else {
				assert.Zero(t, rt.count("compose"))
				assert.Positive(t, rt.count("resumable"))
			}
			assertOnlyObject(t, srv, client, bucket, st, data)
		})
	}
}

// failFinal answers 400 to the compose requests that make an object out
// of tmp/, and sends the others on: the groups are made, the object not.
type failFinal struct{ base http.RoundTripper }

func (f failFinal) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/compose") && !strings.Contains(req.URL.Path, "tmp/compose-") {
		return answerStatus(http.StatusBadRequest).RoundTrip(req)
	}
	return f.base.RoundTrip(req)
}

// TestCompositeRounds: an upload of more than 32 parts composes them 32
// at a time into groups, then the groups into the object, and deletes
// parts and groups, whether the object's compose succeeds or fails.
func TestCompositeRounds(t *testing.T) {
	srv := testserver.GCS(t)
	data := randomBytes(15, 3<<20+5) // 49 parts of 64 KiB: groups of 32 and 17
	sum := sha256.Sum256(data)
	opts := &gcsstore.Options{SingleRequestMax: -1, CompositeThreshold: 1, ComponentSize: 64 << 10, ComponentConcurrency: 3}

	rt := newRequests(newTransport())
	client := srv.Client(t, option.WithHTTPClient(&http.Client{Transport: rt}))
	bucket := srv.NewBucket(t)
	st := store.New(gcsstore.New(client, bucket, "repo", opts), "gs://"+bucket+"/repo", nil)
	require.NoError(t, st.PutBytes(t.Context(), tag, data, store.PutOptions{SHA256: sum[:]}))
	assert.Equal(t, 49, rt.count("multipart"), "one request per part")
	assert.Equal(t, 3, rt.count("compose"), "two groups, then the object")
	assert.Equal(t, 51, rt.count("delete"), "the parts and the groups deleted")
	assertOnlyObject(t, srv, client, bucket, st, data)

	bucket = srv.NewBucket(t)
	client = srv.Client(t, option.WithHTTPClient(&http.Client{Transport: failFinal{newTransport()}}))
	st = store.New(gcsstore.New(client, bucket, "repo", opts), "gs://"+bucket+"/repo", nil)
	err := st.PutBytes(t.Context(), tag, data, store.PutOptions{SHA256: sum[:]})
	require.Error(t, err)
	assert.Contains(t, err.Error(), tag, "the error names the object")
	assert.Empty(t, srv.ObjectNames(t, bucket, ""), "parts, groups or an object left")
}

// assertOnlyObject checks that the object tag under "repo" holds data,
// with its CRC32C, and that nothing else is left in bucket.
func assertOnlyObject(t *testing.T, srv *testserver.GCSServer, client *storage.Client, bucket string, st *store.Store, data []byte) {
	t.Helper()
	got, err := st.GetBytes(t.Context(), tag, int64(len(data)))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(data, got), "content read back differs")
	attrs, err := client.Bucket(bucket).Object("repo/" + tag).Attrs(t.Context())
	require.NoError(t, err)
	assert.Equal(t, crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)), attrs.CRC32C)
	assert.Equal(t, []string{"repo/" + tag}, srv.ObjectNames(t, bucket, ""), "only the object is left")
}

// TestCompositeWrongSHA256: a body whose SHA-256 is not the one given is
// refused before any part is sent.
func TestCompositeWrongSHA256(t *testing.T) {
	srv := testserver.GCS(t)
	rt := newRequests(newTransport())
	client := srv.Client(t, option.WithHTTPClient(&http.Client{Transport: rt}))
	bucket := srv.NewBucket(t)
	st := store.New(gcsstore.New(client, bucket, "repo", inParts), "gs://"+bucket+"/repo", nil)
	data := randomBytes(12, 1<<20)
	wrong := sha256.Sum256([]byte("other"))
	err := st.PutBytes(t.Context(), tag, data, store.PutOptions{SHA256: wrong[:]})
	require.ErrorIs(t, err, core.ErrChecksumMismatch)
	assert.Zero(t, rt.count("multipart")+rt.count("resumable")+rt.count("compose"), "something was sent")
	assert.Empty(t, srv.ObjectNames(t, bucket, ""))
}

// failCompose answers 400 to compose requests, which no retry mends, and
// sends the others on.
type failCompose struct{ base http.RoundTripper }

func (f failCompose) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/compose") {
		return answerStatus(http.StatusBadRequest).RoundTrip(req)
	}
	return f.base.RoundTrip(req)
}

// TestCompositeFailureLeavesNothing: when the compose fails, the object
// is not created, an object of that name is left as it was, and the parts
// are deleted.
func TestCompositeFailureLeavesNothing(t *testing.T) {
	srv := testserver.GCS(t)
	bucket := srv.NewBucket(t)
	good := store.New(gcsstore.New(srv.Client(t), bucket, "repo", nil), "gs://"+bucket+"/repo", nil)
	client := srv.Client(t, option.WithHTTPClient(&http.Client{Transport: failCompose{newTransport()}}))
	st := store.New(gcsstore.New(client, bucket, "repo", inParts), "gs://"+bucket+"/repo", nil)

	err := st.PutBytes(t.Context(), tag, randomBytes(13, 1<<20), store.PutOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), tag, "the error names the object")
	assert.Empty(t, srv.ObjectNames(t, bucket, ""), "parts or an object left")

	old := []byte("old")
	require.NoError(t, good.PutBytes(t.Context(), tag, old, store.PutOptions{}))
	require.Error(t, st.PutBytes(t.Context(), tag, randomBytes(14, 1<<20), store.PutOptions{}))
	got, err := good.GetBytes(t.Context(), tag, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, old, got, "a failed replacement changed the object")
	assert.Equal(t, []string{"repo/" + tag}, srv.ObjectNames(t, bucket, ""))
}

// TestCompositeFaults round-trips objects in parts through a transport
// that fails one upload request in five: the driver sends a failed part
// again, the engine a failed compose.
func TestCompositeFaults(t *testing.T) {
	srv := testserver.GCS(t)
	counted := newRequests(newTransport())
	writes := &faults.RoundTripper{Base: counted, Rate: 0.2, Seed: 2028,
		Kinds: []faults.Kind{faults.SlowDown, faults.ResetBeforeSend}}
	bucket := srv.NewBucket(t)
	client := faultyClient(t, srv, writes)
	opts := &gcsstore.Options{SingleRequestMax: -1, CompositeThreshold: 1, ComponentSize: 256 << 10, MaxAttempts: 20}
	st := store.New(gcsstore.New(client, bucket, "repo", opts), "gs://"+bucket+"/repo", nil)
	ctx := t.Context()
	objects := map[string][]byte{}
	for i, size := range []int{300 << 10, 1 << 20, 3<<20 + 5, 9 << 20} { // the last in 36 parts: two groups
		name := fmt.Sprintf("tags/o%d.json", i)
		objects[name] = randomBytes(uint64(20+i), size)
		sum := sha256.Sum256(objects[name])
		for range 2 { // the second replaces the first
			require.NoError(t, st.PutBytes(ctx, name, objects[name], store.PutOptions{SHA256: sum[:]}), name)
		}
	}
	for _, k := range writes.Kinds {
		assert.Positive(t, writes.Count(k), "no %v fault was injected into uploads", k)
	}
	assert.GreaterOrEqual(t, counted.count("compose"), 12, "every Put composed, the last one in two rounds")
	for name, data := range objects {
		got, err := st.GetBytes(ctx, name, 16<<20)
		require.NoError(t, err, name)
		require.True(t, bytes.Equal(data, got), "%s: content read back differs", name)
	}
	assert.Len(t, srv.ObjectNames(t, bucket, ""), len(objects), "parts left")
	t.Logf("injected: %s", writes)
}

// TestCompositeBucketCheck: a bucket that keeps deleted parts, or charges
// for them (as its settings say: here a transport answers for them), or
// whose settings the credentials cannot read, gets no composite uploads;
// its settings are asked once.
func TestCompositeBucketCheck(t *testing.T) {
	srv := testserver.GCS(t)
	data := randomBytes(15, 1<<20)
	for _, tc := range []struct {
		name      string
		settings  string // the answer's JSON fields, or "" for 403
		composite bool
	}{
		{"Standard", `"storageClass":"STANDARD"`, true},
		{"Nearline", `"storageClass":"NEARLINE"`, false},
		{"Retention", `"storageClass":"STANDARD","retentionPolicy":{"retentionPeriod":"3600","effectiveTime":"2026-01-01T00:00:00Z"}`, false},
		{"EventBasedHold", `"storageClass":"STANDARD","defaultEventBasedHold":true`, false},
		{"Versioning", `"storageClass":"STANDARD","versioning":{"enabled":true}`, false},
		{"Denied", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bucket := srv.NewBucket(t)
			rt := &bucketSettings{base: newRequests(newTransport()), bucket: bucket, settings: tc.settings}
			st := store.New(gcsstore.New(srv.Client(t, option.WithHTTPClient(&http.Client{Transport: rt})), bucket, "repo", inParts), "gs://"+bucket+"/repo", nil)
			for range 2 {
				require.NoError(t, st.PutBytes(t.Context(), tag, data, store.PutOptions{}))
			}
			if tc.composite {
				assert.Equal(t, 2, rt.base.count("compose"))
			} else {
				assert.Zero(t, rt.base.count("compose"))
				assert.Positive(t, rt.base.count("resumable"))
			}
			assert.Equal(t, int32(1), rt.asked.Load(), "the bucket's settings asked other than once")
			got, err := st.GetBytes(t.Context(), tag, 2<<20)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(data, got))
		})
	}
}

// bucketSettings answers requests for a bucket's settings with settings,
// or 403 if they are empty, and sends the others on.
type bucketSettings struct {
	base     *requests
	bucket   string
	settings string
	asked    atomic.Int32
}

func (b *bucketSettings) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || !strings.HasSuffix(req.URL.Path, "/b/"+b.bucket) {
		return b.base.RoundTrip(req)
	}
	b.asked.Add(1)
	if b.settings == "" {
		return answerStatus(http.StatusForbidden).RoundTrip(req)
	}
	return jsonAnswer(req, http.StatusOK, fmt.Sprintf(`{"kind":"storage#bucket","name":%q,%s}`, b.bucket, b.settings)), nil
}

// TestCleanStale deletes the parts older than it is told, and nothing
// else.
func TestCleanStale(t *testing.T) {
	srv := testserver.GCS(t)
	client := srv.Client(t)
	bucket := srv.NewBucket(t)
	st := store.New(gcsstore.New(client, bucket, "repo", nil), "gs://"+bucket+"/repo", nil)
	for _, name := range []string{"repo/tmp/compose-0123456789abcdef-0", "repo/tags/t.json", "other/tmp/compose-0123456789abcdef-0"} {
		w := client.Bucket(bucket).Object(name).NewWriter(t.Context())
		_, err := w.Write([]byte("part"))
		require.NoError(t, err)
		require.NoError(t, w.Close())
	}
	n, err := st.CleanStale(t.Context(), time.Hour)
	require.NoError(t, err)
	assert.Zero(t, n, "a part younger than an hour removed")
	n, err = st.CleanStale(t.Context(), 0)
	require.NoError(t, err)
	assert.Zero(t, n, "a part younger than the default age removed")
	n, err = st.CleanStale(t.Context(), time.Nanosecond)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, []string{"other/tmp/compose-0123456789abcdef-0", "repo/tags/t.json"}, srv.ObjectNames(t, bucket, ""))
}
