package storetest

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
)

// conditional returns the driver's store.ConditionalPutter, skipping the
// test when it has none.
func conditional(t *testing.T, f *fixture) store.ConditionalPutter {
	t.Helper()
	cp, ok := f.drv.(store.ConditionalPutter)
	if !ok {
		t.Skipf("%T does not implement store.ConditionalPutter", f.drv)
	}
	return cp
}

// version returns the version Stat reports for name, which must be set.
func version(t *testing.T, o objects, name string) string {
	t.Helper()
	info, err := o.Stat(t.Context(), name)
	require.NoError(t, err)
	require.NotEmpty(t, info.Version, "Stat of a driver implementing store.ConditionalPutter must set Version")
	return info.Version
}

// testConditionalPut replaces an object at the version read, then fails to
// replace it at a version it no longer has, or once it is deleted.
func testConditionalPut(t *testing.T, f *fixture) {
	ctx := t.Context()
	cp := conditional(t, f)
	name := tagName("cas")
	require.NoError(t, f.st.PutBytes(ctx, name, []byte(`{"n":0}`), store.PutOptions{}))
	for i, b := range []struct {
		via string
		put func(data []byte, version string) error
	}{
		{"Store", func(data []byte, v string) error {
			return f.st.PutIfMatch(ctx, name, bytes.NewReader(data), int64(len(data)), store.PutOptions{}, v)
		}},
		{"Driver", func(data []byte, v string) error {
			return cp.PutIfMatch(ctx, name, bytes.NewReader(data), int64(len(data)), store.PutOptions{}, v)
		}},
	} {
		old := version(t, f.st, name)
		assert.Equal(t, old, version(t, f.drv, name), "%s: Store and Driver report one version", b.via)
		next := []byte(`{"n":` + string(rune('1'+i)) + `, "via": "` + b.via + `"}`)
		require.NoError(t, b.put(next, old), b.via)
		assert.Equal(t, next, read(t, f.st, name), b.via)
		assert.NotEqual(t, old, version(t, f.st, name), "%s: a replaced object has a new version", b.via)

		err := b.put([]byte(`{"lost":true}`), old)
		require.ErrorIs(t, err, core.ErrConflict, "%s: a stale version", b.via)
		assert.NotErrorIs(t, err, core.ErrExists, b.via)
		assert.Equal(t, next, read(t, f.st, name), "%s: a refused conditional Put changed the object", b.via)
	}

	last := version(t, f.st, name)
	require.NoError(t, f.st.Delete(ctx, name))
	err := f.st.PutIfMatch(ctx, name, bytes.NewReader([]byte("x")), 1, store.PutOptions{}, last)
	require.ErrorIs(t, err, core.ErrConflict, "the object was deleted")
	_, err = f.st.Stat(ctx, name)
	requireNotFound(t, err)
}

// testConditionalPutRace has many writers replace the same version of an
// object at once: exactly one wins, and its content is the one stored.
func testConditionalPutRace(t *testing.T, f *fixture) {
	conditional(t, f)
	name := tagName("race")
	require.NoError(t, f.st.PutBytes(t.Context(), name, []byte("start"), store.PutOptions{}))
	v := version(t, f.st, name)
	race(t, f, name, core.ErrConflict, func(data []byte) error {
		return f.st.PutIfMatch(t.Context(), name, bytes.NewReader(data), int64(len(data)), store.PutOptions{}, v)
	})
}
