package autoexport

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/snapshot"
)

// Options configure an [Exporter]. The zero value is ready to use: the
// Exporter then exports only on [Exporter.Flush] and [Exporter.Close].
// Debounce and Interval may be combined; an export round triggered by
// either exports every pair changed since the last round.
type Options struct {
	// Debounce, if positive, exports the changed pairs once no change has
	// come, to any pair of the service, for this long.
	Debounce time.Duration
	// MaxDelay bounds how long Debounce may hold back a change: the
	// changed pairs are exported at the latest MaxDelay after the first
	// change not yet exported. Zero means 10 × Debounce. It requires
	// Debounce.
	MaxDelay time.Duration
	// Interval, if positive, exports the changed pairs every Interval.
	Interval time.Duration
	// Tag, if not nil, names the tag pointed at each new snapshot of
	// accountID and region; an empty name sets no tag. It overrides
	// Export.Tag.
	Tag func(accountID, region string) string
	// Export is passed to every snapshot.Export or snapshot.ExportState
	// call (signing key, blob engine settings, a static tag). Its Stats,
	// if set, receives the statistics of the latest export.
	Export snapshot.ExportOptions
	// OnExport, if not nil, is called after each export of a pair, with
	// its manifest or its error. Calls never overlap. It runs on the
	// goroutine that exported (the Exporter's worker, or the caller of
	// Flush or Close) and must not call Flush or Close.
	OnExport func(Result)
}

// Result is the outcome of the export of one (account, region) pair.
type Result struct {
	AccountID string
	Region    string
	// Manifest is the committed snapshot's manifest; nil if Err is set.
	Manifest *manifest.Manifest
	// Err is why the export failed, or nil.
	Err error
}

// pair is an (account, region) whose state changed.
type pair struct{ accountID, region string }

func comparePairs(a, b pair) int {
	return cmp.Or(cmp.Compare(a.accountID, b.accountID), cmp.Compare(a.region, b.region))
}

// exportFunc exports the state of one pair: snapshot.Export or
// snapshot.ExportState, bound to a repository and a service.
type exportFunc func(ctx context.Context, accountID, region string, opts *snapshot.ExportOptions) (*manifest.Manifest, error)

// Exporter exports the state of a service to a repository whenever it
// changes, under the policies of its [Options]. Create one with [New]; the
// zero value is not usable. An Exporter is safe for concurrent use. Close
// it when done: Close exports the last changes.
type Exporter[V any] struct {
	opts        Options
	export      exportFunc
	unsubscribe func()

	changed chan struct{} // capacity 1: a change is waiting for the worker
	stop    chan struct{} // closed by Close: the worker returns
	done    chan struct{} // closed by the worker when it returns
	cancel  context.CancelFunc
	turn    chan struct{} // capacity 1: held by the one export round running

	mu       sync.Mutex
	dirty    map[pair]struct{}
	failures map[pair]error // pairs whose latest export failed
	closed   bool
}

