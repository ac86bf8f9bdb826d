package core

import (
	"context"
	"sync"
)

// Listener is called with the view of the state after a change.
type Listener[V any] func(ctx context.Context, accountID, region string, view V)

// StateChangeNotifier calls its listeners after each mutation of a
// service's state.
//
// The zero value is ready to use. A StateChangeNotifier is safe for
// concurrent use. Listeners run synchronously, in the order they subscribed,
// on the goroutine that calls Notify; a service must never call Notify (or
// [NotifyStateChanged]) while it holds a lock on its state, because
// listeners usually read that state back.
type StateChangeNotifier[V any] struct {
	mu        sync.Mutex
	next      uint64
	listeners []subscription[V]
}

type subscription[V any] struct {
	id uint64
	fn Listener[V]
}

// Subscribe adds fn to the listeners and returns a function that removes
// it. Calling the returned function more than once is harmless.
func (n *StateChangeNotifier[V]) Subscribe(fn Listener[V]) (cancel func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.next++
	id := n.next
	n.listeners = append(n.listeners, subscription[V]{id: id, fn: fn})
	return func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		for i, s := range n.listeners {
			if s.id == id {
				n.listeners = append(n.listeners[:i:i], n.listeners[i+1:]...)
				return
			}
		}
	}
}

// Len returns the number of subscribed listeners.
func (n *StateChangeNotifier[V]) Len() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.listeners)
}

// Notify calls every listener with view. A listener that subscribes or
// cancels during Notify takes effect from the next call.
func (n *StateChangeNotifier[V]) Notify(ctx context.Context, accountID, region string, view V) {
	n.mu.Lock()
	ls := n.listeners
	n.mu.Unlock()
	for _, s := range ls {
		s.fn(ctx, accountID, region, view)
	}
}

// NotifyStateChanged reads the view of accountID in region from svc and
// hands it to svc's listeners. It does nothing when nobody listens. It
// returns the error of the Snapshot call, if any. Call it after a mutation,
// never while holding a lock on the service's state.
func NotifyStateChanged[V any](ctx context.Context, svc StatefulService[V], accountID, region string) error {
	n := svc.Notifier()
	if n == nil || n.Len() == 0 {
		return nil
	}
	view, err := svc.Snapshot(ctx, accountID, region)
	if err != nil {
		return err
	}
	n.Notify(ctx, accountID, region, view)
	return nil
}
