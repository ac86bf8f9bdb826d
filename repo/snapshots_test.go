package repo_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/repo"
)

func TestReadListedManifest(t *testing.T) {
	r, _ := newRepo(t, nil)
	a := commit(t, r, `{"a":1}`, "x")
	b := commit(t, r, `{"b":2}`)
	var listed []repo.Object
	require.NoError(t, r.ListManifests(t.Context(), func(o repo.Object) error {
		listed = append(listed, o)
		return nil
	}))
	require.Len(t, listed, 2)
	for _, o := range listed {
		m, err := r.ReadListedManifest(t.Context(), o, nil)
		require.NoError(t, err)
		assert.Contains(t, []any{a.ID, b.ID}, m.ID)
		assert.Equal(t, o.Digest, m.ID)
	}

	t.Run("replaced since listed", func(t *testing.T) {
		signed := *a
		require.NoError(t, signed.Sign([]byte("k")))
		require.NoError(t, r.ReplaceManifest(t.Context(), &signed))
		o := listed[0]
		if o.Digest != a.ID {
			o = listed[1]
		}
		m, err := r.ReadListedManifest(t.Context(), o, nil)
		require.NoError(t, err, "a size that changed since the listing is read again")
		assert.Equal(t, signed.Signature, m.Signature)
	})
}
