package storetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
)

// Fault is a kind of failure a [FaultyDriver] injects.
type Fault int

// The faults a [FaultyDriver] injects.
const (
	// Throttle fails a call with an error matching core.ErrTransient
	// before it reaches the driver, as a server that is asked to slow
	// down does.
	Throttle Fault = iota
	// Reset breaks off the reader of a Get or GetRange part-way with a
	// connection reset (syscall.ECONNRESET).
	Reset
	// Truncate ends the reader of a Get or GetRange part-way with
	// io.ErrUnexpectedEOF, as a response body cut short does.
	Truncate
	// LostCompletion lets a Put or Delete take effect, then fails it with
	// an error matching core.ErrTransient: the answer was lost, and the
	// caller cannot tell that the call landed.
	LostCompletion

	numFaults
)

// AllFaults lists every fault, in order.
var AllFaults = []Fault{Throttle, Reset, Truncate, LostCompletion}

func (f Fault) String() string {
	switch f {
	case Throttle:
		return "throttle"
	case Reset:
		return "reset"
	case Truncate:
		return "truncate"
	case LostCompletion:
		return "lost-completion"
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

// ErrInjected is matched (errors.Is) by every error a [FaultyDriver]
// injects.
var ErrInjected = errors.New("storetest: injected fault")

// InjectedError is an injected failure. It matches [ErrInjected] and
// unwraps to its cause: core.ErrTransient, syscall.ECONNRESET or
// io.ErrUnexpectedEOF.
type InjectedError struct {
	Fault Fault
	Op    string
	Err   error
}

func (e *InjectedError) Error() string {
	return fmt.Sprintf("storetest: injected %s in %s: %v", e.Fault, e.Op, e.Err)
}

// Unwrap returns the cause.
func (e *InjectedError) Unwrap() error { return e.Err }

// Is reports whether target is [ErrInjected].
func (e *InjectedError) Is(target error) bool { return target == ErrInjected }

// FaultOptions say which faults a [FaultyDriver] injects, and when. The
// zero value injects none.
type FaultOptions struct {
	// Rate is the share of the calls that may fail which do, from 0 to 1.
	Rate float64
	// Kinds are the faults chosen among, with equal chances; empty means
	// AllFaults. A call fails only with a fault that applies to it:
	// Throttle to every call, Reset and Truncate to Get and GetRange,
	// LostCompletion to Put and Delete.
	Kinds []Fault
	// Seed seeds the decisions; when calls are concurrent, which call
	// receives which decision follows the order in which they arrive.
	Seed uint64
	// Skip is the number of calls, from the first, let through untouched.
	Skip int
	// Max, if positive, is the most faults injected.
	Max int
}

// FaultyDriver wraps a [store.Driver], injecting the failures of a real
// network and server into its calls (see [Fault]), so that the portable
// store layer's retries and resumed reads can be tested against any
// driver. It hides the driver's optional interfaces. Create one with
// [Faulty]; it is safe for concurrent use.
type FaultyDriver struct {
	store.Driver
	opts FaultOptions

	mu       sync.Mutex
	rng      *rand.Rand
	calls    int
	injected int

	counts [numFaults]atomic.Int64
}

// Faulty returns drv wrapped to inject the faults opts describe.
func Faulty(drv store.Driver, opts FaultOptions) *FaultyDriver {
	if len(opts.Kinds) == 0 {
		opts.Kinds = AllFaults
	}
	return &FaultyDriver{Driver: drv, opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))}
}

// Count returns how many faults of kind k were injected so far.
func (d *FaultyDriver) Count(k Fault) int64 {
	if k < 0 || k >= numFaults {
		return 0
	}
	return d.counts[k].Load()
}

// Calls returns how many calls reached the FaultyDriver so far.
func (d *FaultyDriver) Calls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls
}

// String summarises the faults injected so far, one "kind=count" each.
func (d *FaultyDriver) String() string {
	s := ""
	for i, k := range AllFaults {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%s=%d", k, d.Count(k))
	}
	return s
}

