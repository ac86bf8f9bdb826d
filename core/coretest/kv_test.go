package coretest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
)

func TestKV(t *testing.T) {
	ctx := t.Context()
	kv := NewKV()
	require.NoError(t, kv.Put(ctx, acct, region, "/app/db/password", "hunter2"))
	require.NoError(t, kv.Put(ctx, acct, region, "/app/db/password", "correct horse"))
	v, err := kv.Get(ctx, acct, region, "/app/db/password")
	require.NoError(t, err)
	assert.Equal(t, "correct horse", v)

	_, err = kv.Get(ctx, acct, "other", "/app/db/password")
	require.ErrorIs(t, err, core.ErrNotFound)
	require.NoError(t, kv.Delete(ctx, acct, region, "/app/db/password"))
	err = kv.Delete(ctx, acct, region, "/app/db/password")
	require.ErrorIs(t, err, core.ErrNotFound)
	assert.Contains(t, err.Error(), `"/app/db/password"`)

	tests := []struct {
		name, param, value string
		want               error
	}{
		{"empty name", "", "v", core.ErrInvalidPath},
		{"invalid name", "\xff", "v", core.ErrInvalidPath},
		{"invalid value", "n", "\xff", core.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.ErrorIs(t, kv.Put(ctx, acct, region, tt.param, tt.value), tt.want)
			err := kv.Restore(ctx, acct, region, KVView{Parameters: map[string]string{tt.param: tt.value}})
			require.ErrorIs(t, err, core.ErrInvalid)
			require.ErrorIs(t, kv.Merge(ctx, acct, region, KVView{Parameters: map[string]string{tt.param: tt.value}}), core.ErrInvalid)
		})
	}
}

func TestKVCheckRoundTrip(t *testing.T) {
	ctx := t.Context()
	src, dst := NewKV(), NewKV()
	for _, name := range []string{"a", "nul\x00inside", "日本語", "e\u0301", "../../etc/passwd"} {
		require.NoError(t, src.Put(ctx, acct, region, name, "value of "+name))
	}
	require.NoError(t, dst.Put(ctx, acct, region, "dst-only", "x"))
	require.NoError(t, CheckRoundTrip(ctx, src, dst, acct, region))

	got, err := dst.Snapshot(ctx, acct, region)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"dst-only": "x"}, got.Parameters, "dst ends as it began")

	require.NoError(t, CheckRoundTrip(ctx, NewKV(), NewKV(), acct, region), "empty state")
	require.NoError(t, CheckRoundTrip(ctx, src, src, acct, region), "one service twice")
}

func TestKVMergeNeverDeletes(t *testing.T) {
	ctx := t.Context()
	kv := NewKV()
	require.NoError(t, kv.Put(ctx, acct, region, "keep", "1"))
	require.NoError(t, kv.Put(ctx, acct, region, "change", "1"))
	require.NoError(t, kv.Merge(ctx, acct, region, KVView{Parameters: map[string]string{"change": "2", "add": "3"}}))
	require.NoError(t, kv.Merge(ctx, acct, region, KVView{}))
	got, err := kv.Snapshot(ctx, acct, region)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"keep": "1", "change": "2", "add": "3"}, got.Parameters)

	require.NoError(t, kv.Restore(ctx, acct, region, KVView{Parameters: map[string]string{"only": "1"}}))
	got, err = kv.Snapshot(ctx, acct, region)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"only": "1"}, got.Parameters, "restore replaces")
}
