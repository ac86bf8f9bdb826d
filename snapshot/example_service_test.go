package snapshot_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"os"
	"slices"
	"sync"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/snapshot"
)

// notes is the smallest complete core.BlobBackedService: a mock
// note-taking service keeping, per account and region, notes whose bodies
// live in a backing store apart from the view, as an S3 mock keeps object
// bodies apart from their metadata. It follows the doc comments of the Rust
// original: RestoreWithBlobs only imports bodies into the backing store,
// and only Restore and Merge change the notes callers see.
//
// The backing store is shared by every account and region and keeps every
// body it was given, also those of a failed import: a mock lives as long as
// a test.
type notes struct {
	mu       sync.Mutex
	state    map[string]notesView // by account + "/" + region
	blobs    map[string][]byte    // the backing store: bodies by their SHA-256 in hex
	notifier core.StateChangeNotifier[notesView]
}

// notesView is the state of one account and region: a reference to the
// body of each note, by title.
type notesView struct {
	Notes map[string]noteRef `json:"notes"`
}

// noteRef names a body in the backing store, which is the blob key.
type noteRef struct {
	Blob string `json:"blob"` // the SHA-256 of the body, in hex
	Size int64  `json:"size"`
}

var _ core.BlobBackedService[notesView] = (*notes)(nil)

func newNotes() *notes {
	return &notes{state: map[string]notesView{}, blobs: map[string][]byte{}}
}

func (s *notes) ServiceName() string                            { return "notes" }
func (s *notes) Notifier() *core.StateChangeNotifier[notesView] { return &s.notifier }

// Put stores a note.
func (s *notes) Put(ctx context.Context, account, region, title, body string) {
	sum := sha256.Sum256([]byte(body))
	ref := noteRef{Blob: hex.EncodeToString(sum[:]), Size: int64(len(body))}
	s.mu.Lock()
	s.blobs[ref.Blob] = []byte(body)
	view := s.state[account+"/"+region]
	if view.Notes == nil {
		view.Notes = map[string]noteRef{}
		s.state[account+"/"+region] = view
	}
	view.Notes[title] = ref
	s.mu.Unlock()
	_ = core.NotifyStateChanged(ctx, s, account, region) // Snapshot never fails
}

// Get returns the body of a note.
func (s *notes) Get(account, region, title string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref, ok := s.state[account+"/"+region].Notes[title]
	return string(s.blobs[ref.Blob]), ok
}

func (s *notes) Snapshot(ctx context.Context, account, region string) (notesView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshotLocked(account, region), nil
}

func (s *notes) snapshotLocked(account, region string) notesView {
	view := notesView{Notes: maps.Clone(s.state[account+"/"+region].Notes)}
	if view.Notes == nil {
		view.Notes = map[string]noteRef{}
	}
	return view
}

// SnapshotWithBlobs hands over each body once, in key order.
func (s *notes) SnapshotWithBlobs(ctx context.Context, account, region string, visitor core.BlobVisitor) (notesView, error) {
	s.mu.Lock()
	view := s.snapshotLocked(account, region)
	bodies := map[string][]byte{}
	for _, ref := range view.Notes {
		bodies[ref.Blob] = s.blobs[ref.Blob] // never modified, so safe to share
	}
	s.mu.Unlock()
	for batch := range slices.Chunk(slices.Sorted(maps.Keys(bodies)), core.DefaultBlobBatchSize) {
		entries := make([]core.BlobExportEntry, len(batch))
		for i, key := range batch {
			entries[i] = core.BlobExportEntry{Key: key, Reader: io.NopCloser(bytes.NewReader(bodies[key])), Size: int64(len(bodies[key]))}
		}
		if err := visitor.Visit(ctx, entries); err != nil {
			return notesView{}, core.NewBlobError(s.ServiceName(), batch[0], err)
		}
	}
	return view, nil
}

