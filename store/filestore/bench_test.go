package filestore_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/store"
)

// BenchmarkSmallBlobPut puts new 4 KiB blobs as an export does:
// create-only, with their digest, the sync deferred to one Sync at the
// end, 16 goroutines per processor, fanned out over 256 directories.
func BenchmarkSmallBlobPut(b *testing.B) {
	root := b.TempDir()
	drv := newDriver(b, root)
	var next atomic.Uint64
	b.SetParallelism(16)
	b.SetBytes(4 << 10)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		data := make([]byte, 4<<10)
		for pb.Next() {
			binary.LittleEndian.PutUint64(data, next.Add(1))
			sum := sha256.Sum256(data)
			h := hex.EncodeToString(sum[:])
			err := drv.Put(b.Context(), "blobs/sha256/"+h[:2]+"/"+h, bytes.NewReader(data), int64(len(data)),
				store.PutOptions{CreateOnly: true, DeferSync: true, SHA256: sum[:]})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	require.NoError(b, drv.Sync(b.Context()))
}
