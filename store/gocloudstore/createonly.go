package gocloudstore

import (
	"context"
	"fmt"
	"sync"
)

// nameLocks serialise the create-only writes of one name to one storage
// within the process, for drivers whose IfNotExist is a check followed by
// a write: without them, two writers of one process could both pass the
// check. A lock is a channel of one slot, so that waiting for it ends
// with the context.
var nameLocks = struct {
	sync.Mutex
	m map[string]*nameLock
}{m: map[string]*nameLock{}}

type nameLock struct {
	slot chan struct{}
	refs int
}

// lockName takes the lock of key, waiting for it until ctx ends, and
// returns the function that releases it.
func lockName(ctx context.Context, key string) (unlock func(), err error) {
	nameLocks.Lock()
	l := nameLocks.m[key]
	if l == nil {
		l = &nameLock{slot: make(chan struct{}, 1)}
		nameLocks.m[key] = l
	}
	l.refs++
	nameLocks.Unlock()

	release := func() {
		nameLocks.Lock()
		defer nameLocks.Unlock()
		if l.refs--; l.refs == 0 {
			delete(nameLocks.m, key)
		}
	}
	select {
	case l.slot <- struct{}{}:
		return func() { <-l.slot; release() }, nil
	case <-ctx.Done():
		release()
		return nil, fmt.Errorf("gocloudstore: wait for a concurrent create-only write of the same name: %w", ctx.Err())
	}
}