// RestoreWithBlobs imports the bodies view references into the backing
// store, each fetched once, and leaves the notes alone.
func (s *notes) RestoreWithBlobs(ctx context.Context, account, region string, view notesView, source core.BlobSource) error {
	sizes := map[string]int64{}
	for _, ref := range view.Notes {
		sizes[ref.Blob] = ref.Size
	}
	for _, key := range slices.Sorted(maps.Keys(sizes)) {
		rc, err := source.Fetch(ctx, key)
		if err != nil {
			return core.NewBlobError(s.ServiceName(), key, err)
		}
		// One buffer of the recorded size; the source has verified the
		// bytes, or its reader fails.
		body, err := core.ReadBlob(rc, sizes[key])
		if err = errors.Join(err, rc.Close()); err != nil {
			return core.NewBlobError(s.ServiceName(), key, err)
		}
		s.mu.Lock()
		s.blobs[key] = body
		s.mu.Unlock()
	}
	return nil
}

func (s *notes) Restore(ctx context.Context, account, region string, view notesView) error {
	return s.install(ctx, account, region, view, false)
}

func (s *notes) Merge(ctx context.Context, account, region string, view notesView) error {
	return s.install(ctx, account, region, view, true)
}

// install makes view the visible state (or adds it, if merge) once every
// body it references is in the backing store; otherwise nothing changes.
func (s *notes) install(ctx context.Context, account, region string, view notesView, merge bool) error {
	s.mu.Lock()
	for title, ref := range view.Notes {
		if body, ok := s.blobs[ref.Blob]; !ok || int64(len(body)) != ref.Size {
			s.mu.Unlock()
			return core.NewBlobError(s.ServiceName(), ref.Blob,
				fmt.Errorf("note %q: body not in the backing store (call RestoreWithBlobs first): %w", title, core.ErrNotFound))
		}
	}
	next := map[string]noteRef{}
	if merge {
		maps.Copy(next, s.state[account+"/"+region].Notes)
	}
	maps.Copy(next, view.Notes)
	s.state[account+"/"+region] = notesView{Notes: next}
	s.mu.Unlock()
	return core.NotifyStateChanged(ctx, s, account, region)
}

// Write your own BlobBackedService (the smallest complete one is above),
// check it, and move its state through a repository in a local directory.
// snapshot.Import calls RestoreWithBlobs, which imports the blobs into the
// service's backing store, and then Restore (or Merge), which makes the
// view visible.
func Example_ownService() {
	ctx := context.Background()
	const account, region = "123456789012", "eu-west-1"
	dir, err := os.MkdirTemp("", "statebucket-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	r, err := snapshot.Open(ctx, dir)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	src := newNotes()
	src.Put(ctx, account, region, "groceries", "milk, eggs")
	src.Put(ctx, account, region, "todo", "write a mock")
	fmt.Println("check:", coretest.CheckBlobRoundTrip(ctx, src, newNotes(), account, region))

	m, err := snapshot.Export(ctx, r, src, account, region, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("exported", len(m.Blobs), "blobs")

	// Import replaces the state...
	dst := newNotes()
	dst.Put(ctx, account, region, "old", "replaced")
	if _, err := snapshot.Import(ctx, r, dst, account, region, m.ID.String(), nil); err != nil {
		log.Fatal(err)
	}
	view, _ := dst.Snapshot(ctx, account, region)
	for _, title := range slices.Sorted(maps.Keys(view.Notes)) {
		body, _ := dst.Get(account, region, title)
		fmt.Printf("%s: %s\n", title, body)
	}

	// ...or, with Merge, adds to it.
	dst.Put(ctx, account, region, "old", "kept")
	if _, err := snapshot.Import(ctx, r, dst, account, region, m.ID.String(), &snapshot.ImportOptions{Merge: true}); err != nil {
		log.Fatal(err)
	}
	view, _ = dst.Snapshot(ctx, account, region)
	fmt.Println("after a merge:", slices.Sorted(maps.Keys(view.Notes)))
	// Output:
	// check: <nil>
	// exported 2 blobs
	// groceries: milk, eggs
	// todo: write a mock
	// after a merge: [groceries old todo]
}
