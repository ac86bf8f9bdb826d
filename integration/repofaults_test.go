package integration_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store"
	"github.com/statebucket/statebucket/store/storetest"
)

// faultStoreOptions are the retries of a store whose driver fails up to
// 30 % of its calls: 20 retries make giving up on any of the thousands of
// calls a test makes as unlikely as 0.3^21 each.
var faultStoreOptions = &store.Options{Retries: 20, Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}

// latency returns a tapDriver hook that delays every call reaching the
// driver by 0 to 2 ms, drawn from a seeded RNG.
func latency(seed uint64) func(tapEvent) {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, 1))
	return func(e tapEvent) {
		if e.Done || e.Op == "put-half" {
			return
		}
		mu.Lock()
		d := time.Duration(rng.Int64N(int64(2 * time.Millisecond)))
		mu.Unlock()
		time.Sleep(d) // injected latency, not synchronisation
	}
}

// openFaultyRepo opens the repository at rawURL through a
// storetest.FaultyDriver failing rate of the calls with every kind of
// fault, over a driver whose calls take added latency.
func openFaultyRepo(t *testing.T, rawURL string, rate float64, seed uint64) (*snapshot.Repo, *storetest.FaultyDriver) {
	t.Helper()
	var fd *storetest.FaultyDriver
	r := openWrapped(t, rawURL, func(d store.Driver) store.Driver {
		fd = storetest.Faulty(&tapDriver{Driver: d, on: latency(seed)}, storetest.FaultOptions{Rate: rate, Seed: seed})
		return fd
	}, faultStoreOptions)
	return r, fd
}

// faultCounts adds up faults injected, by kind.
type faultCounts map[storetest.Fault]int64

func (c faultCounts) add(fd *storetest.FaultyDriver) {
	for _, k := range storetest.AllFaults {
		c[k] += fd.Count(k)
	}
}

func (c faultCounts) String() string {
	total := int64(0)
	s := ""
	for _, k := range storetest.AllFaults {
		total += c[k]
		s += fmt.Sprintf(" %s=%d", k, c[k])
	}
	return fmt.Sprintf("%d faults:%s", total, s)
}

// faultState returns a state with hostile keys, many small blobs and one
// large enough to be read in several chunks.
func faultState(t *testing.T) *coretest.ObjectStore {
	t.Helper()
	svc := coretest.NewObjectStore()
	_, _, err := coretest.Fill(t.Context(), svc, acct, region, coretest.FillOptions{Objects: 150, Size: 32 << 10, Seed: 10, Hostile: true})
	require.NoError(t, err)
	large := make([]byte, 3<<20)
	_, _ = rand.NewChaCha8([32]byte{'f'}).Read(large)
	_, err = svc.PutObject(t.Context(), acct, region, "coretest-plain", "large", large)
	require.NoError(t, err)
	return svc
}

// TestRepositoryFaults exports a state, imports it back, copies its
// snapshot into another repository and imports it from there, with 10,
// 20 and 30 % of the calls to both repositories' drivers failing
// (storetest.Faulty: throttling, connection resets and truncated bodies
// on reads, lost completions of writes that landed) and every call
// delayed by up to 2 ms: both imports give the state back byte-exact,
// both repositories verify with read-data through clean handles, and
// hold the same manifest and view bytes.
func TestRepositoryFaults(t *testing.T) {
	eachBackend(t, testRepositoryFaults)
}

func testRepositoryFaults(t *testing.T, b backend) {
	src := faultState(t)
	total := faultCounts{}
	for i, rate := range []float64{0.1, 0.2, 0.3} {
		t.Run(fmt.Sprintf("%d%%", int(rate*100)), func(t *testing.T) {
			ctx := t.Context()
			fromURL, _ := b.newRepo(t)
			toURL, _ := b.newRepo(t)
			from, fromFaults := openFaultyRepo(t, fromURL, rate, uint64(2*i+1))
			to, toFaults := openFaultyRepo(t, toURL, rate, uint64(2*i+2))

			m, err := snapshot.Export(ctx, from, src, acct, region, &snapshot.ExportOptions{Tag: "faults"})
			require.NoError(t, err)
			requireImports(t, from, src, m)
			_, err = snapshot.Copy(ctx, from, to, []string{"faults"}, nil)
			require.NoError(t, err)
			requireImports(t, to, src, m)

			counts := faultCounts{}
			counts.add(fromFaults)
			counts.add(toFaults)
			for _, k := range storetest.AllFaults {
				assert.Positive(t, counts[k], "no %s injected", k)
			}
			for k, n := range counts {
				total[k] += n
			}
			t.Logf("%s at %d %%: %s in %d driver calls; export, import, copy and import byte-exact",
				b.name, int(rate*100), counts, fromFaults.Calls()+toFaults.Calls())

			var bytes [][]byte
			for _, u := range []string{fromURL, toURL} {
				clean, err := snapshot.Open(ctx, u)
				require.NoError(t, err)
				defer clean.Close()
				_, err = clean.Verify(ctx, m.ID.String(), &snapshot.VerifyOptions{ReadData: true})
				require.NoError(t, err)
				manifestBytes, view := stored(t, clean, m)
				bytes = append(bytes, manifestBytes, view)
			}
			assert.Equal(t, bytes[0], bytes[2], "manifest bytes")
			assert.Equal(t, bytes[1], bytes[3], "view bytes")
		})
	}
	t.Logf("%s: %s injected, nothing lost", b.name, total)
}

