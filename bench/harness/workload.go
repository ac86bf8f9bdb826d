package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/snapshot"
)

// The long-tail workload: tailCount blobs of log-uniform sizes between
// tailMin and tailMax, plus one of tailBig.
const (
	longTail  = "longtail"
	tailCount = 5000
	tailMin   = 1 << 10
	tailMax   = 32 << 20
	tailBig   = 512 << 20
)

// Names of the generated service and the account and region its state is
// exported under.
const (
	serviceName   = "bench"
	account, zone = "000000000000", "us-east-1"
)

// blob is one blob of a workload: its key in the view, its size, and the
// path of its file under the workload's repository (blobs/sha256/..).
type blob struct {
	Key  string `json:"key"`
	Size int64  `json:"size"`
	Path string `json:"path,omitempty"`
}

// workload is a generated data set: a statebucket file repository, Repo,
// holding one snapshot, ID, whose blobs are the workload's files.
type workload struct {
	Name  string `json:"name"`
	Repo  string `json:"repo"`
	ID    string `json:"id"`
	Blobs []blob `json:"blobs"`
}

// bytes returns the workload's total size.
func (w *workload) bytes() int64 {
	var n int64
	for _, b := range w.Blobs {
		n += b.Size
	}
	return n
}

var countTimesSize = regexp.MustCompile(`^([0-9]+)x([0-9]+)(B|KiB|MiB|GiB)$`)

// blobSizes returns the sizes of the blobs of the workload name: "NxSIZE"
// (such as 10000x4KiB, 1x1GiB) or "longtail".
func blobSizes(name string) ([]int64, error) {
	if name == longTail {
		r := rand.New(rand.NewPCG(11, 0))
		sizes := make([]int64, 0, tailCount+1)
		lo, hi := math.Log(tailMin), math.Log(tailMax)
		for range tailCount {
			sizes = append(sizes, int64(math.Exp(lo+r.Float64()*(hi-lo))))
		}
		return append(sizes, tailBig), nil
	}
	m := countTimesSize.FindStringSubmatch(name)
	if m == nil {
		return nil, fmt.Errorf("workload %q: want COUNTxSIZE (such as 10000x4KiB, 16x64MiB, 1x1GiB) or %s", name, longTail)
	}
	count, err1 := strconv.Atoi(m[1])
	size, err2 := strconv.ParseInt(m[2], 10, 64)
	if err := errors.Join(err1, err2); err != nil || count <= 0 {
		return nil, fmt.Errorf("workload %q: want a positive count and size", name)
	}
	size <<= map[string]int{"B": 0, "KiB": 10, "MiB": 20, "GiB": 30}[m[3]]
	sizes := make([]int64, count)
	for i := range sizes {
		sizes[i] = size
	}
	return sizes, nil
}

// totalSize returns the bytes of the workload name.
func totalSize(name string) (int64, error) {
	sizes, err := blobSizes(name)
	var n int64
	for _, s := range sizes {
		n += s
	}
	return n, err
}

// loadWorkload returns the workload name generated under dir, generating
// it first unless an earlier run left it complete there.
func loadWorkload(ctx context.Context, dir, name string) (*workload, error) {
	root := filepath.Join(dir, name)
	index := filepath.Join(root, "workload.json")
	if data, err := os.ReadFile(index); err == nil {
		var w workload
		if err := json.Unmarshal(data, &w); err == nil && w.Name == name && w.Repo == filepath.Join(root, "repo") {
			return &w, nil
		}
	}
	if err := os.RemoveAll(root); err != nil {
		return nil, err
	}
	w, err := generate(ctx, root, name)
	if err != nil {
		return nil, fmt.Errorf("generate workload %q: %w", name, err)
	}
	data, err := json.Marshal(w)
	if err != nil {
		return nil, err
	}
	return w, os.WriteFile(index, data, 0o644)
}

// generate exports the workload name, as the blobs of a generated
// service, into a new file repository under root.
func generate(ctx context.Context, root, name string) (*workload, error) {
	sizes, err := blobSizes(name)
	if err != nil {
		return nil, err
	}
	w := &workload{Name: name, Repo: filepath.Join(root, "repo")}
	for i, s := range sizes {
		w.Blobs = append(w.Blobs, blob{Key: fmt.Sprintf("bench/%s/blob-%06d", name, i), Size: s})
	}
	r, err := snapshot.Open(ctx, w.Repo)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	svc := &service{blobs: w.Blobs, open: func(i int) io.ReadCloser { return newPattern(uint64(i), w.Blobs[i].Size) }}
	m, err := snapshot.Export(ctx, r, svc, account, zone, nil)
	if err != nil {
		return nil, err
	}
	w.ID = m.ID.String()
	for i := range w.Blobs {
		e, ok := m.Lookup(w.Blobs[i].Key)
		if !ok {
			return nil, fmt.Errorf("blob %q missing from manifest", w.Blobs[i].Key)
		}
		w.Blobs[i].Path = repo.BlobName(e.Digest)
	}
	return w, nil
}

// pattern yields size deterministic pseudo-random bytes seeded by seed.
type pattern struct {
	rng  *rand.PCG
	left int64
	buf  [8]byte
	off  int // unread bytes of buf start at off; 8 means none
}

