package gcsstore_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/integration/faults"
	"github.com/statebucket/statebucket/integration/testserver"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
	"github.com/statebucket/statebucket/store/gcsstore"
	"github.com/statebucket/statebucket/store/storetest"
)

func TestMain(m *testing.M) { testserver.Main(m) }

func TestConformance(t *testing.T) {
	srv := testserver.GCS(t)
	client := srv.Client(t)
	storetest.RunDriverTests(t, func(t *testing.T) store.Driver {
		return gcsstore.New(client, srv.NewBucket(t), "some/prefix", nil)
	})
}

// TestConformanceResumable runs the suite with every object of 256 KiB or
// more uploaded in a resumable upload of 256 KiB chunks, one at a time,
// and none streamed in one request (TestConformance streams them all).
func TestConformanceResumable(t *testing.T) {
	srv := testserver.GCS(t)
	client := srv.Client(t)
	opts := &gcsstore.Options{ChunkSize: 1, MaxBufferBytes: 1, SingleRequestMax: -1}
	storetest.RunDriverTests(t, func(t *testing.T) store.Driver {
		return gcsstore.New(client, srv.NewBucket(t), "", opts)
	})
}

// gatedReaderAt serves data once gate is closed, after saying on entered
// that it was first asked for some.
type gatedReaderAt struct {
	data          []byte
	once          sync.Once
	entered, gate chan struct{}
}

func (g *gatedReaderAt) ReadAt(p []byte, off int64) (int, error) {
	g.once.Do(func() { close(g.entered) })
	<-g.gate
	return bytes.NewReader(g.data).ReadAt(p, off)
}

// TestSmallUploadsDoNotWait holds the only upload buffer the driver allows
// with a large Put, and stores a small object meanwhile.
func TestSmallUploadsDoNotWait(t *testing.T) {
	srv := testserver.GCS(t)
	st := newStore(t, srv, srv.Client(t), &gcsstore.Options{ChunkSize: 256 << 10, MaxBufferBytes: 1, SingleRequestMax: -1})
	ctx := t.Context()
	large := &gatedReaderAt{data: randomBytes(1, 1<<20), entered: make(chan struct{}), gate: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		done <- st.Put(ctx, "tags/"+"large"+".json", large, int64(len(large.data)), store.PutOptions{})
	}()
	<-large.entered // the large Put holds its buffer, reading its body
	require.NoError(t, st.PutBytes(ctx, tag, []byte("small"), store.PutOptions{}))
	close(large.gate)
	require.NoError(t, <-done)
	got, err := st.GetBytes(ctx, "tags/"+"large"+".json", 1<<20)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(large.data, got))
}

// tag is the name of the object most tests below use.
var tag = "tags/" + "t" + ".json"

// smallChunks makes objects of 256 KiB and more go up in resumable uploads.
var smallChunks = &gcsstore.Options{ChunkSize: 256 << 10, SingleRequestMax: -1}

// uploadModes are the three ways the client sends an object: streamed
// (ChunkSize 0), in one request, and in a resumable upload.
var uploadModes = []struct {
	name      string
	chunkSize int
	size      int
}{
	{"Streamed", 0, 10 << 10},
	{"OneRequest", 1 << 20, 100 << 10},
	{"Resumable", 256 << 10, 600 << 10},
}

// upload writes data to obj through the client, in chunks of chunkSize,
// and returns the attributes of the object stored.
func upload(t *testing.T, obj *storage.ObjectHandle, chunkSize int, data []byte) (*storage.ObjectAttrs, error) {
	w := obj.NewWriter(t.Context())
	w.ChunkSize = chunkSize
	if _, err := w.Write(data); err != nil {
		w.Close()
		return nil, err
	}
	err := w.Close()
	return w.Attrs(), err
}

