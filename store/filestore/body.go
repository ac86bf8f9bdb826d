package filestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/store"
)

const (
	// writebackChunk is how many bytes a Put writes between two requests
	// that the system start writing them to the disk (see
	// startWriteback).
	writebackChunk = 1 << 20
	// hashAsideMin is the smallest body whose SHA-256 a Put may compute
	// on another goroutine, beside the copy, rather than between writes
	// (see hashAside).
	hashAsideMin = 4 << 20
	// hashAsideChunks is how many chunks of copyChunk bytes the copy may
	// run ahead of the hash computed beside it.
	hashAsideChunks = 4
)

// syncChunk is how many bytes a Put writes between two syncs run beside
// the copy (see copier.write): a variable for tests to lower.
var syncChunk int64 = 16 << 20

// copyBufs hold the buffers of copyChunk bytes that Puts copy bodies
// through.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyChunk); return &b }}

// largeCopies counts the Puts of this process that copy a body of
// hashAsideMin bytes or more.
var largeCopies atomic.Int32

// syncWriter is a file being written: an [os.File], or an unnamed file
// (see createUnnamed).
type syncWriter interface {
	io.Writer
	Sync() error
}

// writeBody copies size bytes of body to f, checking ctx between chunks
// and, if want is set, that their SHA-256 digest is want (unless body is
// a [store.HashedBody] of that digest), then syncs f. Unless keepCache is
// set, the pages of a body of writebackChunk bytes or more leave the
// page cache once synced (see dropCache).
//
// A content-addressed store hashes each byte it stores, and syncs it
// before the name makes it a blob; done one after the other, as a
// simple copy does them, the hash and the sync add up to twice the time
// of a copy that does neither (docs/benchmarks.md). So, once a body is
// large enough for it to matter:
//
//   - the system is asked to start writing every megabyte to the disk
//     as soon as it is written (see startWriteback), and every
//     syncChunk bytes are synced on another goroutine while the copy
//     goes on, so that the final sync waits for the last bytes only. On
//     a virtual machine, whose disk is a file of the host, a sync is
//     the host writing its own cache to the disk: without the syncs
//     beside the copy, the final one took half a second per GiB here;
//   - the SHA-256 is computed on another goroutine, beside the copy,
//     when few such copies run at once (see hashAside): one stream of
//     SHA-256 runs at about the speed at which a file is written.
//
// Neither changes what a Put promises: it returns after a sync that
// started once every byte was written, and an error of any sync fails
// it.
//
// A snapshot's blobs are written once and seldom read back soon, so the
// pages of a large body are dropped from the page cache as soon as a
// sync has made them durable: a large export does not push out of the
// cache what the machine's other programs read, and the next writes
// reuse the pages just dropped instead of taking new ones from the
// system (on this virtual machine, whose host takes back the memory its
// kernel frees, that halved the kernel's time of a 16 GiB export:
// docs/benchmarks.md). Borg drops its segment files from the cache the
// same way.
func writeBody(ctx context.Context, f syncWriter, body io.ReaderAt, size int64, want []byte, keepCache bool) (err error) {
	want = store.SHA256ToCheck(body, want)
	c := copier{ctx: ctx, f: f, src: io.NewSectionReader(body, 0, size), drop: !keepCache && size >= writebackChunk}
	defer func() { // no sync outlives the Put, which may close f
		if werr := c.waitSync(); err == nil {
			err = werr
		}
	}()
	var h hash.Hash
	if want != nil {
		h = sha256.New()
	}
	if size >= hashAsideMin {
		largeCopies.Add(1)
		defer largeCopies.Add(-1)
	}
	if h != nil && hashAside(size) {
		err = c.copyHashAside(h)
	} else {
		err = c.copy(h)
	}
	if err != nil {
		return err
	}
	if c.n < size {
		return fmt.Errorf("filestore: body ended after %d of %d bytes: %w: %w", c.n, size, core.ErrSizeMismatch, io.ErrUnexpectedEOF)
	}
	if h != nil {
		if got := h.Sum(nil); !bytes.Equal(got, want) {
			return fmt.Errorf("filestore: content has SHA-256 %x, want %x: %w", got, want, core.ErrChecksumMismatch)
		}
	}
	if err := c.waitSync(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return osError(err)
	}
	if c.drop {
		dropCache(f, 0, size)
	}
	return nil
}

