package snapshot_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/snapshot"
)

func TestExportStateRefusesBlobBackedService(t *testing.T) {
	ctx := t.Context()
	r := openTemp(t)
	svc := coretest.NewObjectStore()
	_, _, err := coretest.Fill(ctx, svc, "a", "r", coretest.FillOptions{Objects: 3, Seed: 1})
	require.NoError(t, err)

	m, err := snapshot.ExportState(ctx, r, svc, "a", "r", nil)
	require.ErrorIs(t, err, core.ErrInvalid)
	assert.Nil(t, m)
	assert.Contains(t, err.Error(), "without its blobs")
	assert.Contains(t, err.Error(), "use snapshot.Export")

	ms, err := r.List(ctx, snapshot.Filter{})
	require.NoError(t, err)
	assert.Empty(t, ms, "nothing was committed")

	_, err = snapshot.Export(ctx, r, svc, "a", "r", nil)
	require.NoError(t, err, "Export takes the same service")
}
