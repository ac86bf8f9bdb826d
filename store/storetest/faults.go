package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
)

// faultTests are the cases that run the driver through a [FaultyDriver]
// and a Store, proving that the portable layer's retries and resumed
// reads make every driver survive a flaky network.
var faultTests = []struct {
	name string
	fn   func(t *testing.T, f *fixture)
}{
	{"RoundTrip", testFaultsRoundTrip},
	{"ReadsResume", testFaultsReadsResume},
	{"PutStoredOnce", testFaultsPutStoredOnce},
	{"CreateOnlyLostCompletion", testFaultsCreateOnlyLostCompletion},
	{"EveryCallFails", testFaultsEveryCallFails},
	{"ReadGivesUp", testFaultsReadGivesUp},
}

// faultyStore returns a Store over drv wrapped in a FaultyDriver with
// opts, trying again up to retries times, without waiting.
func faultyStore(drv store.Driver, retries int, opts FaultOptions) (*store.Store, *FaultyDriver) {
	fd := Faulty(drv, opts)
	return store.New(fd, location, &store.Options{Retries: retries, Backoff: -1}), fd
}

// faultObject is an object the fault tests store.
type faultObject struct {
	name       string
	data       []byte
	createOnly bool
}

// faultObjects returns n small objects and two large ones, larger than
// the parts of a multipart upload of 5 MiB parts, half of them
// create-only.
func faultObjects(n int) []faultObject {
	objects := make([]faultObject, 0, n+2)
	for i := range n + 2 {
		size := int64(i * 997 % (64 << 10))
		if i >= n {
			size = 6<<20 + int64(i)
		}
		data := make([]byte, size)
		_, _ = pattern{size: size + int64(i)}.ReadAt(data, int64(i))
		objects = append(objects, faultObject{name: fmt.Sprintf("faults/obj-%03d", i), data: data, createOnly: i%2 == 1})
	}
	return objects
}

// putAll stores the objects through st, concurrently. A create-only Put
// that meets core.ErrExists reads the object back and compares it, as the
// flows do: a retried Put whose first attempt landed meets its own object.
func putAll(t *testing.T, st *store.Store, objects []faultObject) {
	t.Helper()
	forEach(t, objects, func(ctx context.Context, o faultObject) error {
		sum := sha256.Sum256(o.data)
		err := st.PutBytes(ctx, o.name, o.data, store.PutOptions{SHA256: sum[:], CreateOnly: o.createOnly})
		if o.createOnly && errors.Is(err, core.ErrExists) {
			got, rerr := st.GetBytes(ctx, o.name, 1<<30)
			if rerr != nil {
				return rerr
			}
			if !bytes.Equal(got, o.data) {
				return fmt.Errorf("%q exists with other content", o.name)
			}
			return nil
		}
		return err
	})
}

// forEach calls fn for every object, eight at a time, and requires that
// none fails.
func forEach(t *testing.T, objects []faultObject, fn func(ctx context.Context, o faultObject) error) {
	t.Helper()
	g, ctx := errgroup.WithContext(t.Context())
	g.SetLimit(8)
	for _, o := range objects {
		g.Go(func() error { return fn(ctx, o) })
	}
	require.NoError(t, g.Wait())
}

// checkAll reads every object back through st, whole and by ranges,
// concurrently, and requires the exact bytes.
func checkAll(t *testing.T, st *store.Store, objects []faultObject) {
	t.Helper()
	forEach(t, objects, func(ctx context.Context, o faultObject) error {
		got, err := st.GetBytes(ctx, o.name, 1<<30)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, o.data) {
			return fmt.Errorf("%q: read back %d bytes, not the %d written", o.name, len(got), len(o.data))
		}
		size := int64(len(o.data))
		for _, r := range [][2]int64{{0, size / 2}, {size / 3, size / 3}, {size / 2, size}} {
			rc, err := st.GetRange(ctx, o.name, r[0], r[1])
			if err != nil {
				return err
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return err
			}
			if want := o.data[r[0]:min(r[0]+r[1], size)]; !bytes.Equal(got, want) {
				return fmt.Errorf("%q: range of %d bytes from %d: read %d bytes that differ", o.name, r[1], r[0], len(got))
			}
		}
		return nil
	})
}

// testFaultsRoundTrip stores and reads back small and large objects while
// a third of the calls fail in every way: every byte arrives.
func testFaultsRoundTrip(t *testing.T, f *fixture) {
	st, fd := faultyStore(f.drv, 30, FaultOptions{Rate: 0.3, Seed: 1})
	objects := faultObjects(40)
	putAll(t, st, objects)
	checkAll(t, st, objects)
	assert.Len(t, list(t, f.drv, "faults/"), len(objects), "objects stored, each once")
	t.Logf("injected: %s", fd)
	for _, k := range AllFaults {
		assert.Positive(t, fd.Count(k), "no %s injected", k)
	}
}

// testFaultsReadsResume reads objects whose every read breaks off
// part-way: each resumes where it broke, and the bytes are exact.
func testFaultsReadsResume(t *testing.T, f *fixture) {
	objects := faultObjects(6)
	putAll(t, f.st, objects)
	st, fd := faultyStore(f.drv, 30, FaultOptions{Rate: 1, Kinds: []Fault{Reset, Truncate}, Seed: 2})
	checkAll(t, st, objects)
	assert.Positive(t, fd.Count(Reset))
	assert.Positive(t, fd.Count(Truncate))
}

