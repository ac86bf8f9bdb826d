package store

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// closeCounter is a body that counts its closes.
type closeCounter struct {
	io.Reader
	closes int
}

func (c *closeCounter) Close() error { c.closes++; return nil }

func aheadPattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*13 + i>>11)
	}
	return b
}

func TestReadAheadGivesTheBytesThenTheError(t *testing.T) {
	want := aheadPattern(5*readAheadChunk + 12345)
	for name, tail := range map[string]error{"end": nil, "failure": errors.New("connection reset")} {
		t.Run(name, func(t *testing.T) {
			var src io.Reader = bytes.NewReader(want)
			if tail != nil {
				src = io.MultiReader(src, iotest.ErrReader(tail))
			}
			body := &closeCounter{Reader: iotest.HalfReader(src)}
			r := newReadAhead(body)
			got, err := io.ReadAll(iotest.OneByteReader(io.LimitReader(r, 3*readAheadChunk)))
			require.NoError(t, err)
			rest, err := io.ReadAll(r)
			if tail != nil {
				require.ErrorIs(t, err, tail, "the body's error follows its bytes")
			} else {
				require.NoError(t, err)
			}
			assert.True(t, bytes.Equal(want, append(got, rest...)), "the bytes, in order")
			_, err = r.Read(make([]byte, 1))
			assert.Error(t, err, "a read past the end says so again")
			require.NoError(t, r.Close())
			require.NoError(t, r.Close(), "a second Close does nothing")
			assert.Equal(t, 1, body.closes)
		})
	}
}

func TestReadAheadClosedHalfWay(t *testing.T) {
	body := &closeCounter{Reader: bytes.NewReader(aheadPattern(20 * readAheadChunk))}
	r := newReadAhead(body)
	_, err := io.ReadFull(r, make([]byte, readAheadChunk/2))
	require.NoError(t, err)
	require.NoError(t, r.Close())
	select {
	case <-r.done:
	default:
		t.Fatal("the read-ahead goroutine outlived Close")
	}
	assert.Equal(t, 1, body.closes)
	_, err = r.Read(make([]byte, 1))
	assert.ErrorIs(t, err, errReadAheadClosed)
}