// decide returns the fault to inject into a call that may fail with the
// faults in applicable, and for reads a random number to place the cut;
// ok is false when the call goes through untouched.
func (d *FaultyDriver) decide(applicable ...Fault) (f Fault, cut uint64, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	if d.calls <= d.opts.Skip || (d.opts.Max > 0 && d.injected >= d.opts.Max) {
		return 0, 0, false
	}
	if d.opts.Rate <= 0 || (d.opts.Rate < 1 && d.rng.Float64() >= d.opts.Rate) {
		return 0, 0, false
	}
	var kinds []Fault
	for _, k := range d.opts.Kinds {
		for _, a := range applicable {
			if k == a {
				kinds = append(kinds, k)
			}
		}
	}
	if len(kinds) == 0 {
		return 0, 0, false
	}
	d.injected++
	return kinds[d.rng.IntN(len(kinds))], d.rng.Uint64(), true
}

func (d *FaultyDriver) inject(f Fault, op string) error {
	d.counts[f].Add(1)
	return &InjectedError{Fault: f, Op: op, Err: core.ErrTransient}
}

// Put implements [store.Driver.Put].
func (d *FaultyDriver) Put(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions) error {
	f, _, ok := d.decide(Throttle, LostCompletion)
	switch {
	case !ok:
		return d.Driver.Put(ctx, name, body, size, opts)
	case f == Throttle:
		return d.inject(f, "put")
	}
	if err := d.Driver.Put(ctx, name, body, size, opts); err != nil {
		return err
	}
	return d.inject(f, "put")
}

// Delete implements [store.Driver.Delete].
func (d *FaultyDriver) Delete(ctx context.Context, name string) error {
	f, _, ok := d.decide(Throttle, LostCompletion)
	switch {
	case !ok:
		return d.Driver.Delete(ctx, name)
	case f == Throttle:
		return d.inject(f, "delete")
	}
	if err := d.Driver.Delete(ctx, name); err != nil {
		return err
	}
	return d.inject(f, "delete")
}

// Stat implements [store.Driver.Stat].
func (d *FaultyDriver) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	if f, _, ok := d.decide(Throttle); ok {
		return store.ObjectInfo{}, d.inject(f, "stat")
	}
	return d.Driver.Stat(ctx, name)
}

// List implements [store.Driver.List].
func (d *FaultyDriver) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	if f, _, ok := d.decide(Throttle); ok {
		return d.inject(f, "list")
	}
	return d.Driver.List(ctx, prefix, fn)
}

// Get implements [store.Driver.Get].
func (d *FaultyDriver) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	return d.read("get", func() (io.ReadCloser, error) { return d.Driver.Get(ctx, name) })
}

// GetRange implements [store.Driver.GetRange].
func (d *FaultyDriver) GetRange(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	return d.read("get range", func() (io.ReadCloser, error) { return d.Driver.GetRange(ctx, name, offset, length) })
}

func (d *FaultyDriver) read(op string, open func() (io.ReadCloser, error)) (io.ReadCloser, error) {
	f, cut, ok := d.decide(Throttle, Reset, Truncate)
	if ok && f == Throttle {
		return nil, d.inject(f, op)
	}
	rc, err := open()
	if err != nil || !ok {
		return rc, err
	}
	// Cut after a number of bytes spread over every scale, from none to
	// tens of MiB, so that small and large objects both break.
	left := int64(cut>>32) % (int64(1) << (cut % 26))
	return &faultyReader{ReadCloser: rc, d: d, fault: f, op: op, left: left}, nil
}

// faultyReader fails with its fault once it has read left bytes, unless
// the object ends first.
type faultyReader struct {
	io.ReadCloser
	d     *FaultyDriver
	fault Fault
	op    string
	left  int64
}

func (r *faultyReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		r.d.counts[r.fault].Add(1)
		r.left = -1 // counted once
	}
	if r.left < 0 {
		cause := io.ErrUnexpectedEOF
		if r.fault == Reset {
			cause = syscall.ECONNRESET
		}
		return 0, &InjectedError{Fault: r.fault, Op: r.op, Err: cause}
	}
	n, err := r.ReadCloser.Read(p[:min(int64(len(p)), r.left)])
	r.left -= int64(n)
	return n, err
}