// TestPreconditionProbe checks the server in use, not the driver: a second
// create-only write of an object must be refused with 412 Precondition
// Failed, whether it goes up in one request or in a resumable upload. An
// emulator that ignored preconditions would make every create-only test
// pass for nothing.
func TestPreconditionProbe(t *testing.T) {
	srv := testserver.GCS(t)
	client := srv.Client(t)
	bucket := client.Bucket(srv.NewBucket(t))
	for _, tc := range uploadModes {
		t.Run(tc.name, func(t *testing.T) {
			obj := bucket.Object("probe/" + tc.name).If(storage.Conditions{DoesNotExist: true})
			first, second := randomBytes(1, tc.size), randomBytes(2, tc.size)
			write := func(data []byte) error {
				_, err := upload(t, obj, tc.chunkSize, data)
				return err
			}
			require.NoError(t, write(first))
			err := write(second)
			var apiErr *googleapi.Error
			require.ErrorAs(t, err, &apiErr, "the server took a second create-only write of the object")
			assert.Equal(t, http.StatusPreconditionFailed, apiErr.Code)
			assert.Equal(t, first, readAll(t, client.Bucket(obj.BucketName()).Object(obj.ObjectName())))
		})
	}
}

// TestGenerationMatchProbe checks the server in use, not the driver: an
// upload conditioned on a generation the object no longer has, or on an
// object since deleted, must be refused with 412, in one request or in a
// resumable upload. An emulator that ignored ifGenerationMatch would make
// the conditional-write tests pass for nothing.
func TestGenerationMatchProbe(t *testing.T) {
	srv := testserver.GCS(t)
	client := srv.Client(t)
	bucket := client.Bucket(srv.NewBucket(t))
	for _, tc := range uploadModes {
		t.Run(tc.name, func(t *testing.T) {
			obj := bucket.Object("probe/" + tc.name)
			first, err := upload(t, obj, tc.chunkSize, randomBytes(1, tc.size))
			require.NoError(t, err)
			second, err := upload(t, obj.If(storage.Conditions{GenerationMatch: first.Generation}), tc.chunkSize, randomBytes(2, tc.size))
			require.NoError(t, err, "a write at the object's generation")
			require.NotEqual(t, first.Generation, second.Generation)

			_, err = upload(t, obj.If(storage.Conditions{GenerationMatch: first.Generation}), tc.chunkSize, randomBytes(3, tc.size))
			var apiErr *googleapi.Error
			require.ErrorAs(t, err, &apiErr, "the server took a write at a stale generation")
			assert.Equal(t, http.StatusPreconditionFailed, apiErr.Code)
			assert.Equal(t, randomBytes(2, tc.size), readAll(t, obj))

			require.NoError(t, obj.Delete(t.Context()))
			_, err = upload(t, obj.If(storage.Conditions{GenerationMatch: second.Generation}), tc.chunkSize, randomBytes(4, tc.size))
			require.ErrorAs(t, err, &apiErr, "the server took a conditional write of a deleted object")
			assert.Equal(t, http.StatusPreconditionFailed, apiErr.Code)
			_, err = obj.Attrs(t.Context())
			require.ErrorIs(t, err, storage.ErrObjectNotExist)
		})
	}
}

// TestConditionalPutResumable: a conditional Put of an object large enough
// for a resumable upload replaces it at its generation, and a stale one
// matches core.ErrConflict, not core.ErrExists, and reaches the client's
// error.
func TestConditionalPutResumable(t *testing.T) {
	srv := testserver.GCS(t)
	st := newStore(t, srv, srv.Client(t), smallChunks)
	ctx := t.Context()
	first, second := randomBytes(1, 600<<10), randomBytes(2, 600<<10)
	require.NoError(t, st.PutBytes(ctx, tag, first, store.PutOptions{}))
	info, err := st.Stat(ctx, tag)
	require.NoError(t, err)
	require.NoError(t, st.PutIfMatch(ctx, tag, bytes.NewReader(second), int64(len(second)), store.PutOptions{}, info.Version))

	err = st.PutIfMatch(ctx, tag, bytes.NewReader(first), int64(len(first)), store.PutOptions{}, info.Version)
	require.ErrorIs(t, err, core.ErrConflict)
	assert.NotErrorIs(t, err, core.ErrExists)
	var apiErr *googleapi.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusPreconditionFailed, apiErr.Code)
	got, err := st.GetBytes(ctx, tag, 1<<20)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(second, got), "a refused conditional Put changed the object")

	err = st.PutIfMatch(ctx, tag, bytes.NewReader(first), int64(len(first)), store.PutOptions{}, "not-a-generation")
	require.ErrorIs(t, err, core.ErrInvalid)
}