func newPattern(seed uint64, size int64) *pattern {
	return &pattern{rng: rand.NewPCG(seed, 0x5eed), left: size, off: 8}
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.left)]
	n := 0
	for n < len(b) {
		if p.off == 8 {
			if len(b)-n >= 8 {
				binary.LittleEndian.PutUint64(b[n:], p.rng.Uint64())
				n += 8
				continue
			}
			binary.LittleEndian.PutUint64(p.buf[:], p.rng.Uint64())
			p.off = 0
		}
		c := copy(b[n:], p.buf[p.off:])
		p.off += c
		n += c
	}
	p.left -= int64(n)
	return n, nil
}

func (p *pattern) Close() error { return nil }

// view is the state of a service: the keys and sizes of its blobs.
type view struct {
	Blobs []blob `json:"blobs"`
}

// service is a BlobBackedService over a workload's blobs. Exports read
// each blob from open; imports read every blob the engine hands them to
// the end (the engine checks its size and SHA-256 as it passes) and
// discard it: the work of a bare GET + SHA-256 loop.
type service struct {
	blobs    []blob
	open     func(i int) io.ReadCloser
	sum      func(i int) []byte // the SHA-256 of blob i, if known
	notifier core.StateChangeNotifier[view]
}

var _ core.BlobBackedService[view] = (*service)(nil)

func (s *service) ServiceName() string                       { return serviceName }
func (s *service) Notifier() *core.StateChangeNotifier[view] { return &s.notifier }

func (s *service) Snapshot(context.Context, string, string) (view, error) {
	return s.view(), nil
}

// view lists the blobs without their paths, which are not state.
func (s *service) view() view {
	v := view{Blobs: make([]blob, len(s.blobs))}
	for i, b := range s.blobs {
		v.Blobs[i] = blob{Key: b.Key, Size: b.Size}
	}
	return v
}

func (s *service) Restore(_ context.Context, _, _ string, v view) error {
	s.blobs = v.Blobs
	return nil
}

func (s *service) Merge(ctx context.Context, acct, region string, v view) error {
	return s.Restore(ctx, acct, region, v)
}

func (s *service) SnapshotWithBlobs(ctx context.Context, _, _ string, visitor core.BlobVisitor) (view, error) {
	for start := 0; start < len(s.blobs); start += core.DefaultBlobBatchSize {
		end := min(start+core.DefaultBlobBatchSize, len(s.blobs))
		batch := make([]core.BlobExportEntry, 0, end-start)
		for i := start; i < end; i++ {
			e := core.BlobExportEntry{Key: s.blobs[i].Key, Reader: s.open(i), Size: s.blobs[i].Size}
			if s.sum != nil {
				e.SHA256 = s.sum(i)
			}
			batch = append(batch, e)
		}
		if err := visitor.Visit(ctx, batch); err != nil {
			return view{}, err
		}
	}
	return s.view(), nil
}

func (s *service) RestoreWithBlobs(ctx context.Context, _, _ string, v view, src core.BlobSource) error {
	for _, b := range v.Blobs {
		rc, err := src.Fetch(ctx, b.Key)
		if err != nil {
			return core.NewBlobError(serviceName, b.Key, err)
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err == nil && n != b.Size {
			err = fmt.Errorf("%d bytes, want %d: %w", n, b.Size, core.ErrSizeMismatch)
		}
		if err != nil {
			return core.NewBlobError(serviceName, b.Key, err)
		}
	}
	return nil
}

// lazyFile opens the file at path on its first use, so that a batch of
// entries holds no descriptors until the engine reads them. Like an
// *os.File, it gives random access (ReadAt, Seek), which lets the export
// engine hash and upload the file where it lies instead of copying it.
type lazyFile struct {
	path string
	f    *os.File
}

func (l *lazyFile) open() error {
	if l.f != nil {
		return nil
	}
	f, err := os.Open(l.path)
	if err != nil {
		return err
	}
	l.f = f
	return nil
}

func (l *lazyFile) Read(p []byte) (int, error) {
	if err := l.open(); err != nil {
		return 0, err
	}
	return l.f.Read(p)
}

func (l *lazyFile) ReadAt(p []byte, off int64) (int, error) {
	if err := l.open(); err != nil {
		return 0, err
	}
	return l.f.ReadAt(p, off)
}

func (l *lazyFile) Seek(offset int64, whence int) (int64, error) {
	if err := l.open(); err != nil {
		return 0, err
	}
	return l.f.Seek(offset, whence)
}

func (l *lazyFile) Close() error {
	if l.f == nil {
		return nil
	}
	return l.f.Close()
}

// fileService returns the service whose blobs are w's files on disk. It
// declares each blob's SHA-256, which the file's name holds, as an S3
// mock declares the checksum it keeps with an object: the engine checks
// it on every blob it reads, and reads none that the repository's parent
// snapshot holds.
func fileService(w *workload) *service {
	return &service{blobs: w.Blobs,
		open: func(i int) io.ReadCloser {
			return &lazyFile{path: filepath.Join(w.Repo, filepath.FromSlash(w.Blobs[i].Path))}
		},
		sum: func(i int) []byte {
			if d, ok := repo.ParseBlobName(w.Blobs[i].Path); ok {
				return d.Sum()
			}
			return nil
		},
	}
}

// describe returns "N blobs, X MiB" for the sizes of name.
func describe(name string) string {
	sizes, err := blobSizes(name)
	if err != nil {
		return err.Error()
	}
	var n int64
	for _, s := range sizes {
		n += s
	}
	return fmt.Sprintf("%s: %d blobs, %s", name, len(sizes), strings.TrimSpace(humanBytes(n)))
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
}