// testFaultsPutStoredOnce loses the answer to a Put that landed, and to a
// Delete: the Store tries the Put again, and the object is stored once,
// whole; the Delete tried again finds it gone, and succeeds.
func testFaultsPutStoredOnce(t *testing.T, f *fixture) {
	data := []byte("stored once")
	st, fd := faultyStore(f.drv, 3, FaultOptions{Rate: 1, Kinds: []Fault{LostCompletion}, Max: 1})
	require.NoError(t, st.PutBytes(t.Context(), "once", data, store.PutOptions{}))
	assert.Equal(t, 2, fd.Calls(), "one Put lost, one retried")
	assert.Equal(t, map[string]int64{"once": int64(len(data))}, list(t, f.drv, ""))
	assert.Equal(t, data, read(t, f.drv, "once"))

	st, fd = faultyStore(f.drv, 3, FaultOptions{Rate: 1, Kinds: []Fault{LostCompletion}, Max: 1})
	require.NoError(t, st.Delete(t.Context(), "once"))
	assert.Equal(t, 2, fd.Calls(), "one Delete lost, one retried")
	assert.Empty(t, list(t, f.drv, ""))
}

// testFaultsCreateOnlyLostCompletion loses the answer to a create-only Put
// that landed: its retry meets the object, and fails with an error
// matching core.ErrExists; the object is the one written.
func testFaultsCreateOnlyLostCompletion(t *testing.T, f *fixture) {
	data := []byte(`{"commit":"point"}`)
	sum := sha256.Sum256(data)
	st, fd := faultyStore(f.drv, 3, FaultOptions{Rate: 1, Kinds: []Fault{LostCompletion}, Max: 1})
	err := st.PutBytes(t.Context(), "commit.json", data, store.PutOptions{CreateOnly: true, SHA256: sum[:]})
	require.ErrorIs(t, err, core.ErrExists)
	assert.Equal(t, 1, int(fd.Count(LostCompletion)))
	assert.Equal(t, 2, fd.Calls())
	assert.Equal(t, data, read(t, f.st, "commit.json"), "the object is the one written")
}

// testFaultsEveryCallFails fails every call: each operation gives up after
// 1+Retries attempts, with an error that wraps the injected cause.
func testFaultsEveryCallFails(t *testing.T, f *fixture) {
	ctx := t.Context()
	require.NoError(t, f.st.PutBytes(ctx, "present", []byte("x"), store.PutOptions{}))
	const retries = 3
	for op, call := range map[string]func(st *store.Store) error{
		"put":    func(st *store.Store) error { return st.PutBytes(ctx, "absent", []byte("y"), store.PutOptions{}) },
		"get":    func(st *store.Store) error { return second(st.Get(ctx, "present")) },
		"range":  func(st *store.Store) error { return second(st.GetRange(ctx, "present", 0, 1)) },
		"stat":   func(st *store.Store) error { return second(st.Stat(ctx, "present")) },
		"list":   func(st *store.Store) error { return st.List(ctx, "", func(store.ObjectInfo) error { return nil }) },
		"delete": func(st *store.Store) error { return st.Delete(ctx, "present") },
	} {
		st, fd := faultyStore(f.drv, retries, FaultOptions{Rate: 1, Kinds: []Fault{Throttle}})
		err := call(st)
		require.ErrorIs(t, err, ErrInjected, op)
		require.ErrorIs(t, err, core.ErrTransient, op)
		assert.Contains(t, err.Error(), fmt.Sprintf("gave up after %d attempts", retries+1), op)
		assert.Equal(t, retries+1, fd.Calls(), "%s: attempts", op)
	}
	assert.Equal(t, map[string]int64{"present": 1}, list(t, f.drv, ""), "nothing stored, nothing deleted")
}

// testFaultsReadGivesUp breaks off a read part-way and fails every attempt
// to resume it: the read gives up after 1+Retries attempts in a row, with
// an error that names the object and the offset reached, and wraps the
// injected cause.
func testFaultsReadGivesUp(t *testing.T, f *fixture) {
	data := bytes.Repeat([]byte("0123456789"), 10000)
	require.NoError(t, f.st.PutBytes(t.Context(), "broken", data, store.PutOptions{}))
	const retries = 2
	resumes := Faulty(f.drv, FaultOptions{Rate: 1, Kinds: []Fault{Throttle}, Skip: 1})
	cuts := Faulty(resumes, FaultOptions{Rate: 1, Kinds: []Fault{Truncate}, Max: 1, Seed: 3})
	st := store.New(cuts, location, &store.Options{Retries: retries, Backoff: -1})
	rc, err := st.Get(t.Context(), "broken")
	require.NoError(t, err)
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	require.ErrorIs(t, err, ErrInjected)
	require.ErrorIs(t, err, core.ErrTransient, "the last cause: a resumption throttled")
	var se *store.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "read", se.Op)
	assert.Equal(t, "broken", se.Name)
	assert.Contains(t, err.Error(), fmt.Sprintf("gave up at byte %d after %d attempts in a row without progress", n, retries+1))
	assert.Less(t, n, int64(len(data)))
	assert.Equal(t, int64(1), cuts.Count(Truncate))
	assert.Equal(t, 1+retries, resumes.Calls(), "the Get, then Retries resumptions")
}