// TestCreateOnlyError: a refused create-only Put matches core.ErrExists and
// still reaches the client's error.
func TestCreateOnlyError(t *testing.T) {
	srv := testserver.GCS(t)
	st := newStore(t, srv, srv.Client(t), nil)
	require.NoError(t, st.PutBytes(t.Context(), tag, []byte("first"), store.PutOptions{CreateOnly: true}))
	err := st.PutBytes(t.Context(), tag, []byte("second"), store.PutOptions{CreateOnly: true})
	require.ErrorIs(t, err, core.ErrExists)
	var apiErr *googleapi.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusPreconditionFailed, apiErr.Code)
}

func TestMissingBucket(t *testing.T) {
	srv := testserver.GCS(t)
	bucket := fmt.Sprintf("statebucket-missing-%d", time.Now().UnixNano())
	st := store.New(gcsstore.New(srv.Client(t), bucket, "p", nil), "gs://"+bucket+"/p", nil)
	for op, err := range everyOperation(t, st) {
		require.ErrorIs(t, err, core.ErrBucketNotFound, op)
		assert.NotErrorIs(t, err, core.ErrNotFound, op)
		assert.Contains(t, err.Error(), fmt.Sprintf("bucket %q does not exist", bucket), op)
	}
}

func TestNoServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	endpoint := "http://" + l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now
	client, err := storage.NewClient(t.Context(), option.WithoutAuthentication(), option.WithEndpoint(endpoint+"/storage/v1/"))
	require.NoError(t, err)
	defer client.Close()
	client.SetRetry(storage.WithBackoff(gax.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond}))
	st := store.New(gcsstore.New(client, "bucket", "", &gcsstore.Options{MaxAttempts: 2}), "gs://bucket", nil)
	for op, err := range everyOperation(t, st) {
		require.ErrorIs(t, err, core.ErrTransient, op)
		assert.Contains(t, err.Error(), "gcsstore: cannot connect to ", op)
		assert.ErrorIs(t, err, syscall.ECONNREFUSED, op)
	}
}

// everyOperation runs each operation of st on tag and returns its error,
// by operation.
func everyOperation(t *testing.T, st *store.Store) map[string]error {
	ctx := t.Context()
	_, statErr := st.Stat(ctx, tag)
	_, getErr := st.Get(ctx, tag)
	_, rangeErr := st.GetRange(ctx, tag, 1, 10)
	return map[string]error{
		"put":      st.PutBytes(ctx, tag, []byte("x"), store.PutOptions{}),
		"put-1MiB": st.PutBytes(ctx, tag, make([]byte, 1<<20), store.PutOptions{CreateOnly: true}),
		"stat":     statErr,
		"get":      getErr,
		"getrange": rangeErr,
		"list":     st.List(ctx, "", func(store.ObjectInfo) error { return nil }),
		"delete":   st.Delete(ctx, tag),
	}
}

// corruptUploads is a transport that flips a bit of the body of every
// upload request it carries, 32 KiB into it, as a faulty network card or
// proxy might.
type corruptUploads struct {
	base      http.RoundTripper
	corrupted atomic.Int64
}

