package repo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/filestore"
)

var tagID = digest.FromBytes([]byte("snapshot"))

// tagJSON is the record of tag "v1" as WriteTag writes it.
func tagJSON(t testing.TB) []byte {
	data, err := encodeRecord(Tag{Name: "v1", Snapshot: tagID, Updated: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)})
	require.NoError(t, err)
	return data
}

func TestDecodeTag(t *testing.T) {
	got, err := decodeTag("v1", tagJSON(t))
	require.NoError(t, err)
	assert.Equal(t, Tag{Name: "v1", Snapshot: tagID, Updated: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)}, got)

	const updated = `"updated": "2026-01-02T03:04:05Z"`
	snap := `"snapshot": "` + string(tagID) + `"`
	for _, tc := range []struct{ name, data, why string }{
		{"trailing document", `{"name": "v1", ` + snap + `, ` + updated + `} {}`, "trailing data"},
		{"trailing garbage", `{"name": "v1", ` + snap + `, ` + updated + `}x`, "trailing data"},
		{"duplicate key", `{"name": "v1", "name": "v1", ` + snap + `, ` + updated + `}`, `field "name" is repeated`},
		{"duplicate key, other value", `{"name": "v2", ` + snap + `, "name": "v1", ` + updated + `}`, "repeated"},
		{"unknown field", `{"name": "v1", ` + snap + `, ` + updated + `, "x": 1}`, `unknown field "x"`},
		{"field in another case", `{"Name": "v1", ` + snap + `, ` + updated + `}`, `unknown field "Name"`},
		{"missing field", `{"name": "v1", ` + snap + `}`, `"updated" is missing`},
		{"null", `{"name": null, ` + snap + `, ` + updated + `}`, "want a string"},
		{"nested", `{"name": "v1", "snapshot": {"id": "x"}, ` + updated + `}`, "want a string"},
		{"number for a string", `{"name": "v1", "snapshot": 7, ` + updated + `}`, "cannot unmarshal number"},
		{"other tag", `{"name": "v2", ` + snap + `, ` + updated + `}`, `names tag "v2"`},
		{"bad digest", `{"name": "v1", "snapshot": "sha256:` + strings.ToUpper(tagID.Hex()) + `", ` + updated + `}`, "not a snapshot id"},
		{"hex without algorithm", `{"name": "v1", "snapshot": "` + tagID.Hex() + `", ` + updated + `}`, "not a snapshot id"},
		{"bad time", `{"name": "v1", ` + snap + `, "updated": "yesterday"}`, "yesterday"},
		{"array", `[]`, "want a JSON object"},
		{"empty", ``, "want a JSON object"},
		{"truncated", `{"name": "v1", `, "EOF"},
		{"invalid UTF-8", "{\"name\": \"v1\xff\", " + snap + `, ` + updated + `}`, "UTF-8"},
		{"malformed signature", `{"name": "v1", ` + snap + `, ` + updated + `, "signature": "hmac-sha256:00"}`, "signature is not"},
		{"signature of another algorithm", `{"name": "v1", ` + snap + `, ` + updated + `, "signature": "ed25519:` + strings.Repeat("0", 64) + `"}`, "signature is not"},
		{"repeated signature", `{"name": "v1", ` + snap + `, ` + updated + `, "signature": "x", "signature": "x"}`, "repeated"},
		{"null signature", `{"name": "v1", ` + snap + `, ` + updated + `, "signature": null}`, "want a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeTag("v1", []byte(tc.data))
			require.ErrorIs(t, err, core.ErrCorrupt)
			assert.NotErrorIs(t, err, core.ErrInvalid)
			assert.Contains(t, err.Error(), `tag "v1"`, "the error names the tag")
			assert.Contains(t, err.Error(), tc.why)
		})
	}
}

// FuzzDecodeTag checks that decodeTag never panics, fails only with
// errors matching core.ErrCorrupt, and that what it accepts names the
// tag, points at a valid id, and encodes back to a record that decodes
// to the same tag.
func FuzzDecodeTag(f *testing.F) {
	valid := tagJSON(f)
	f.Add(valid)
	for _, mut := range [][2]string{
		{`"name": "v1"`, `"name": "v1", "name": "v1"`},
		{`"name"`, `"Name"`},
		{`"name"`, `"n\u0061me"`},
		{`"v1"`, `null`},
		{`"sha256:`, `"sha256:0`},
		{`"updated": "`, `"updated": "+`},
		{`}`, `, "x": []}`},
	} {
		f.Add(bytes.Replace(valid, []byte(mut[0]), []byte(mut[1]), 1))
	}
	f.Add(append(bytes.Clone(valid), valid...))
	for _, s := range []string{"", "{}", "null", "[]", `"v1"`, "\xef\xbb\xbf{}", "{" + strings.Repeat(`"a":1,`, 100) + "}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tag, err := decodeTag("v1", data)
		if err != nil {
			require.ErrorIs(t, err, core.ErrCorrupt)
			return
		}
		require.Equal(t, "v1", tag.Name)
		require.True(t, tag.Snapshot.IsValid())
		again, err := encodeRecord(tag)
		require.NoError(t, err)
		back, err := decodeTag("v1", again)
		require.NoError(t, err)
		require.True(t, tag.Updated.Equal(back.Updated))
		tag.Updated, back.Updated = time.Time{}, time.Time{}
		require.Equal(t, tag, back)
	})
}

