package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/sources"
)

// VerifyOptions configure [Repo.Verify]. nil means the zero value.
type VerifyOptions struct {
	// ReadData downloads every blob and checks its SHA-256 digest; without
	// it, Verify checks that every blob exists with the recorded size.
	ReadData bool
	// Filter selects the snapshot when the ref is "latest".
	Filter Filter
	// Manifest configures decoding (caps, HMAC key).
	Manifest manifest.DecodeOptions
	// OnStart, if set, is called once before any blob is checked, with
	// the number of distinct blobs Verify checks (entries that share a
	// digest share one stored blob, checked once) and their total size.
	OnStart func(blobs int, bytes int64)
	// OnBlob, if set, is called once per distinct blob checked, with its
	// size, possibly from several goroutines at once.
	OnBlob func(size int64)
}

// ProblemKind says what is wrong with the view or a blob of a snapshot.
type ProblemKind string

// The kinds of [Problem].
const (
	// ProblemMissing: the object is not in the repository.
	ProblemMissing ProblemKind = "missing"
	// ProblemSizeMismatch: the object's size is not the recorded one.
	ProblemSizeMismatch ProblemKind = "size_mismatch"
	// ProblemChecksumMismatch: the object's SHA-256 is not the recorded
	// digest.
	ProblemChecksumMismatch ProblemKind = "checksum_mismatch"
	// ProblemUnreadable: the object could not be read or checked, for
	// another reason given by the error.
	ProblemUnreadable ProblemKind = "unreadable"
)

// Problem is one thing wrong with a snapshot: its view, or a stored blob.
type Problem struct {
	// View is true for a problem with the snapshot's view, false for one
	// with a blob.
	View bool
	// Key is the blob's key; empty for the view. Entries that share a
	// digest share one stored blob, reported once, under the first of
	// their keys in manifest order.
	Key string
	// Digest is the recorded digest of the view or blob.
	Digest digest.Digest
	// Kind says what is wrong.
	Kind ProblemKind
	// Err is the error found, naming the object or key.
	Err error
}

// newProblem returns the Problem err reports about the blob of key and
// digest, or about the view when view is true.
func newProblem(view bool, key string, d digest.Digest, err error) Problem {
	kind := ProblemUnreadable
	switch {
	case errors.Is(err, core.ErrChecksumMismatch):
		kind = ProblemChecksumMismatch
	case errors.Is(err, core.ErrSizeMismatch):
		kind = ProblemSizeMismatch
	case repo.IsNotFound(err):
		kind = ProblemMissing
	}
	return Problem{View: view, Key: key, Digest: d, Kind: kind, Err: err}
}

// VerifyReport says what [Repo.Verify] checked and found.
type VerifyReport struct {
	Manifest    *manifest.Manifest
	Blobs       int   // entries in the manifest
	UniqueBlobs int   // distinct digests checked
	Bytes       int64 // bytes of the distinct blobs
	ReadData    bool
	Problems    []Problem // the view's first, then the blobs' by key
}

// Verify checks the snapshot named by ref (see [Repo.Show]): its manifest
// decodes and validates, its view matches its digest, and every distinct
// blob exists with the recorded size (with ReadData, also the recorded
// digest). It returns the report and, if anything is wrong, an error
// wrapping the first problem. A manifest that fails is an error matching
// core.ErrCorrupt, with no report.
func (r *Repo) Verify(ctx context.Context, ref string, opts *VerifyOptions) (*VerifyReport, error) {
	if opts == nil {
		opts = &VerifyOptions{}
	}
	m, err := r.lookup(ctx, ref, opts.Filter, &opts.Manifest)
	if err != nil {
		return nil, fmt.Errorf("snapshot: verify: %w", err)
	}
	rep := &VerifyReport{Manifest: m, Blobs: len(m.Blobs), ReadData: opts.ReadData}
	if _, err := r.r.ReadView(ctx, m); err != nil {
		rep.Problems = append(rep.Problems, newProblem(true, "", m.View.Digest, err))
	}
	unique := uniqueBlobs(m)
	rep.UniqueBlobs = len(unique.Blobs)
	for _, e := range unique.Blobs {
		rep.Bytes += e.Size
	}
	if opts.OnStart != nil {
		opts.OnStart(rep.UniqueBlobs, rep.Bytes)
	}
	var problems []Problem
	if opts.ReadData {
		problems, err = r.readBlobs(ctx, unique, opts.OnBlob)
	} else {
		problems, err = r.statBlobs(ctx, unique, opts.OnBlob)
	}
	if err != nil {
		return rep, fmt.Errorf("snapshot: verify %s: %w", m.ID, err)
	}
	sort.Slice(problems, func(i, j int) bool { return problems[i].Key < problems[j].Key })
	rep.Problems = append(rep.Problems, problems...)
	if len(rep.Problems) > 0 {
		p := rep.Problems[0]
		what := "the view"
		if !p.View {
			what = fmt.Sprintf("blob %q", p.Key)
		}
		return rep, fmt.Errorf("snapshot: verify %s: %d problem(s), first with %s: %w", m.ID, len(rep.Problems), what, p.Err)
	}
	return rep, nil
}

// uniqueBlobs returns a copy of m with one entry per digest.
func uniqueBlobs(m *manifest.Manifest) *manifest.Manifest {
	u := *m
	u.Blobs = nil
	seen := map[digest.Digest]bool{}
	for _, e := range m.Blobs {
		if !seen[e.Digest] {
			seen[e.Digest] = true
			u.Blobs = append(u.Blobs, e)
		}
	}
	return &u
}

func (r *Repo) statBlobs(ctx context.Context, m *manifest.Manifest, onBlob func(int64)) ([]Problem, error) {
	var mu sync.Mutex
	var problems []Problem
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.r.Budget().MaxRequests())
	for _, e := range m.Blobs {
		g.Go(func() error {
			size, err := r.r.StatBlob(gctx, e.Digest)
			if err == nil && size != e.Size {
				err = &repo.MismatchError{Key: e.Key, Expected: fmt.Sprintf("%d bytes", e.Size), Actual: fmt.Sprintf("%d bytes", size), Err: core.ErrSizeMismatch}
			}
			if err != nil {
				if gctx.Err() != nil {
					return context.Cause(gctx)
				}
				mu.Lock()
				problems = append(problems, newProblem(false, e.Key, e.Digest, err))
				mu.Unlock()
			}
			if onBlob != nil {
				onBlob(e.Size)
			}
			return nil
		})
	}
	return problems, g.Wait()
}

// readBlobs downloads every blob of m through the import engine, which
// verifies size and digest, and discards the bytes.
func (r *Repo) readBlobs(ctx context.Context, m *manifest.Manifest, onBlob func(int64)) ([]Problem, error) {
	src := sources.New(r.r, m, &sources.Options{})
	defer src.Close()
	var problems []Problem
	for _, e := range m.Blobs {
		rc, err := src.Fetch(ctx, e.Key)
		if err == nil {
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
		}
		if err != nil {
			if ctx.Err() != nil {
				return problems, context.Cause(ctx)
			}
			problems = append(problems, newProblem(false, e.Key, e.Digest, err))
		}
		if onBlob != nil {
			onBlob(e.Size)
		}
	}
	return problems, nil
}