func (c *corruptUploads) RoundTrip(req *http.Request) (*http.Response, error) {
	const at = 32 << 10
	if !strings.HasPrefix(req.URL.Path, "/upload/") || req.Body == nil {
		return c.base.RoundTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	if len(body) > at {
		body[at] ^= 1
		c.corrupted.Add(1)
	}
	req = req.Clone(req.Context())
	req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	return c.base.RoundTrip(req)
}

// TestCorruptedInTransit flips a bit of every upload on its way to the
// server, which refuses it by the CRC32C the client sends: nothing is
// stored. (fake-gcs-server ignores the CRC32C that comes with the last
// chunk of a resumable upload: the driver then finds the stored object's
// CRC32C wrong and deletes it.) A composite upload's parts each carry
// their own.
func TestCorruptedInTransit(t *testing.T) {
	srv := testserver.GCS(t)
	modes := map[string]struct {
		size int
		opts *gcsstore.Options
	}{
		"Streamed":   {1 << 20, nil},
		"OneRequest": {100 << 10, smallChunks},
		"Resumable":  {700 << 10, smallChunks},
		"Composite":  {1<<20 + 5, inParts},
	}
	for name, mode := range modes {
		data := randomBytes(5, mode.size)
		sum := sha256.Sum256(data)
		for what, opts := range map[string]store.PutOptions{"WithSHA256": {SHA256: sum[:]}, "WithoutSHA256": {}} {
			t.Run(name+"/"+what, func(t *testing.T) {
				rt := &corruptUploads{base: newTransport()}
				st := newStore(t, srv, srv.Client(t, option.WithHTTPClient(&http.Client{Transport: rt})), mode.opts)
				err := st.PutBytes(t.Context(), tag, data, opts)
				require.ErrorIs(t, err, core.ErrChecksumMismatch)
				assert.Positive(t, rt.corrupted.Load(), "no upload was corrupted")
				if name != "Resumable" {
					var apiErr *googleapi.Error
					require.ErrorAs(t, err, &apiErr, "the server did not refuse the upload: did it get its CRC32C?")
					assert.Equal(t, http.StatusBadRequest, apiErr.Code)
				}
				_, err = st.Stat(t.Context(), tag)
				require.ErrorIs(t, err, core.ErrNotFound)
			})
		}
	}
}

// changingReaderAt serves data, with one byte flipped from the second pass
// over it on: a body that changes while the driver reads it.
type changingReaderAt struct {
	data   []byte
	passes atomic.Int32
}

func (c *changingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off == 0 {
		c.passes.Add(1)
	}
	n, err := bytes.NewReader(c.data).ReadAt(p, off)
	if c.passes.Load() > 1 && off <= 100 && 100 < off+int64(n) {
		p[100-off] ^= 1
	}
	return n, err
}

// TestStreamedBodyChanges: a body that changes between the pass that
// takes its checksums and the upload is refused by the CRC32C that the
// request declares, and nothing is stored.
func TestStreamedBodyChanges(t *testing.T) {
	srv := testserver.GCS(t)
	st := newStore(t, srv, srv.Client(t), nil)
	data := randomBytes(9, 300<<10)
	body := &changingReaderAt{data: data}
	err := st.Put(t.Context(), tag, body, int64(len(data)), store.PutOptions{CreateOnly: true})
	require.ErrorIs(t, err, core.ErrChecksumMismatch)
	assert.GreaterOrEqual(t, body.passes.Load(), int32(2), "the body was read once: no checksum pass before the upload")
	_, err = st.Stat(t.Context(), tag)
	require.ErrorIs(t, err, core.ErrNotFound, "a body that changed was stored")
}

// TestWrongSHA256Streamed: a streamed Put whose body does not have the
// SHA-256 given fails before it sends anything.
func TestWrongSHA256Streamed(t *testing.T) {
	srv := testserver.GCS(t)
	rt := &corruptUploads{base: newTransport()}
	st := newStore(t, srv, srv.Client(t, option.WithHTTPClient(&http.Client{Transport: rt})), nil)
	data := randomBytes(6, 700<<10)
	wrong := sha256.Sum256([]byte("other content"))
	err := st.PutBytes(t.Context(), tag, data, store.PutOptions{SHA256: wrong[:], CreateOnly: true})
	require.ErrorIs(t, err, core.ErrChecksumMismatch)
	assert.Contains(t, err.Error(), "nothing was sent")
	assert.Zero(t, rt.corrupted.Load(), "an upload was sent")
	_, err = st.Stat(t.Context(), tag)
	require.ErrorIs(t, err, core.ErrNotFound)
}

// TestWrongSHA256Resumable: a resumable upload whose body does not have
// the SHA-256 given has sent its first chunks when the driver finds out;
// it abandons the upload, and nothing is stored, nor is the name taken.
func TestWrongSHA256Resumable(t *testing.T) {
	srv := testserver.GCS(t)
	st := newStore(t, srv, srv.Client(t), smallChunks)
	data := randomBytes(6, 700<<10)
	wrong := sha256.Sum256([]byte("other content"))
	for _, createOnly := range []bool{false, true} {
		err := st.PutBytes(t.Context(), tag, data, store.PutOptions{SHA256: wrong[:], CreateOnly: createOnly})
		require.ErrorIs(t, err, core.ErrChecksumMismatch, "CreateOnly %v", createOnly)
		_, err = st.Stat(t.Context(), tag)
		require.ErrorIs(t, err, core.ErrNotFound)
	}
	sum := sha256.Sum256(data)
	require.NoError(t, st.PutBytes(t.Context(), tag, data, store.PutOptions{SHA256: sum[:], CreateOnly: true}))
}

// TestFaults round-trips objects through a transport that fails one
// request in five: the retries (the client's for resumable uploads and
// reads, the engine's for streamed uploads) and resumed downloads make
// every operation succeed, byte-exact. Uploads meet the faults that keep a
// request from the server; TestLostAnswer and TestLostChunkAnswer lose
// answers to uploads that landed. (A cut answer fails an upload that
// landed with core.ErrTransient, for the store layer to retry: the client
// reads the answer after its retries.)
func TestFaults(t *testing.T) {
	srv := testserver.GCS(t)
	for mode, single := range map[string]int64{"Streamed": 0, "Resumable": -1} {
		t.Run(mode, func(t *testing.T) {
			testFaults(t, srv, &gcsstore.Options{ChunkSize: 256 << 10, MaxAttempts: 20, SingleRequestMax: single})
		})
	}
}

func testFaults(t *testing.T, srv *testserver.GCSServer, opts *gcsstore.Options) {
	bucket := srv.NewBucket(t)
	writes := &faults.RoundTripper{Base: newTransport(), Rate: 0.2, Seed: 2026,
		Kinds: []faults.Kind{faults.SlowDown, faults.ResetBeforeSend}}
	reads := &faults.RoundTripper{Base: newTransport(), Rate: 0.2, Seed: 2027}
	ctx := t.Context()

	st := store.New(gcsstore.New(faultyClient(t, srv, writes), bucket, "repo", opts), "gs://"+bucket+"/repo", nil)
	objects := map[string][]byte{}
	for i, size := range []int{0, 1, 100 << 10, 256 << 10, 1 << 20, 3<<20 + 5} {
		name := fmt.Sprintf("tags/o%d.json", i)
		objects[name] = randomBytes(uint64(i), size)
		sum := sha256.Sum256(objects[name])
		for range 2 { // the second replaces the first
			require.NoError(t, st.PutBytes(ctx, name, objects[name], store.PutOptions{SHA256: sum[:]}), name)
		}
	}
	for _, k := range writes.Kinds {
		assert.Positive(t, writes.Count(k), "no %v fault was injected into uploads", k)
	}

	st = store.New(gcsstore.New(faultyClient(t, srv, reads), bucket, "repo", opts), "gs://"+bucket+"/repo", nil)
	for range 3 {
		for name, data := range objects {
			got, err := st.GetBytes(ctx, name, 1<<30)
			require.NoError(t, err, name)
			require.True(t, bytes.Equal(data, got), "%s: content read back differs", name)
			info, err := st.Stat(ctx, name)
			require.NoError(t, err, name)
			assert.Equal(t, int64(len(data)), info.Size, name)
			if len(data) > 1000 {
				rc, err := st.GetRange(ctx, name, 500, int64(len(data)/2))
				require.NoError(t, err, name)
				got, err := io.ReadAll(rc)
				require.NoError(t, err, name)
				require.NoError(t, rc.Close())
				require.True(t, bytes.Equal(data[500:500+len(data)/2], got), "%s: range read back differs", name)
			}
		}
		n := 0
		require.NoError(t, st.List(ctx, "tags/", func(store.ObjectInfo) error { n++; return nil }))
		assert.Equal(t, len(objects), n)
	}
	for _, k := range faults.AllKinds {
		assert.Positive(t, reads.Count(k), "no %v fault was injected into downloads", k)
	}
	t.Logf("injected: uploads %s; downloads %s", writes, reads)
}

// TestLostAnswer loses the answer to an upload that landed. The client
// sends it again: a replacement succeeds, a create-only Put finds its own
// object there and fails with core.ErrExists, which the engine resolves by
// reading the object back.
func TestLostAnswer(t *testing.T) {
	srv := testserver.GCS(t)
	for _, createOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("CreateOnly=%v", createOnly), func(t *testing.T) {
			rt := &faults.LoseAnswer{Base: newTransport(), Match: func(req *http.Request) bool {
				return req.URL.Query().Get("uploadType") == "multipart"
			}}
			st := newStore(t, srv, faultyClient(t, srv, rt), nil)
			data := randomBytes(7, 10<<10)
			err := st.PutBytes(t.Context(), tag, data, store.PutOptions{CreateOnly: createOnly})
			require.Equal(t, 2, rt.Matched(), "the upload whose answer was lost was not sent again")
			if createOnly {
				require.ErrorIs(t, err, core.ErrExists)
			} else {
				require.NoError(t, err)
			}
			got, err := st.GetBytes(t.Context(), tag, 1<<20)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(data, got), "content read back differs")
		})
	}
}