// casDriver passes conditional writes on to the driver it wraps, so that
// a wrapper keeps that ability; after each Stat of a tag it calls
// afterStat, and each conditional write answers with putErr (nil by
// default) after it lands.
type casDriver struct {
	store.Driver
	afterStat func()
	putErr    func() error
}

func (d *casDriver) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	info, err := d.Driver.Stat(ctx, name)
	if _, ok := ParseTagName(name); ok && d.afterStat != nil {
		d.afterStat()
	}
	return info, err
}

func (d *casDriver) PutIfMatch(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions, version string) error {
	err := d.Driver.(store.ConditionalPutter).PutIfMatch(ctx, name, body, size, opts, version)
	if err == nil && d.putErr != nil {
		return d.putErr()
	}
	return err
}

func newTagRepo(t *testing.T, wrap func(store.Driver) store.Driver) *Repo {
	t.Helper()
	fs, err := filestore.New(t.TempDir(), nil)
	require.NoError(t, err)
	r := New(store.New(wrap(fs), "test", &store.Options{Backoff: -1}), nil)
	t.Cleanup(func() { r.Close() })
	return r
}

// Writers that read the same record of a tag and move it at once: exactly
// one wins; the others are told where the tag points now, and leave it.
func TestTagMoveRace(t *testing.T) {
	ctx := t.Context()
	const writers = 8
	var barrier sync.WaitGroup
	var armed atomic.Bool
	drv := &casDriver{afterStat: func() {
		if armed.Load() {
			barrier.Done()
			barrier.Wait() // every writer has read the tag before any writes it
		}
	}}
	r := newTagRepo(t, func(d store.Driver) store.Driver { drv.Driver = d; return drv })
	old := digest.FromBytes([]byte("old"))

	for _, existing := range []bool{false, true} {
		name := "race-new"
		if existing {
			name = "race-existing"
			_, err := r.WriteTag(ctx, name, old, nil)
			require.NoError(t, err)
		}
		barrier.Add(writers)
		armed.Store(true)
		targets := make([]digest.Digest, writers)
		changes := make([]TagChange, writers)
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for i := range writers {
			targets[i] = digest.FromBytes([]byte{byte(i)})
			wg.Go(func() { changes[i], errs[i] = r.WriteTag(ctx, name, targets[i], nil) })
		}
		wg.Wait()
		armed.Store(false)

		winner := -1
		for i, err := range errs {
			if err == nil {
				require.Equal(t, -1, winner, "writers %d and %d both won", winner, i)
				winner = i
			}
		}
		require.NotEqual(t, -1, winner, "no writer won")
		assert.False(t, changes[winner].Unconditional)
		if existing {
			require.NotNil(t, changes[winner].Previous)
			assert.Equal(t, old, changes[winner].Previous.Snapshot)
		} else {
			assert.Nil(t, changes[winner].Previous)
		}
		for i, err := range errs {
			if i == winner {
				continue
			}
			require.ErrorIs(t, err, core.ErrConflict, "writer %d", i)
			var ce *TagConflictError
			require.ErrorAs(t, err, &ce)
			require.NotNil(t, ce.Current)
			assert.Equal(t, targets[winner], ce.Current.Snapshot, "the loser is told the winner's target")
			assert.Contains(t, err.Error(), "now points at "+string(targets[winner]))
		}
		got, err := r.ReadTag(ctx, name)
		require.NoError(t, err)
		assert.Equal(t, targets[winner], got.Snapshot)
	}
}

