package store

import (
	"context"

	"golang.org/x/sync/semaphore"
)

// Defaults of a [Budget].
const (
	// DefaultConcurrency is the number of requests in flight to a driver
	// that does not say otherwise through [Concurrency].
	DefaultConcurrency = 16
	// DefaultBufferBytes is the number of blob bytes held in memory at once.
	DefaultBufferBytes = 64 << 20
)

// Budget is one limit on in-flight requests and one on buffered bytes,
// shared by every transfer on a [Store], so that many concurrent exports
// and imports on one repository together stay within it. The Store takes
// a request slot for each call to its driver (see [Store]); the engines
// take bytes for what they buffer.
//
// A Budget is safe for concurrent use.
type Budget struct {
	requests    *semaphore.Weighted
	bytes       *semaphore.Weighted
	maxRequests int
	maxBytes    int64
}

// NewBudget returns a Budget of maxRequests requests and maxBytes bytes;
// values ≤ 0 take the defaults.
func NewBudget(maxRequests int, maxBytes int64) *Budget {
	if maxRequests <= 0 {
		maxRequests = DefaultConcurrency
	}
	if maxBytes <= 0 {
		maxBytes = DefaultBufferBytes
	}
	return &Budget{
		requests:    semaphore.NewWeighted(int64(maxRequests)),
		bytes:       semaphore.NewWeighted(maxBytes),
		maxRequests: maxRequests,
		maxBytes:    maxBytes,
	}
}

// MaxRequests returns the limit on in-flight requests.
func (b *Budget) MaxRequests() int { return b.maxRequests }

// MaxBytes returns the limit on buffered bytes.
func (b *Budget) MaxBytes() int64 { return b.maxBytes }

// acquireRequest waits for a request slot; only the Store takes them, for
// each call to its driver. Release it with releaseRequest.
func (b *Budget) acquireRequest(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err // rather than take a free slot with a done context
	}
	return b.requests.Acquire(ctx, 1)
}

// releaseRequest returns a request slot.
func (b *Budget) releaseRequest() { b.requests.Release(1) }

// AcquireBytes waits until n bytes (at most MaxBytes) may be buffered and
// returns how many it took.
func (b *Budget) AcquireBytes(ctx context.Context, n int64) (int64, error) {
	n = min(n, b.maxBytes)
	if err := b.bytes.Acquire(ctx, n); err != nil {
		return 0, err
	}
	return n, nil
}

// TryAcquireBytes takes n bytes if they are free now, without waiting.
func (b *Budget) TryAcquireBytes(n int64) bool {
	return n <= b.maxBytes && b.bytes.TryAcquire(n)
}

// ReleaseBytes returns n bytes taken by AcquireBytes or TryAcquireBytes.
func (b *Budget) ReleaseBytes(n int64) {
	if n > 0 {
		b.bytes.Release(n)
	}
}
