package snapshot_test

import (
	"context"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/snapshot"
)

const testAccount, testRegion = "123456789012", "eu-west-1"

// replacingNotes is shaped like the Rust original's own S3 and EBS mocks:
// its RestoreWithBlobs imports the blobs and then replaces the state with
// the view itself.
type replacingNotes struct{ *notes }

func (s replacingNotes) RestoreWithBlobs(ctx context.Context, account, region string, view notesView, source core.BlobSource) error {
	if err := s.notes.RestoreWithBlobs(ctx, account, region, view, source); err != nil {
		return err
	}
	return s.notes.Restore(ctx, account, region, view)
}

// notesService is either shape.
type notesService interface {
	core.BlobBackedService[notesView]
	Put(ctx context.Context, account, region, title, body string)
}

var shapes = []struct {
	name string
	new  func() notesService
}{
	{"ported from the original's doc comments", func() notesService { return newNotes() }},
	{"shaped like the original's S3 mock", func() notesService { return replacingNotes{newNotes()} }},
}

// exportNotes exports a few notes into a fresh local repository in dir.
func exportNotes(t *testing.T, dir string) (*snapshot.Repo, *manifest.Manifest, *notes) {
	t.Helper()
	r, err := snapshot.Open(t.Context(), dir)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	src := newNotes()
	for i, body := range []string{"alpha", "bravo", "charlie", "delta", strings.Repeat("echo ", 1000)} {
		src.Put(t.Context(), testAccount, testRegion, string(rune('a'+i)), body)
	}
	m, err := snapshot.Export(t.Context(), r, src, testAccount, testRegion, nil)
	require.NoError(t, err)
	require.Len(t, m.Blobs, 5)
	return r, m, src
}

func notesJSON(t *testing.T, svc core.StatefulService[notesView]) notesView {
	t.Helper()
	view, err := svc.Snapshot(t.Context(), testAccount, testRegion)
	require.NoError(t, err)
	return view
}

// A service of either shape round-trips through Import: the notes and
// their bodies are the exported ones, and what was there before is gone.
func TestImportRoundTripsBothShapes(t *testing.T) {
	for _, shape := range shapes {
		t.Run(shape.name, func(t *testing.T) {
			r, m, src := exportNotes(t, t.TempDir())
			dst := shape.new()
			dst.Put(t.Context(), testAccount, testRegion, "old", "replaced")
			_, err := snapshot.Import(t.Context(), r, dst, testAccount, testRegion, m.ID.String(), nil)
			require.NoError(t, err)
			assert.Equal(t, notesJSON(t, src), notesJSON(t, dst))
			require.NoError(t, coretest.CheckBlobRoundTrip(t.Context(), src, dst, testAccount, testRegion))
		})
	}
}

// With Merge, a service whose RestoreWithBlobs leaves the visible state
// alone keeps the notes it had; one that replaces its state there ends up
// holding the snapshot alone, as ImportOptions.Merge documents.
func TestImportMerges(t *testing.T) {
	r, m, src := exportNotes(t, t.TempDir())
	want := notesJSON(t, src)
	for i, shape := range shapes {
		t.Run(shape.name, func(t *testing.T) {
			dst := shape.new()
			dst.Put(t.Context(), testAccount, testRegion, "old", "kept")
			dst.Put(t.Context(), testAccount, testRegion, "a", "overwritten by the snapshot")
			_, err := snapshot.Import(t.Context(), r, dst, testAccount, testRegion, m.ID.String(), &snapshot.ImportOptions{Merge: true})
			require.NoError(t, err)
			got := notesJSON(t, dst)
			if i == 0 {
				assert.Equal(t, append(slices.Sorted(maps.Keys(want.Notes)), "old"), slices.Sorted(maps.Keys(got.Notes)))
				assert.Equal(t, want.Notes["a"], got.Notes["a"], "a note in both takes the snapshot's")
				return
			}
			assert.Equal(t, want, got)
		})
	}
}

// The reference mock merges through Import too.
func TestImportMergesIntoTheReferenceMock(t *testing.T) {
	ctx := t.Context()
	r, err := snapshot.Open(ctx, t.TempDir())
	require.NoError(t, err)
	defer r.Close()
	src := coretest.NewObjectStore()
	require.NoError(t, src.CreateBucket(ctx, testAccount, testRegion, "new", true))
	_, err = src.PutObject(ctx, testAccount, testRegion, "new", "k", []byte("from the snapshot"))
	require.NoError(t, err)
	m, err := snapshot.Export(ctx, r, src, testAccount, testRegion, nil)
	require.NoError(t, err)

	dst := coretest.NewObjectStore()
	require.NoError(t, dst.CreateBucket(ctx, testAccount, testRegion, "old", false))
	_, err = dst.PutObject(ctx, testAccount, testRegion, "old", "k", []byte("kept"))
	require.NoError(t, err)
	_, err = snapshot.Import(ctx, r, dst, testAccount, testRegion, m.ID.String(), &snapshot.ImportOptions{Merge: true})
	require.NoError(t, err)
	for bucket, want := range map[string]string{"new": "from the snapshot", "old": "kept"} {
		got, err := dst.GetObject(ctx, testAccount, testRegion, bucket, "k")
		require.NoError(t, err)
		assert.Equal(t, want, string(got))
	}
}

