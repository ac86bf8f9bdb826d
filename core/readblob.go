package core

import (
	"fmt"
	"io"
	"sync"
)

// ReadBlob reads a blob whole from r, the reader a [BlobSource] returned,
// and returns its bytes. It is the one step every in-memory
// [BlobBackedService] repeats in RestoreWithBlobs, and it lives here, beside
// the contract whose end-of-stream rule it implements, because core is the
// package every service already imports.
//
// size is the blob's length as the service recorded it, or a negative
// number when the service does not know it. With a known size, ReadBlob
// allocates one buffer of exactly size bytes, reads into it, and then makes
// sure the stream ends there: fewer bytes, or more, yield an error matching
// [ErrSizeMismatch]. With an unknown size, it reads through reused chunks
// and copies them once into a buffer of the final length, so no byte is
// copied more than twice and the result holds no spare capacity.
//
// ReadBlob reads until r returns io.EOF, also once it holds size bytes, so
// it never misses the error a verifying source returns in place of io.EOF
// ([ErrChecksumMismatch], [ErrSizeMismatch]; see BlobSource). It returns
// the errors of r wrapped, so errors.Is and errors.As match them. It does
// not close r, and it does not hash the bytes: a source hands over the
// recorded bytes or fails, and hashing them again would double the CPU
// cost of a restore for no new guarantee.
//
// Its errors do not name the blob; wrap them once with [NewBlobError],
// which does.
func ReadBlob(r io.Reader, size int64) ([]byte, error) {
	if size < 0 {
		return readUnknownSize(r)
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("core: read blob: %d bytes do not fit in memory: %w", size, ErrInvalid)
	}
	buf := make([]byte, size)
	n, err := fill(r, buf)
	switch {
	case err == io.EOF && n < len(buf):
		return nil, fmt.Errorf("core: read blob: got %d bytes, want %d: %w", n, size, ErrSizeMismatch)
	case err == io.EOF:
		return buf, nil
	case err != nil:
		return nil, fmt.Errorf("core: read blob: after %d of %d bytes: %w", n, size, err)
	}
	var probe [1]byte
	switch m, err := fill(r, probe[:]); {
	case m > 0:
		return nil, fmt.Errorf("core: read blob: got more than %d bytes, want %d: %w", size, size, ErrSizeMismatch)
	case err != io.EOF:
		return nil, fmt.Errorf("core: read blob: after all %d bytes: %w", size, err)
	}
	return buf, nil
}

// chunkSize is the size of the reused chunks a blob of unknown size is
// read through.
const chunkSize = 256 << 10

var chunks = sync.Pool{New: func() any { return new([chunkSize]byte) }}

// readUnknownSize reads r to the end through pooled chunks, then copies
// them into one buffer of the total length.
func readUnknownSize(r io.Reader) ([]byte, error) {
	var held []*[chunkSize]byte
	defer func() {
		for _, c := range held {
			chunks.Put(c)
		}
	}()
	total := 0
	for {
		c := chunks.Get().(*[chunkSize]byte)
		held = append(held, c)
		n, err := fill(r, c[:])
		total += n
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("core: read blob: after %d bytes: %w", total, err)
		}
	}
	out := make([]byte, total)
	for i, c := range held {
		copy(out[i*chunkSize:], c[:])
	}
	return out, nil
}

// errNoProgress is returned when a reader keeps returning no bytes and no
// error, as io.ErrNoProgress is by the standard library's readers.
var errNoProgress = fmt.Errorf("reader returned no data and no error %d times: %w", maxEmptyReads, io.ErrNoProgress)

const maxEmptyReads = 100

// fill reads into buf until it is full (nil error), r ends (io.EOF) or r
// fails (its error), and returns the number of bytes read. Unlike
// io.ReadFull, it keeps an error that arrives with the last bytes.
func fill(r io.Reader, buf []byte) (int, error) {
	n, empty := 0, 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
		if m > 0 {
			empty = 0
		} else if empty++; empty == maxEmptyReads {
			return n, errNoProgress
		}
	}
	return n, nil
}