// TestLostChunkAnswer loses the answer to a chunk of a resumable upload
// that landed, and the client sends the chunk again. GCS takes it at its
// offset; fake-gcs-server appends it a second time. Either the Put
// succeeds with the exact bytes stored, or it fails with
// core.ErrChecksumMismatch and nothing is stored: never does a Put succeed
// over wrong bytes.
func TestLostChunkAnswer(t *testing.T) {
	srv := testserver.GCS(t)
	rt := &faults.LoseAnswer{Base: newTransport(), Match: func(req *http.Request) bool { return req.URL.Query().Has("upload_id") }}
	st := newStore(t, srv, faultyClient(t, srv, rt), smallChunks)
	data := randomBytes(8, 700<<10)
	err := st.PutBytes(t.Context(), tag, data, store.PutOptions{})
	require.Greater(t, rt.Matched(), 1, "the chunk whose answer was lost was not sent again")
	if err != nil {
		require.ErrorIs(t, err, core.ErrChecksumMismatch)
		_, statErr := st.Stat(t.Context(), tag)
		require.ErrorIs(t, statErr, core.ErrNotFound, "the wrong bytes were kept")
		t.Logf("the server stored wrong bytes, which the driver found and deleted: %v", err)
		return
	}
	got, err := st.GetBytes(t.Context(), tag, 1<<30)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(data, got), "content read back differs")
}