// A conditional write whose answer was lost, tried again, meets its own
// record: that is success, not a conflict.
func TestTagMoveRetriedAfterLostAnswer(t *testing.T) {
	ctx := t.Context()
	var lost atomic.Int64
	drv := &casDriver{putErr: func() error {
		if lost.Add(1) == 1 {
			return fmt.Errorf("answer lost: %w", core.ErrTransient)
		}
		return nil
	}}
	r := newTagRepo(t, func(d store.Driver) store.Driver { drv.Driver = d; return drv })
	a, b := digest.FromBytes([]byte("a")), digest.FromBytes([]byte("b"))
	_, err := r.WriteTag(ctx, "v", a, nil)
	require.NoError(t, err)
	change, err := r.WriteTag(ctx, "v", b, nil)
	require.NoError(t, err)
	assert.Equal(t, int64(1), lost.Load())
	assert.Equal(t, b, change.Tag.Snapshot)
	got, err := r.ReadTag(ctx, "v")
	require.NoError(t, err)
	assert.True(t, got.same(change.Tag))
}

// On a store that cannot compare and swap, a tag is moved unconditionally,
// and the change says so; Force moves it unconditionally anywhere.
func TestTagMoveWithoutCompareAndSwap(t *testing.T) {
	ctx := t.Context()
	a, b := digest.FromBytes([]byte("a")), digest.FromBytes([]byte("b"))
	plain := newTagRepo(t, func(d store.Driver) store.Driver { return struct{ store.Driver }{d} })
	change, err := plain.WriteTag(ctx, "v", a, nil)
	require.NoError(t, err)
	assert.False(t, change.Unconditional, "a new tag is created create-only on any store")
	change, err = plain.WriteTag(ctx, "v", b, nil)
	require.NoError(t, err)
	assert.True(t, change.Unconditional)
	assert.Equal(t, a, change.Previous.Snapshot)

	r := newTagRepo(t, func(d store.Driver) store.Driver { return d })
	_, err = r.WriteTag(ctx, "v", a, nil)
	require.NoError(t, err)
	change, err = r.WriteTag(ctx, "v", b, &TagOptions{Force: true})
	require.NoError(t, err)
	assert.False(t, change.Unconditional, "forced, not for want of compare-and-swap")
	assert.Equal(t, a, change.Previous.Snapshot)
	got, err := r.ReadTag(ctx, "v")
	require.NoError(t, err)
	assert.Equal(t, b, got.Snapshot)
}

func TestSignedTags(t *testing.T) {
	ctx := t.Context()
	key := []byte("tag key")
	r := newTagRepo(t, func(d store.Driver) store.Driver { return d })
	id := digest.FromBytes([]byte("snap"))
	change, err := r.WriteTag(ctx, "signed", id, &TagOptions{SigningKey: key})
	require.NoError(t, err)
	assert.True(t, manifest.IsSignature(change.Tag.Signature))
	_, err = r.WriteTag(ctx, "unsigned", id, nil)
	require.NoError(t, err)

	got, err := r.ReadTag(ctx, "signed")
	require.NoError(t, err)
	assert.True(t, got.same(change.Tag))
	require.NoError(t, got.VerifySignature(key))
	resolved, err := r.Resolve(ctx, "signed", key)
	require.NoError(t, err)
	assert.Equal(t, id, resolved)

	err = got.VerifySignature([]byte("other key"))
	require.ErrorIs(t, err, core.ErrCorrupt)
	assert.Contains(t, err.Error(), "does not match")
	assert.NotContains(t, err.Error(), got.Signature[len("hmac-sha256:"):], "errors never show a signature")
	_, err = r.Resolve(ctx, "unsigned", key)
	require.ErrorIs(t, err, core.ErrCorrupt)
	assert.Contains(t, err.Error(), `tag "unsigned"`)
	assert.Contains(t, err.Error(), "not signed")
	_, err = r.Resolve(ctx, "unsigned", nil)
	require.NoError(t, err, "without a key, an unsigned tag is a tag")

	// The signature covers the name, the target and the time.
	for _, edit := range []func(*Tag){
		func(t *Tag) { t.Snapshot = digest.FromBytes([]byte("other")) },
		func(t *Tag) { t.Updated = t.Updated.Add(time.Nanosecond) },
	} {
		tampered := got
		edit(&tampered)
		data, err := encodeRecord(tampered)
		require.NoError(t, err)
		require.NoError(t, r.Store().PutBytes(ctx, TagName("signed"), data, store.PutOptions{}))
		_, err = r.Resolve(ctx, "signed", key)
		require.ErrorIs(t, err, core.ErrCorrupt)
		assert.Contains(t, err.Error(), "does not match")
	}
	renamed := got
	renamed.Name = "other"
	require.Error(t, renamed.VerifySignature(key))
	require.ErrorIs(t, got.VerifySignature(nil), core.ErrInvalid)
	require.ErrorIs(t, got.Sign(nil), core.ErrInvalid)
}
