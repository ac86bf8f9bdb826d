package integration_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/core/coretest"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
	"github.com/statebucket/statebucket/repo"
	"github.com/statebucket/statebucket/snapshot"
	"github.com/statebucket/statebucket/store"
)

// maxHeapGrowth bounds the heap a read-only command may take over a
// hostile repository.
const maxHeapGrowth = 64 << 20

// allocated runs fn and returns the bytes allocated on the heap while it
// ran (runtime.MemStats.TotalAlloc): at least the heap's peak growth over
// the call, measured, whatever the garbage collector freed in between.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// openCounted opens the repository at rawURL and counts the reads of
// blobs and views that reach its driver.
func openCounted(t *testing.T, rawURL string) (*snapshot.Repo, *atomic.Int64) {
	t.Helper()
	var reads atomic.Int64
	r := openWrapped(t, rawURL, func(d store.Driver) store.Driver {
		return &tapDriver{Driver: d, on: func(e tapEvent) {
			_, blob := repo.ParseBlobName(e.Name)
			_, view := repo.ParseViewName(e.Name)
			if !e.Done && (e.Op == "get" || e.Op == "get-range") && (blob || view) {
				reads.Add(1)
			}
		}}
	}, nil)
	return r, &reads
}

// refuseEverywhere runs ls, show, import and verify (with read-data) of
// the snapshot id in r, which holds a hostile manifest: each must fail
// with an error matching core.ErrCorrupt that contains want, read no
// blob and no view, and allocate less than maxHeapGrowth. It returns the
// number of commands run.
func refuseEverywhere(t *testing.T, r *snapshot.Repo, reads *atomic.Int64, id digest.Digest, want string) int {
	t.Helper()
	ctx := t.Context()
	commands := []struct {
		name string
		run  func() error
	}{
		{"ls", func() error {
			ms, err := r.List(ctx, snapshot.Filter{})
			for _, m := range ms {
				assert.NotEqual(t, id, m.ID, "ls lists the hostile snapshot")
			}
			return err
		}},
		{"show", func() error { _, err := r.Show(ctx, id.String(), snapshot.Filter{}); return err }},
		{"import", func() error {
			_, err := snapshot.Import(ctx, r, coretest.NewObjectStore(), acct, region, id.String(), nil)
			return err
		}},
		{"verify", func() error {
			_, err := r.Verify(ctx, id.String(), &snapshot.VerifyOptions{ReadData: true})
			return err
		}},
	}
	for _, c := range commands {
		var err error
		heap := allocated(func() { err = c.run() })
		require.ErrorIs(t, err, core.ErrCorrupt, c.name)
		assert.Contains(t, err.Error(), want, c.name)
		assert.Less(t, heap, uint64(maxHeapGrowth), "%s allocated %d MiB", c.name, heap>>20)
		assert.Zero(t, reads.Load(), "%s read blobs or views", c.name)
		t.Logf("%s: refused, %d KiB allocated, no blob read: %v", c.name, heap>>10, err)
	}
	return len(commands)
}

// TestHostileHugeBlob places a valid manifest that claims a blob of
// 1 TiB (with its view) in a repository: ls, show, import and verify
// refuse it from the manifest alone, before any download, in bounded
// memory.
func TestHostileHugeBlob(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		rawURL, _ := b.newRepo(t)
		r, reads := openCounted(t, rawURL)
		view := []byte(`{}`)
		m, err := manifest.New("s3", acct, region, manifest.Object{Digest: digest.FromBytes(view), Size: int64(len(view))},
			[]manifest.Entry{{Key: "huge", Digest: digest.FromBytes([]byte("huge")), Size: 1 << 40}})
		require.NoError(t, err)
		data, err := manifest.Encode(m)
		require.NoError(t, err)
		require.NoError(t, r.Store().PutBytes(t.Context(), repo.ManifestName(m.ID), data, store.PutOptions{}))
		require.NoError(t, r.Store().PutBytes(t.Context(), repo.ViewName(m.ID), view, store.PutOptions{}))
		n := refuseEverywhere(t, r, reads, m.ID, "MaxTotalSize")
		t.Logf("%s: a 1 TiB blob refused by %d commands", b.name, n)
	})
}