// hashAside reports whether a Put of a body of size bytes is to compute
// its SHA-256 beside the copy, on a core of its own: only for a large
// body, and while the large copies of this process, this one among them,
// leave a core each for their hashes. A Put among many hashes between
// its writes, as other Puts keep the cores busy: a goroutine more per
// Put would only add its cost.
func hashAside(size int64) bool {
	return size >= hashAsideMin && 2*int(largeCopies.Load()) <= runtime.GOMAXPROCS(0)
}

// copier copies a body to a file, chunk by chunk.
type copier struct {
	ctx     context.Context
	f       syncWriter
	src     *io.SectionReader
	drop    bool  // drop the pages synced from the page cache (see dropCache)
	n       int64 // bytes written
	started int64 // bytes whose writeback was started
	synced  int64 // bytes written when the last sync beside the copy began

	syncing sync.WaitGroup // the sync beside the copy, if one runs
	running atomic.Bool    // whether one runs
	syncErr error          // the first error of the syncs beside the copy
}

// copy copies the body, hashing each chunk into h, if set, before it
// writes it.
func (c *copier) copy(h hash.Hash) error {
	pooled := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(pooled)
	buf := (*pooled)[:min(c.src.Size(), copyChunk)]
	for {
		p, more, err := c.read(buf)
		if err != nil {
			return err
		}
		if h != nil {
			h.Write(p)
		}
		if err := c.write(p); err != nil || !more {
			return err
		}
	}
}

// copyHashAside copies the body, hashing it into h on another goroutine,
// which reads each chunk while the copy writes it and reads the next
// ones. When it returns, h holds every chunk written.
func (c *copier) copyHashAside(h hash.Hash) error {
	toHash := make(chan []byte, hashAsideChunks)
	hashed := make(chan []byte, hashAsideChunks)
	go func() {
		defer close(hashed)
		for p := range toHash {
			h.Write(p)
			hashed <- p
		}
	}()
	bufs := make([]*[]byte, hashAsideChunks)
	for i := range bufs {
		bufs[i] = copyBufs.Get().(*[]byte)
	}
	defer func() {
		close(toHash)
		for range hashed { // the hash is done with every buffer
		}
		for _, b := range bufs {
			copyBufs.Put(b)
		}
	}()
	for i := 0; ; i++ {
		var buf []byte
		if i < len(bufs) {
			buf = *bufs[i]
		} else {
			buf = <-hashed // hashed, and written before it was sent
			buf = buf[:cap(buf)]
		}
		p, more, err := c.read(buf)
		if err != nil {
			return err
		}
		toHash <- p
		if err := c.write(p); err != nil || !more {
			return err
		}
	}
}

// read reads the next chunk of the body into buf, and reports whether
// more may follow.
func (c *copier) read(buf []byte) ([]byte, bool, error) {
	if err := c.ctx.Err(); err != nil {
		return nil, false, err
	}
	if c.n >= c.src.Size() {
		return nil, false, nil
	}
	m, err := c.src.Read(buf)
	switch {
	case err == io.EOF:
		return buf[:m], false, nil
	case err != nil:
		return nil, false, fmt.Errorf("filestore: read body: %w", err)
	}
	return buf[:m], true, nil
}

// write writes p, starts the writeback of every writebackChunk bytes,
// and starts a sync beside the copy every syncChunk bytes, unless one
// still runs.
func (c *copier) write(p []byte) error {
	if _, err := c.f.Write(p); err != nil {
		return osError(err)
	}
	c.n += int64(len(p))
	if c.n-c.started < writebackChunk {
		return nil
	}
	startWriteback(c.f, c.started, c.n-c.started)
	c.started = c.n
	if c.n-c.synced >= syncChunk && !c.running.Load() {
		synced := c.n
		c.synced = synced
		c.running.Store(true)
		c.syncing.Go(func() {
			defer c.running.Store(false)
			err := c.f.Sync()
			switch {
			case err != nil && c.syncErr == nil:
				c.syncErr = osError(err)
			case err == nil && c.drop:
				dropCache(c.f, 0, synced)
			}
		})
	}
	return nil
}

// waitSync waits for the sync beside the copy, if one runs, and returns
// the first error of those syncs. A failed sync must fail the Put even
// if a later one succeeds: Linux reports a lost write to one sync of a
// descriptor only.
func (c *copier) waitSync() error {
	c.syncing.Wait()
	return c.syncErr
}
