package gocloudstore

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLockName(t *testing.T) {
	unlock, err := lockName(t.Context(), "k")
	require.NoError(t, err)

	// Taken: a waiter whose context ends gives up.
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = lockName(cancelled, "k")
	require.ErrorIs(t, err, context.Canceled)

	// Another name is free.
	unlockOther, err := lockName(t.Context(), "other")
	require.NoError(t, err)
	unlockOther()

	// A waiter gets the lock once it is released.
	got := make(chan func())
	go func() {
		u, err := lockName(t.Context(), "k")
		assert.NoError(t, err)
		got <- u
	}()
	unlock()
	(<-got)()

	nameLocks.Lock()
	defer nameLocks.Unlock()
	assert.Empty(t, nameLocks.m, "released locks are forgotten")
}