// forgedEntry is the width of every blob entry writeForgedManifest
// writes, comma included.
var forgedEntry = len(forgedBlock(1))

// forgedBlock returns n blob entries, each followed by a comma, with
// keys "k" and i in 13 digits, and digests made of i: the block that
// writeForgedManifest writes again and again, numbering its keys in the
// first 4 digits.
func forgedBlock(n int) []byte {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"key":"k%013d","digest":"sha256:%064x","size":1},`, i, i)
	}
	return []byte(b.String())
}

// writeForgedManifest writes to w the JSON of a manifest of id with
// 10,000 × blocks blob entries, made as they are written, so that there
// may be far more than memory holds. The keys are distinct and sorted;
// the id is not the digest of the content: nothing that reads it may get
// that far.
func writeForgedManifest(w io.Writer, id digest.Digest, blocks int) error {
	const perBlock = 10_000
	bw := bufio.NewWriterSize(w, 1<<20)
	fmt.Fprintf(bw, `{"format":%q,"id":%q,"created":"2026-01-01T00:00:00Z","producer":"forger","producer_version":"0",`+
		`"service":"s3","account":%q,"region":%q,"view":{"digest":%q,"size":2},"blobs":[`,
		manifest.Format, id, acct, region, digest.FromBytes([]byte(`{}`)))
	block := forgedBlock(perBlock)
	const keyAt = len(`{"key":"k`) // the block number's 4 digits start the key
	for b := range blocks {
		for e := range perBlock {
			for j, v := 3, b; j >= 0; j, v = j-1, v/10 {
				block[e*forgedEntry+keyAt+j] = byte('0' + v%10)
			}
		}
		if b == blocks-1 {
			block = block[:len(block)-1] // no comma after the last entry
		}
		if _, err := bw.Write(block); err != nil {
			return err
		}
	}
	bw.WriteString("]}")
	return bw.Flush()
}

// TestHostileTenMillionEntries places a manifest of 10,000,000 blob
// entries (1.1 GB of JSON, generated as it is written) in a directory
// repository: ls, show, import and verify refuse it from its size, before
// reading it, in bounded memory.
func TestHostileTenMillionEntries(t *testing.T) {
	const entries = 10_000_000
	// The JSON is a manifest's: a small one decodes up to its forged id.
	var small bytes.Buffer
	require.NoError(t, writeForgedManifest(&small, digest.FromBytes(nil), 2))
	_, err := manifest.Decode(small.Bytes(), nil)
	var ve *manifest.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, "id", ve.Field, "%v", err)

	dir := filepath.Join(t.TempDir(), "repo")
	r, reads := openCounted(t, dir)
	id := digest.FromBytes([]byte("ten million"))
	path := filepath.Join(dir, filepath.FromSlash(repo.ManifestName(id)))
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o777))
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, writeForgedManifest(f, id, entries/10_000))
	require.NoError(t, f.Close())
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Greater(t, fi.Size(), int64(entries*forgedEntry-1))
	n := refuseEverywhere(t, r, reads, id, "limit")
	t.Logf("a manifest of %d entries (%d MB) refused by %d commands", entries, fi.Size()>>20, n)
}

