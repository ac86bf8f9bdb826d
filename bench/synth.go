// Package bench measures the export and import engines against raw
// baselines: the same bytes written and read by a bare loop at the same
// concurrency, with no hashing, spooling or manifest. Run it with
// `make bench`; it prints a table of throughputs, ratios and peak memory.
package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/statebucket/statebucket/core"
)

// block is the pattern blob bytes are cut from; every chunk of a blob is
// stamped with the blob's index and the chunk's, so no two chunks match.
var block = func() []byte {
	b := make([]byte, 64<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b
}()

// synthReader produces size deterministic bytes for blob id without
// holding them.
type synthReader struct {
	id, size, off int64
}

func newSynthReader(id, size int64) *synthReader { return &synthReader{id: id, size: size} }

func (r *synthReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && r.off < r.size {
		pos := r.off % int64(len(block))
		dst := p[n : n+int(min(int64(len(p)-n), r.size-r.off))]
		var c int
		if pos < 16 {
			var stamp [16]byte
			binary.LittleEndian.PutUint64(stamp[:], uint64(r.id))
			binary.LittleEndian.PutUint64(stamp[8:], uint64(r.off/int64(len(block))))
			c = copy(dst, stamp[pos:])
		} else {
			c = copy(dst, block[pos:])
		}
		n += c
		r.off += int64(c)
	}
	return n, nil
}

func (r *synthReader) Close() error { return nil }

// synthView lists the blobs of a synthService.
type synthView struct {
	Count int   `json:"count"`
	Size  int64 `json:"size"`
}

// synthService is a BlobBackedService whose blobs are generated while they
// are read and discarded while they are restored, so the heap measured is
// the engine's alone.
type synthService struct {
	count    int
	size     int64
	base     int64 // added to each blob's index to pick its bytes: another base, other blobs
	notifier core.StateChangeNotifier[synthView]
}

var _ core.BlobBackedService[synthView] = (*synthService)(nil)

func (s *synthService) ServiceName() string                            { return "synth" }
func (s *synthService) Notifier() *core.StateChangeNotifier[synthView] { return &s.notifier }

func (s *synthService) Snapshot(context.Context, string, string) (synthView, error) {
	return synthView{Count: s.count, Size: s.size}, nil
}

func (s *synthService) Restore(_ context.Context, _, _ string, v synthView) error {
	s.count, s.size = v.Count, v.Size
	return nil
}

func (s *synthService) Merge(ctx context.Context, acct, region string, v synthView) error {
	return s.Restore(ctx, acct, region, v)
}

func blobKey(i int) string { return fmt.Sprintf("bench/blob-%06d\x00v1", i) }

func (s *synthService) SnapshotWithBlobs(ctx context.Context, _, _ string, v core.BlobVisitor) (synthView, error) {
	for start := 0; start < s.count; start += core.DefaultBlobBatchSize {
		batch := make([]core.BlobExportEntry, 0, core.DefaultBlobBatchSize)
		for i := start; i < min(start+core.DefaultBlobBatchSize, s.count); i++ {
			batch = append(batch, core.BlobExportEntry{Key: blobKey(i), Reader: newSynthReader(s.base+int64(i), s.size), Size: -1})
		}
		if err := v.Visit(ctx, batch); err != nil {
			return synthView{}, err
		}
	}
	return synthView{Count: s.count, Size: s.size}, nil
}

func (s *synthService) RestoreWithBlobs(ctx context.Context, _, _ string, v synthView, src core.BlobSource) error {
	for i := range v.Count {
		rc, err := src.Fetch(ctx, blobKey(i))
		if err != nil {
			return core.NewBlobError(s.ServiceName(), blobKey(i), err)
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return core.NewBlobError(s.ServiceName(), blobKey(i), err)
		}
		if n != v.Size {
			return core.NewBlobError(s.ServiceName(), blobKey(i), fmt.Errorf("%d bytes, want %d: %w", n, v.Size, core.ErrSizeMismatch))
		}
	}
	s.count, s.size = v.Count, v.Size
	return nil
}
