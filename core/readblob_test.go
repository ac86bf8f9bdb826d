package core_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
)

// verdictError is what a verifying source returns in place of io.EOF.
type verdictError struct{ err error }

func (e *verdictError) Error() string { return "source verdict: " + e.err.Error() }
func (e *verdictError) Unwrap() error { return e.err }

// withLast returns a reader that yields data and returns err together with
// its last bytes, as some readers do.
type withLast struct {
	data []byte
	err  error
}

func (r *withLast) Read(p []byte) (int, error) {
	n := copy(p, r.data)
	r.data = r.data[n:]
	if len(r.data) == 0 {
		return n, r.err
	}
	return n, nil
}

// stalled returns no bytes and no error, forever.
type stalled struct{}

func (stalled) Read([]byte) (int, error) { return 0, nil }

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func TestReadBlob(t *testing.T) {
	data := pattern(3<<18 + 5) // three chunks and a bit when the size is unknown
	mismatch := &verdictError{core.ErrChecksumMismatch}
	tests := []struct {
		name string
		r    func() io.Reader
		size int64
		want []byte // nil: an error is expected
		is   error  // the error must match this
		as   bool   // errors.As must reach a *verdictError
		msg  string // the error names this
	}{
		{"known size", func() io.Reader { return bytes.NewReader(data) }, int64(len(data)), data, nil, false, ""},
		{"known size, one byte at a time", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data[:1000])) }, 1000, data[:1000], nil, false, ""},
		{"known size, EOF with the last bytes", func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) }, int64(len(data)), data, nil, false, ""},
		{"empty", func() io.Reader { return strings.NewReader("") }, 0, []byte{}, nil, false, ""},
		{"unknown size", func() io.Reader { return bytes.NewReader(data) }, -1, data, nil, false, ""},
		{"unknown size, one chunk exactly", func() io.Reader { return bytes.NewReader(data[:256<<10]) }, -1, data[:256<<10], nil, false, ""},
		{"unknown size, small", func() io.Reader { return iotest.HalfReader(strings.NewReader("hello")) }, -1, []byte("hello"), nil, false, ""},
		{"unknown size, empty", func() io.Reader { return strings.NewReader("") }, -1, []byte{}, nil, false, ""},
		{"short", func() io.Reader { return bytes.NewReader(data[:99]) }, 100, nil, core.ErrSizeMismatch, false, "got 99 bytes, want 100"},
		{"long", func() io.Reader { return bytes.NewReader(data[:101]) }, 100, nil, core.ErrSizeMismatch, false, "more than 100 bytes"},
		{"long by one byte after EOF-less fill", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data[:2])) }, 1, nil, core.ErrSizeMismatch, false, "more than 1 bytes"},
		{"empty but something", func() io.Reader { return strings.NewReader("x") }, 0, nil, core.ErrSizeMismatch, false, "more than 0 bytes"},
		{"fails part-way", func() io.Reader { return io.MultiReader(bytes.NewReader(data[:10]), iotest.ErrReader(mismatch)) }, 100, nil, core.ErrChecksumMismatch, true, "after 10 of 100 bytes"},
		{"verdict in place of EOF", func() io.Reader { return io.MultiReader(bytes.NewReader(data[:100]), iotest.ErrReader(mismatch)) }, 100, nil, core.ErrChecksumMismatch, true, "after all 100 bytes"},
		{"verdict with the last bytes", func() io.Reader { return &withLast{data: data[:100], err: mismatch} }, 100, nil, core.ErrChecksumMismatch, true, "after 100 of 100 bytes"},
		{"unknown size, verdict in place of EOF", func() io.Reader { return io.MultiReader(bytes.NewReader(data), iotest.ErrReader(mismatch)) }, -1, nil, core.ErrChecksumMismatch, true, "after"},
		{"stalled reader", func() io.Reader { return stalled{} }, 10, nil, io.ErrNoProgress, false, "no data and no error"},
		{"unknown size, stalled reader", func() io.Reader { return stalled{} }, -1, nil, io.ErrNoProgress, false, "no data and no error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := core.ReadBlob(tt.r(), tt.size)
			if tt.want != nil {
				require.NoError(t, err)
				assert.Equal(t, tt.want, got)
				assert.Equal(t, len(got), cap(got), "no spare capacity")
				return
			}
			require.Error(t, err)
			assert.Nil(t, got)
			require.ErrorIs(t, err, tt.is)
			if tt.as {
				var v *verdictError
				require.ErrorAs(t, err, &v)
			}
			assert.Contains(t, err.Error(), tt.msg)
			assert.True(t, strings.HasPrefix(err.Error(), "core: read blob: "), err.Error())
		})
	}
}

// The error of a service that wraps ReadBlob's with NewBlobError names the
// key once and still matches the cause.
func TestReadBlobWrappedByService(t *testing.T) {
	_, err := core.ReadBlob(strings.NewReader("abc"), 4)
	err = core.NewBlobError("s3", "b/k\x00v1", err)
	require.ErrorIs(t, err, core.ErrSizeMismatch)
	assert.Equal(t, `s3: state view: blob "b/k\x00v1": core: read blob: got 3 bytes, want 4: size mismatch`, err.Error())
	assert.False(t, errors.Is(err, core.ErrChecksumMismatch))
}