// TestHostileGigabyteManifests places eight sparse manifest.json files of
// 1 GiB each in a directory repository, beside a valid snapshot: ls
// lists the valid one, flags the eight, reads none of them, and stays in
// bounded memory.
func TestHostileGigabyteManifests(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "repo")
	r, reads := openCounted(t, dir)
	svc := coretest.NewObjectStore()
	_, _, err := coretest.Fill(ctx, svc, acct, region, coretest.FillOptions{Objects: 10})
	require.NoError(t, err)
	valid, err := snapshot.Export(ctx, r, svc, acct, region, nil)
	require.NoError(t, err)
	var hostile []digest.Digest
	for i := range 8 {
		id := digest.FromBytes([]byte{byte(i)})
		hostile = append(hostile, id)
		path := filepath.Join(dir, filepath.FromSlash(repo.ManifestName(id)))
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o777))
		require.NoError(t, os.WriteFile(path, nil, 0o666))
		require.NoError(t, os.Truncate(path, 1<<30))
	}
	reads.Store(0)

	var ms []*manifest.Manifest
	heap := allocated(func() { ms, err = r.List(ctx, snapshot.Filter{}) })
	require.Len(t, ms, 1)
	assert.Equal(t, valid.ID, ms[0].ID)
	var lerr *snapshot.ListError
	require.ErrorAs(t, err, &lerr)
	require.Len(t, lerr.Invalid, len(hostile))
	for _, s := range lerr.Invalid {
		assert.Contains(t, hostile, s.ID)
		assert.ErrorIs(t, s.Err, core.ErrCorrupt)
		assert.Contains(t, s.Err.Error(), "larger than the")
	}
	assert.Less(t, heap, uint64(maxHeapGrowth), "ls allocated %d MiB", heap>>20)
	assert.Zero(t, reads.Load())
	t.Logf("ls over 8 GiB of forged manifests: %d KiB allocated, %d flagged", heap>>10, len(lerr.Invalid))
}

// treeOf returns what lies under dir: each path, relative to dir, with
// the target of a link, the digest of a file's content, or "dir".
func treeOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			tree[rel] = "link to " + target
			return err
		case e.IsDir():
			tree[rel] = "dir"
		default:
			data, err := os.ReadFile(p)
			sum := sha256.Sum256(data)
			tree[rel] = hex.EncodeToString(sum[:])
			return err
		}
		return nil
	}))
	return tree
}

// TestHostileLinksAndPaths plants symbolic links in a directory
// repository where its folders and objects belong, pointing at another
// repository outside it (a snapshot there, its tags, its blobs), and
// runs every command over it, with refs and tag names that climb out of
// the root. Nothing is read through a link (what lies behind one is
// neither listed nor imported), nothing is written outside the root, and
// every link stays as it was. The state exported has keys such as
// "../../etc/passwd": every file under the root has a name of the
// layout.
func TestHostileLinksAndPaths(t *testing.T) {
	for _, plant := range []struct {
		name string
		// link returns where in root a link goes, and where it points,
		// for the snapshot other committed in the outside repository.
		link func(root, outside string, other digest.Digest) (at, to string)
	}{
		{"blobs folder", func(root, outside string, _ digest.Digest) (string, string) {
			return filepath.Join(root, "blobs"), filepath.Join(outside, "blobs")
		}},
		{"snapshot folder", func(root, outside string, other digest.Digest) (string, string) {
			at := filepath.Join(root, filepath.FromSlash(repo.ManifestName(other)))
			return filepath.Dir(at), filepath.Dir(filepath.Join(outside, filepath.FromSlash(repo.ManifestName(other))))
		}},
		{"manifest.json", func(root, outside string, other digest.Digest) (string, string) {
			name := filepath.FromSlash(repo.ManifestName(other))
			return filepath.Join(root, name), filepath.Join(outside, name)
		}},
		{"tags folder", func(root, outside string, _ digest.Digest) (string, string) {
			return filepath.Join(root, "tags"), filepath.Join(outside, "tags")
		}},
		{"locks folder", func(root, outside string, _ digest.Digest) (string, string) {
			return filepath.Join(root, "locks"), filepath.Join(outside, "locks")
		}},
	} {
		t.Run(plant.name, func(t *testing.T) {
			testHostileLink(t, plant.link)
		})
	}
}