// TestFaultsEveryRequest fails every request before it reaches the
// server: each operation gives up
// after Options.MaxAttempts attempts, with an error matching
// core.ErrTransient that wraps the last failure.
func TestFaultsEveryRequest(t *testing.T) {
	srv := testserver.GCS(t)
	rt := &faults.RoundTripper{Base: newTransport(), Rate: 1, Seed: 1, Kinds: []faults.Kind{faults.SlowDown, faults.ResetBeforeSend}}
	st := newStore(t, srv, faultyClient(t, srv, rt), &gcsstore.Options{MaxAttempts: 3})
	for op, err := range everyOperation(t, st) {
		require.ErrorIs(t, err, core.ErrTransient, op)
		assert.True(t, errors.Is(err, faults.ErrInjected) || strings.Contains(err.Error(), faults.SlowDownMessage),
			"%s: the last failure is missing: %v", op, err)
	}
	assert.Positive(t, rt.Total())
}

// answerStatus is a transport that answers every request with status and
// a GCS JSON error, without sending it on.
type answerStatus int

func (a answerStatus) RoundTrip(req *http.Request) (*http.Response, error) {
	return jsonAnswer(req, int(a), fmt.Sprintf(`{"error":{"code":%d,"message":"injected %d"}}`, a, a)), nil
}

