package snapshot

import (
	"context"
	"fmt"
	"io"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/sources"
	"github.com/statebucket/statebucket/store"
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
	// OnBlob, if set, is called once per distinct blob checked.
	OnBlob func(size int64)
}

// Problem is one thing wrong with a snapshot.
type Problem struct {
	Key string // the blob key, or the view's or manifest's name
	Err error
}

// VerifyReport says what [Repo.Verify] checked and found.
type VerifyReport struct {
	Manifest    *manifest.Manifest
	Blobs       int   // entries in the manifest
	UniqueBlobs int   // distinct digests checked
	Bytes       int64 // bytes of the distinct blobs
	ReadData    bool
	Problems    []Problem
}

// Verify checks the snapshot named by ref: its manifest decodes and
// validates, its view matches its digest, and every blob exists with the
// recorded size (with ReadData, also the recorded digest). It returns the
// report and, if anything is wrong, an error wrapping the first problem.
func (r *Repo) Verify(ctx context.Context, ref string, opts *VerifyOptions) (*VerifyReport, error) {
	if opts == nil {
		opts = &VerifyOptions{}
	}
	hexID, err := r.resolve(ctx, ref, opts.Filter)
	if err != nil {
		return nil, fmt.Errorf("snapshot: verify %q: %w", ref, err)
	}
	m, err := r.readManifest(ctx, hexID, &opts.Manifest)
	if err != nil {
		return nil, fmt.Errorf("snapshot: verify %q: %w", ref, err)
	}
	rep := &VerifyReport{Manifest: m, Blobs: len(m.Blobs), ReadData: opts.ReadData}
	if _, err := r.readView(ctx, m); err != nil {
		rep.Problems = append(rep.Problems, Problem{Key: store.ViewName(hexID), Err: err})
	}
	unique := uniqueBlobs(m)
	rep.UniqueBlobs = len(unique.Blobs)
	for _, e := range unique.Blobs {
		rep.Bytes += e.Size
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
	rep.Problems = append(rep.Problems, problems...)
	if len(rep.Problems) > 0 {
		p := rep.Problems[0]
		return rep, fmt.Errorf("snapshot: verify %s: %d problem(s), first %q: %w", m.ID, len(rep.Problems), p.Key, p.Err)
	}
	return rep, nil
}

// uniqueBlobs returns a copy of m with one entry per digest.
func uniqueBlobs(m *manifest.Manifest) *manifest.Manifest {
	u := *m
	u.Blobs = nil
	seen := map[string]bool{}
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
	g.SetLimit(r.st.Budget().MaxRequests())
	for _, e := range m.Blobs {
		g.Go(func() error {
			hexDigest, err := store.HexFromDigest(e.Digest)
			if err != nil {
				return err
			}
			info, err := r.st.Stat(gctx, store.BlobName(hexDigest))
			if err == nil && info.Size != e.Size {
				err = &sources.MismatchError{Key: e.Key, Expected: fmt.Sprintf("%d bytes", e.Size), Actual: fmt.Sprintf("%d bytes", info.Size), Err: core.ErrSizeMismatch}
			}
			if err != nil {
				if gctx.Err() != nil {
					return context.Cause(gctx)
				}
				mu.Lock()
				problems = append(problems, Problem{Key: e.Key, Err: err})
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
	src := sources.New(r.st, m, &sources.Options{})
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
			problems = append(problems, Problem{Key: e.Key, Err: err})
		}
		if onBlob != nil {
			onBlob(e.Size)
		}
	}
	return problems, nil
}