func testHostileLink(t *testing.T, link func(root, outside string, other digest.Digest) (at, to string)) {
	ctx := t.Context()
	base := t.TempDir()
	root, outside := filepath.Join(base, "repo"), filepath.Join(base, "outside")
	state := func(seed int64) *coretest.ObjectStore {
		svc := coretest.NewObjectStore()
		_, _, err := coretest.Fill(ctx, svc, acct, region, coretest.FillOptions{Objects: 30, Seed: seed, Hostile: true})
		require.NoError(t, err)
		return svc
	}
	mine, theirs := state(1), state(2)

	// Outside: a repository with a snapshot of theirs, tagged, and a lock
	// directory. Inside: a snapshot of mine, tagged, and then the link.
	other, err := snapshot.Open(ctx, outside)
	require.NoError(t, err)
	defer other.Close()
	otherM, err := snapshot.Export(ctx, other, theirs, acct, region, &snapshot.ExportOptions{Tag: "theirs"})
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(outside, "locks"), 0o777))
	r, err := snapshot.Open(ctx, root)
	require.NoError(t, err)
	defer r.Close()
	mineM, err := snapshot.Export(ctx, r, mine, acct, region, &snapshot.ExportOptions{Tag: "mine"})
	require.NoError(t, err)
	at, to := link(root, outside, otherM.ID)
	require.NoError(t, os.RemoveAll(at))
	require.NoError(t, os.MkdirAll(filepath.Dir(at), 0o777))
	require.NoError(t, os.Symlink(to, at))
	before := treeOf(t, outside)

	// Every command, over the link and with refs that climb out.
	ms, _ := r.List(ctx, snapshot.Filter{})
	var listed []digest.Digest
	for _, m := range ms {
		listed = append(listed, m.ID)
	}
	assert.Equal(t, []digest.Digest{mineM.ID}, listed, "ls lists the snapshot behind the link, or not the one before it")
	tags, _ := r.Tags(ctx, nil)
	runs := 2
	for _, tag := range tags {
		assert.NotEqual(t, "theirs", tag.Name, "the tag behind the link is listed")
	}
	for _, ref := range []string{otherM.ID.String(), "theirs", "../outside/tags/theirs", "../../outside", "snapshots/../../outside", "/etc/passwd", "..", "mine"} {
		if ref != "mine" {
			_, err := snapshot.Import(ctx, r, coretest.NewObjectStore(), acct, region, ref, nil)
			runs++
			require.Error(t, err, "import %q", ref)
		}
		_, _ = r.Show(ctx, ref, snapshot.Filter{})
		_, _ = r.Verify(ctx, ref, &snapshot.VerifyOptions{ReadData: true})
		runs += 2
		for _, tag := range []string{"../escape", "../../outside/tags/theirs", "ok-tag"} {
			_, err := r.Tag(ctx, tag, ref, nil)
			runs++
			if strings.Contains(tag, "/") {
				require.ErrorIs(t, err, core.ErrInvalid, "tag %q", tag)
			}
		}
	}
	for _, svc := range []*coretest.ObjectStore{mine, theirs} {
		_, _ = snapshot.Export(ctx, r, svc, acct, region, &snapshot.ExportOptions{Tag: "again"})
	}
	_, _ = snapshot.Copy(ctx, other, r, []string{"theirs"}, nil)
	runs += 3

	assert.Equal(t, before, treeOf(t, outside), "something changed outside the root")
	got, err := os.Readlink(at)
	require.NoError(t, err, "the link was replaced")
	assert.Equal(t, to, got)
	entries, err := os.ReadDir(base)
	require.NoError(t, err)
	require.Len(t, entries, 2, "something was written beside the root")
	for path, what := range treeOf(t, root) {
		name := filepath.ToSlash(path)
		if what == "dir" || name == "." || strings.HasPrefix(what, "link to ") {
			continue
		}
		_, blob := repo.ParseBlobName(name)
		_, view := repo.ParseViewName(name)
		_, tag := repo.ParseTagName(name)
		assert.True(t, blob || view || isManifestName(name) || tag || isHeadName(name), "%q is no name of the layout", name)
	}
	t.Logf("%d commands over the link and with climbing refs: nothing outside changed, the link stayed", runs)
}