// New subscribes an Exporter to svc's notifier and starts its worker.
// If svc is also a core.BlobBackedService, it is exported with its blobs
// through snapshot.Export, else through snapshot.ExportState. nil opts
// means the zero Options.
//
// Negative durations, and MaxDelay without Debounce, yield an error
// matching core.ErrInvalid, as do a nil repo or svc.
func New[V any](repo *snapshot.Repo, svc core.StatefulService[V], opts *Options) (*Exporter[V], error) {
	if opts == nil {
		opts = &Options{}
	}
	o := *opts
	switch {
	case repo == nil || svc == nil:
		return nil, fmt.Errorf("autoexport: new: nil repository or service: %w", core.ErrInvalid)
	case o.Debounce < 0 || o.MaxDelay < 0 || o.Interval < 0:
		return nil, fmt.Errorf("autoexport: new: negative duration (debounce %v, max delay %v, interval %v): %w", o.Debounce, o.MaxDelay, o.Interval, core.ErrInvalid)
	case o.MaxDelay > 0 && o.Debounce == 0:
		return nil, fmt.Errorf("autoexport: new: max delay %v without a debounce: set Debounce too: %w", o.MaxDelay, core.ErrInvalid)
	case svc.Notifier() == nil:
		return nil, fmt.Errorf("autoexport: new: %s has no notifier: %w", svc.ServiceName(), core.ErrInvalid)
	}
	if o.Debounce > 0 && o.MaxDelay == 0 {
		o.MaxDelay = 10 * o.Debounce
	}
	e := &Exporter[V]{
		opts:     o,
		changed:  make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		turn:     make(chan struct{}, 1),
		dirty:    make(map[pair]struct{}),
		failures: make(map[pair]error),
	}
	if b, ok := svc.(core.BlobBackedService[V]); ok {
		e.export = func(ctx context.Context, accountID, region string, opts *snapshot.ExportOptions) (*manifest.Manifest, error) {
			return snapshot.Export(ctx, repo, b, accountID, region, opts)
		}
	} else {
		e.export = func(ctx context.Context, accountID, region string, opts *snapshot.ExportOptions) (*manifest.Manifest, error) {
			return snapshot.ExportState(ctx, repo, svc, accountID, region, opts)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.unsubscribe = svc.Notifier().Subscribe(e.changedState)
	go e.run(ctx)
	return e, nil
}

// changedState is the listener: it marks the pair dirty and wakes the
// worker, without waiting for anything.
func (e *Exporter[V]) changedState(_ context.Context, accountID, region string, _ V) {
	e.mu.Lock()
	e.dirty[pair{accountID, region}] = struct{}{}
	e.mu.Unlock()
	select {
	case e.changed <- struct{}{}:
	default: // the worker has a wake-up pending already
	}
}

// run is the worker: it runs an export round when the debounce or the
// maximum delay expires, or at each tick of the interval.
func (e *Exporter[V]) run(ctx context.Context) {
	defer close(e.done)
	quiet, latest := stoppedTimer(), stoppedTimer()
	defer quiet.Stop()
	defer latest.Stop()
	var tick <-chan time.Time
	if e.opts.Interval > 0 {
		t := time.NewTicker(e.opts.Interval)
		defer t.Stop()
		tick = t.C
	}
	waiting := false // latest is armed
	for {
		select {
		case <-e.stop:
			return
		case <-e.changed:
			if e.opts.Debounce > 0 {
				quiet.Reset(e.opts.Debounce)
				if !waiting {
					latest.Reset(e.opts.MaxDelay)
					waiting = true
				}
			}
			continue
		case <-quiet.C:
		case <-latest.C:
		case <-tick:
		}
		// The round exports every dirty pair: a pending debounce has
		// nothing left to wait for.
		quiet.Stop()
		latest.Stop()
		waiting = false
		select {
		case e.turn <- struct{}{}:
			e.round(ctx)
		case <-e.stop:
			return
		}
	}
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// Flush exports every pair changed since its last export, now, and
// returns the errors of those exports joined. When Flush returns nil,
// every change the service reported before Flush was called is in a
// committed snapshot. If an export round is running, Flush waits for it.
func (e *Exporter[V]) Flush(ctx context.Context) error {
	select {
	case e.turn <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("autoexport: flush: %w", context.Cause(ctx))
	}
	return e.round(ctx)
}

// round exports every dirty pair, one at a time, and releases the turn
// its caller took. A pair whose export fails stays dirty, so the next
// round tries it again. A change during the round marks its pair dirty
// again: the snapshot may or may not hold it, the next round will.
func (e *Exporter[V]) round(ctx context.Context) error {
	defer func() { <-e.turn }()
	e.mu.Lock()
	pairs := slices.SortedFunc(maps.Keys(e.dirty), comparePairs)
	clear(e.dirty)
	e.mu.Unlock()
	var errs []error
	for _, p := range pairs {
		opts := e.opts.Export
		if e.opts.Tag != nil {
			opts.Tag = e.opts.Tag(p.accountID, p.region)
		}
		m, err := e.export(ctx, p.accountID, p.region, &opts)
		e.mu.Lock()
		if err != nil {
			e.dirty[p] = struct{}{}
			e.failures[p] = err
			errs = append(errs, err)
		} else {
			delete(e.failures, p)
		}
		e.mu.Unlock()
		if e.opts.OnExport != nil {
			e.opts.OnExport(Result{AccountID: p.accountID, Region: p.region, Manifest: m, Err: err})
		}
	}
	return errors.Join(errs...)
}

// Err returns the errors of the pairs whose latest export failed, joined
// in account and region order, or nil when every export so far has
// succeeded or been retried successfully.
func (e *Exporter[V]) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for _, p := range slices.SortedFunc(maps.Keys(e.failures), comparePairs) {
		errs = append(errs, e.failures[p])
	}
	return errors.Join(errs...)
}

// Close unsubscribes from the service, stops the worker and exports the
// changes not exported yet, as [Exporter.Flush] does, returning its
// error. If ctx ends while the worker is exporting, that export is
// cancelled. Calling Close again does nothing and returns nil.
func (e *Exporter[V]) Close(ctx context.Context) error {
	e.mu.Lock()
	closed := e.closed
	e.closed = true
	e.mu.Unlock()
	if closed {
		return nil
	}
	e.unsubscribe()
	close(e.stop)
	select {
	case <-e.done:
	case <-ctx.Done():
		e.cancel()
		<-e.done
	}
	e.cancel()
	return e.Flush(ctx)
}