// requireImports imports snapshot m from r into a new service, and
// requires the state of want, byte-exact.
func requireImports(t *testing.T, r *snapshot.Repo, want *coretest.ObjectStore, m *manifest.Manifest) {
	t.Helper()
	dst := coretest.NewObjectStore()
	got, err := snapshot.Import(t.Context(), r, dst, acct, region, m.ID.String(), nil)
	require.NoError(t, err)
	require.Equal(t, m.ID, got.ID)
	require.NoError(t, sameState(t, want, dst))
}

// manifestFaults sends the Puts of manifests through faulty, and every
// other call on to the tapDriver, whose optional abilities it keeps.
type manifestFaults struct {
	*tapDriver
	faulty store.Driver
}

func (d manifestFaults) Put(ctx context.Context, name string, body io.ReaderAt, size int64, opts store.PutOptions) error {
	if isManifestName(name) {
		return d.faulty.Put(ctx, name, body, size, opts)
	}
	return d.tapDriver.Put(ctx, name, body, size, opts)
}

// openLostCommit opens the repository at rawURL so that the answer to
// its first manifest write is lost after the write landed. The log
// records the calls that reach the driver.
func openLostCommit(t *testing.T, rawURL string) (*snapshot.Repo, *storetest.FaultyDriver, *callLog) {
	t.Helper()
	var fd *storetest.FaultyDriver
	log := &callLog{}
	r := openWrapped(t, rawURL, func(d store.Driver) store.Driver {
		tap := &tapDriver{Driver: d, on: log.add}
		fd = storetest.Faulty(tap, storetest.FaultOptions{Rate: 1, Kinds: []storetest.Fault{storetest.LostCompletion}, Max: 1})
		return manifestFaults{tapDriver: tap, faulty: fd}
	}, nil)
	return r, fd, log
}

// TestAmbiguousCommit loses the answer to the manifest write of an
// export, and of a copy, after the write landed: the store tries the
// write again, which finds the manifest there (create-only), reads it
// back, finds its own, and the flow succeeds; the snapshot is listed
// once and verifies.
func TestAmbiguousCommit(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		src := coretest.NewObjectStore()
		_, _, err := coretest.Fill(ctx, src, acct, region, coretest.FillOptions{Objects: 20, Seed: 12})
		require.NoError(t, err)

		fromURL, _ := b.newRepo(t)
		toURL, _ := b.newRepo(t)
		from, fromFaults, fromLog := openLostCommit(t, fromURL)
		m, err := snapshot.Export(ctx, from, src, acct, region, nil)
		require.NoError(t, err)
		to, toFaults, toLog := openLostCommit(t, toURL)
		_, err = snapshot.Copy(ctx, from, to, []string{m.ID.String()}, nil)
		require.NoError(t, err)

		for _, c := range []struct {
			flow string
			r    *snapshot.Repo
			fd   *storetest.FaultyDriver
			log  *callLog
		}{{"export", from, fromFaults, fromLog}, {"copy", to, toFaults, toLog}} {
			assert.Equal(t, int64(1), c.fd.Count(storetest.LostCompletion), c.flow)
			var results []error
			for _, e := range c.log.events {
				if e.Op == "put" && e.Done && isManifestName(e.Name) {
					results = append(results, e.Err)
				}
			}
			require.Len(t, results, 2, "%s: manifest writes reaching the driver", c.flow)
			require.NoError(t, results[0], "%s: the first write landed", c.flow)
			require.ErrorIs(t, results[1], core.ErrExists, "%s: the retry met it", c.flow)
			ms, err := c.r.List(ctx, snapshot.Filter{})
			require.NoError(t, err)
			require.Len(t, ms, 1, c.flow)
			assert.Equal(t, m.ID, ms[0].ID, c.flow)
			_, err = c.r.Verify(ctx, m.ID.String(), &snapshot.VerifyOptions{ReadData: true})
			require.NoError(t, err, c.flow)
		}
	})
}