// flipLastBlob flips a byte of the blob stored last in name order under
// dir, and returns its name: the digest in hex, which is also the key of
// the last note body the notes service fetches.
func flipLastBlob(t *testing.T, dir string) string {
	t.Helper()
	var paths []string
	require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && len(d.Name()) == 64 && strings.Trim(d.Name(), "0123456789abcdef") == "" {
			paths = append(paths, path)
		}
		return err
	}))
	require.Len(t, paths, 5)
	slices.SortFunc(paths, func(a, b string) int { return strings.Compare(filepath.Base(a), filepath.Base(b)) })
	last := paths[len(paths)-1]
	data, err := os.ReadFile(last)
	require.NoError(t, err)
	data[len(data)/2] ^= 0x01
	require.NoError(t, os.WriteFile(last, data, 0o600))
	return filepath.Base(last)
}

// A failed import leaves the visible state as it was, whichever shape the
// service has and whether it replaces or merges: every blob is fetched and
// verified before Restore or Merge runs.
func TestFailedImportLeavesVisibleStateAlone(t *testing.T) {
	for _, merge := range []bool{false, true} {
		for _, shape := range shapes {
			t.Run(map[bool]string{false: "replace", true: "merge"}[merge]+"/"+shape.name, func(t *testing.T) {
				dir := t.TempDir()
				r, m, _ := exportNotes(t, dir)
				corrupt := flipLastBlob(t, dir)

				dst := shape.new()
				dst.Put(t.Context(), testAccount, testRegion, "old", "still here")
				before := notesJSON(t, dst)
				notified := 0
				defer dst.Notifier().Subscribe(func(context.Context, string, string, notesView) { notified++ })()

				_, err := snapshot.Import(t.Context(), r, dst, testAccount, testRegion, m.ID.String(), &snapshot.ImportOptions{Merge: merge})
				require.ErrorIs(t, err, core.ErrChecksumMismatch)
				var mismatch *repo.MismatchError
				require.ErrorAs(t, err, &mismatch)
				var sve *core.StateViewError
				require.ErrorAs(t, err, &sve)
				assert.Equal(t, corrupt, sve.Key)
				assert.Equal(t, before, notesJSON(t, dst))
				assert.Zero(t, notified)
			})
		}
	}
}

// Import calls RestoreWithBlobs, then Restore or Merge with the same view,
// and neither when RestoreWithBlobs fails; an error of Restore or Merge is
// returned wrapped.
func TestImportCallOrder(t *testing.T) {
	r, m, _ := exportNotes(t, t.TempDir())
	tests := []struct {
		name       string
		merge      bool
		failImport bool
		failApply  bool
		want       []string
	}{
		{"restore", false, false, false, []string{"RestoreWithBlobs", "Restore"}},
		{"merge", true, false, false, []string{"RestoreWithBlobs", "Merge"}},
		{"import fails", false, true, false, []string{"RestoreWithBlobs"}},
		{"restore fails", false, false, true, []string{"RestoreWithBlobs", "Restore"}},
		{"merge fails", true, false, true, []string{"RestoreWithBlobs", "Merge"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &recordingNotes{notes: newNotes(), failImport: tt.failImport, failApply: tt.failApply}
			_, err := snapshot.Import(t.Context(), r, svc, testAccount, testRegion, m.ID.String(), &snapshot.ImportOptions{Merge: tt.merge})
			assert.Equal(t, tt.want, svc.calls)
			if !tt.failImport && !tt.failApply {
				require.NoError(t, err)
				assert.Equal(t, svc.views[0], svc.views[1], "the same view twice")
				return
			}
			require.ErrorIs(t, err, core.ErrPermission)
			assert.Contains(t, err.Error(), "snapshot: import "+m.ID)
		})
	}
}

// recordingNotes records the calls Import makes, and fails on request.
type recordingNotes struct {
	*notes
	failImport, failApply bool
	calls                 []string
	views                 []notesView
}

func (s *recordingNotes) record(call string, view notesView, fail bool) error {
	s.calls = append(s.calls, call)
	s.views = append(s.views, view)
	if fail {
		return core.ErrPermission
	}
	return nil
}

func (s *recordingNotes) RestoreWithBlobs(ctx context.Context, account, region string, view notesView, source core.BlobSource) error {
	if err := s.record("RestoreWithBlobs", view, s.failImport); err != nil {
		return err
	}
	return s.notes.RestoreWithBlobs(ctx, account, region, view, source)
}

func (s *recordingNotes) Restore(ctx context.Context, account, region string, view notesView) error {
	if err := s.record("Restore", view, s.failApply); err != nil {
		return err
	}
	return s.notes.Restore(ctx, account, region, view)
}

func (s *recordingNotes) Merge(ctx context.Context, account, region string, view notesView) error {
	if err := s.record("Merge", view, s.failApply); err != nil {
		return err
	}
	return s.notes.Merge(ctx, account, region, view)
}
