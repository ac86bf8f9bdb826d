package coretest

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"unicode/utf8"

	"github.com/statebucket/statebucket/core"
)

// KVName is the service name of a [KV]: "ssm".
const KVName = "ssm"

var _ core.StatefulService[KVView] = (*KV)(nil)

// KV is an in-memory parameter store shaped like SSM Parameter Store: per
// account and region, a map from parameter name to value. It is a plain
// [core.StatefulService] whose view holds no blobs.
//
// Create one with [NewKV]; the zero value is not usable. A KV is safe for
// concurrent use; mutations notify the listeners of Notifier after
// releasing the lock.
type KV struct {
	mu       sync.RWMutex
	params   map[scope]map[string]string
	notifier core.StateChangeNotifier[KVView]
}

// KVView is the state view of one account and region of a [KV]. Its JSON
// is deterministic (encoding/json sorts map keys). Names and values are
// valid UTF-8, so they survive the JSON round trip.
type KVView struct {
	Parameters map[string]string `json:"parameters"`
}

// NewKV returns an empty KV.
func NewKV() *KV {
	return &KV{params: make(map[scope]map[string]string)}
}

// ServiceName returns KVName.
func (kv *KV) ServiceName() string { return KVName }

// Notifier returns the store's notifier, the same on every call.
func (kv *KV) Notifier() *core.StateChangeNotifier[KVView] { return &kv.notifier }

// Put sets parameter name to value. The name must be non-empty valid UTF-8
// (else core.ErrInvalidPath) and the value valid UTF-8 (else
// core.ErrInvalid).
func (kv *KV) Put(ctx context.Context, accountID, region, name, value string) error {
	if err := checkParameter(name, value); err != nil {
		return fmt.Errorf("coretest: ssm: put: %w", err)
	}
	kv.mu.Lock()
	m := kv.params[scope{accountID, region}]
	if m == nil {
		m = make(map[string]string)
		kv.params[scope{accountID, region}] = m
	}
	m[name] = value
	kv.mu.Unlock()
	kv.notify(ctx, accountID, region)
	return nil
}

// Get returns the value of parameter name, or an error matching
// core.ErrNotFound.
func (kv *KV) Get(ctx context.Context, accountID, region, name string) (string, error) {
	kv.mu.RLock()
	defer kv.mu.RUnlock()
	value, ok := kv.params[scope{accountID, region}][name]
	if !ok {
		return "", fmt.Errorf("coretest: ssm: get parameter %q: %w", name, core.ErrNotFound)
	}
	return value, nil
}

// Delete removes parameter name, or returns an error matching
// core.ErrNotFound.
func (kv *KV) Delete(ctx context.Context, accountID, region, name string) error {
	kv.mu.Lock()
	m := kv.params[scope{accountID, region}]
	_, ok := m[name]
	delete(m, name)
	kv.mu.Unlock()
	if !ok {
		return fmt.Errorf("coretest: ssm: delete parameter %q: %w", name, core.ErrNotFound)
	}
	kv.notify(ctx, accountID, region)
	return nil
}

// Snapshot returns the view of accountID in region, with a non-nil map. It
// never fails.
func (kv *KV) Snapshot(ctx context.Context, accountID, region string) (KVView, error) {
	kv.mu.RLock()
	defer kv.mu.RUnlock()
	m := maps.Clone(kv.params[scope{accountID, region}])
	if m == nil {
		m = make(map[string]string)
	}
	return KVView{Parameters: m}, nil
}

// Restore replaces the parameters of accountID in region with view's. A
// name or value that Put would refuse is a *core.StateViewError of kind
// KindInvalid, and leaves the state as it was.
func (kv *KV) Restore(ctx context.Context, accountID, region string, view KVView) error {
	return kv.load(ctx, accountID, region, view, false)
}

// Merge adds view's parameters to those of accountID in region,
// overwriting the values of names present in both; it never deletes.
// Invalid input is handled as by Restore.
func (kv *KV) Merge(ctx context.Context, accountID, region string, view KVView) error {
	return kv.load(ctx, accountID, region, view, true)
}

func (kv *KV) load(ctx context.Context, accountID, region string, view KVView, merge bool) error {
	for name, value := range view.Parameters {
		if err := checkParameter(name, value); err != nil {
			return core.NewViewError(core.KindInvalid, KVName, err)
		}
	}
	kv.mu.Lock()
	sc := scope{accountID, region}
	m := kv.params[sc]
	if m == nil || !merge {
		m = make(map[string]string, len(view.Parameters))
		kv.params[sc] = m
	}
	maps.Copy(m, view.Parameters)
	kv.mu.Unlock()
	kv.notify(ctx, accountID, region)
	return nil
}

// notify calls the listeners. KV.Snapshot cannot fail, so neither can
// NotifyStateChanged.
func (kv *KV) notify(ctx context.Context, accountID, region string) {
	_ = core.NotifyStateChanged[KVView](ctx, kv, accountID, region)
}

func checkParameter(name, value string) error {
	if name == "" || !utf8.ValidString(name) {
		return fmt.Errorf("parameter name %q: empty or not UTF-8: %w", name, core.ErrInvalidPath)
	}
	if !utf8.ValidString(value) {
		return fmt.Errorf("parameter %q: value %q not UTF-8: %w", name, value, core.ErrInvalid)
	}
	return nil
}