// jsonAnswer answers req, without sending it on, with status and the JSON
// body.
func jsonAnswer(req *http.Request, status int, body string) *http.Response {
	if req.Body != nil {
		req.Body.Close()
	}
	return &http.Response{
		StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// TestErrorMapping: every operation answered 403, 409, 429 or 503 fails
// with the matching sentinel, and still reaches the client's error.
func TestErrorMapping(t *testing.T) {
	srv := testserver.GCS(t)
	for status, want := range map[answerStatus]error{
		http.StatusForbidden:          core.ErrPermission,
		http.StatusConflict:           core.ErrConflict,
		http.StatusTooManyRequests:    core.ErrTransient,
		http.StatusServiceUnavailable: core.ErrTransient,
	} {
		t.Run(strconv.Itoa(int(status)), func(t *testing.T) {
			st := store.New(gcsstore.New(faultyClient(t, srv, status), "bucket", "", &gcsstore.Options{MaxAttempts: 2}), "gs://bucket", nil)
			for op, err := range everyOperation(t, st) {
				require.ErrorIs(t, err, want, op)
				var apiErr *googleapi.Error
				require.ErrorAs(t, err, &apiErr, op)
				assert.Equal(t, int(status), apiErr.Code, op)
				if want == core.ErrPermission {
					assert.Contains(t, err.Error(), `access to bucket "bucket"`, op)
					assert.Contains(t, err.Error(), "check the credentials in use", op)
				}
			}
		})
	}
}

// newStore returns a Store over a driver on a new bucket of srv, reached
// through client.
func newStore(t *testing.T, srv *testserver.GCSServer, client *storage.Client, opts *gcsstore.Options) *store.Store {
	t.Helper()
	bucket := srv.NewBucket(t)
	st := store.New(gcsstore.New(client, bucket, "repo", opts), "gs://"+bucket+"/repo", nil)
	t.Cleanup(func() { st.Close() })
	return st
}

// faultyClient returns a client of srv whose requests go through rt, and
// which waits little between attempts.
func faultyClient(t *testing.T, srv *testserver.GCSServer, rt http.RoundTripper) *storage.Client {
	client := srv.Client(t, option.WithHTTPClient(&http.Client{Transport: rt}))
	client.SetRetry(storage.WithBackoff(gax.Backoff{Initial: time.Millisecond, Max: 20 * time.Millisecond}))
	return client
}

func newTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 32
	return tr
}

func readAll(t *testing.T, obj *storage.ObjectHandle) []byte {
	t.Helper()
	r, err := obj.NewReader(t.Context())
	require.NoError(t, err)
	defer r.Close()
	data, err := io.ReadAll(r)
	require.NoError(t, err)
	return data
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)}).Read(b)
	return b
}

// notLocal hides the Local method of a directory driver: a store it backs
// looks like one on a server.
type notLocal struct{ store.Driver }

// TestStreamedFromAnotherStore: a body streamed from a store on this
// machine (a directory) is read twice and goes up in one request; one
// streamed from a server, which a second pass would download again, goes
// up in a resumable upload.
func TestStreamedFromAnotherStore(t *testing.T) {
	srv := testserver.GCS(t)
	data := randomBytes(10, 700<<10)
	sum := sha256.Sum256(data)
	fs, err := filestore.New(t.TempDir(), nil)
	require.NoError(t, err)
	for _, tc := range []struct {
		name      string
		drv       store.Driver
		oneUpload bool
	}{
		{"local", fs, true},
		{"remote", notLocal{fs}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from := store.New(tc.drv, "from", nil)
			require.NoError(t, from.PutBytes(t.Context(), "blobs/"+tc.name, data, store.PutOptions{}))
			body, err := from.ReaderAt(t.Context(), "blobs/"+tc.name, int64(len(data)))
			require.NoError(t, err)
			defer body.Close()
			assert.Equal(t, tc.oneUpload, body.Local())

			rt := newRequests(newTransport())
			st := newStore(t, srv, srv.Client(t, option.WithHTTPClient(&http.Client{Transport: rt})), &gcsstore.Options{ChunkSize: 256 << 10})
			require.NoError(t, st.Put(t.Context(), tag, body, int64(len(data)), store.PutOptions{SHA256: sum[:], CreateOnly: true}))
			if tc.oneUpload {
				assert.Equal(t, 1, rt.count("multipart"), "one request")
				assert.Zero(t, rt.count("resumable"))
			} else {
				assert.Positive(t, rt.count("resumable"), "a resumable upload")
			}
			got, err := st.GetBytes(t.Context(), tag, 1<<20)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(data, got), "content read back differs")
		})
	}
}
