package coretest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/statebucket/statebucket/core"
)

// ObjectStoreView is the state view of one account and region of an
// [ObjectStore]. It is deterministic: identical state yields an identical
// view and identical JSON. Buckets are sorted by name bytes, objects by key
// bytes, versions oldest first; names and keys are [RawString] values, so
// the view survives a JSON round trip byte-exact even when they are not
// valid UTF-8. Snapshots hold empty, never nil, slices.
type ObjectStoreView struct {
	Buckets []BucketView `json:"buckets"`
}

// BucketView is one bucket of an [ObjectStoreView].
type BucketView struct {
	Name      RawString `json:"name"`
	Versioned bool      `json:"versioned"`
	// Clock is the bucket's logical clock: the number of writes so far.
	// Version IDs and Modified stamps are drawn from it, so it is state.
	Clock   uint64       `json:"clock"`
	Objects []ObjectView `json:"objects"`
}

// ObjectView is one object of a [BucketView], with at least one version.
type ObjectView struct {
	Key      RawString     `json:"key"`
	Versions []VersionView `json:"versions"` // oldest first; the last is the latest
}

// VersionView is one version of an object. A delete marker has no bytes:
// its Size is 0 and its SHA256 and Blob are empty. Any other version's
// bytes are the blob named Blob, which must be BlobKey(bucket, key,
// VersionID).
type VersionView struct {
	VersionID string `json:"version_id"` // valid UTF-8 without NUL
	// Modified is the bucket's clock at the write: a deterministic stamp,
	// not a time. It is at most the bucket's Clock.
	Modified     uint64    `json:"modified"`
	DeleteMarker bool      `json:"delete_marker,omitempty"`
	Size         int64     `json:"size"`
	SHA256       string    `json:"sha256,omitempty"` // lowercase hex of the bytes
	Blob         RawString `json:"blob,omitempty"`
}

// blobRef is a blob to hand to a visitor.
type blobRef struct {
	key  string
	data []byte
}

// Snapshot returns the view of accountID in region. It never fails.
func (s *ObjectStore) Snapshot(ctx context.Context, accountID, region string) (ObjectStoreView, error) {
	view, _ := s.snapshot(accountID, region, false)
	return view, nil
}

// snapshot builds the view under the read lock and, if withBlobs, the
// blobs it references in view order. Stored slices are never modified, so
// the blobs are shared, not copied.
func (s *ObjectStore) snapshot(accountID, region string, withBlobs bool) (ObjectStoreView, []blobRef) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	view := ObjectStoreView{Buckets: []BucketView{}}
	rs := s.regions[scope{accountID, region}]
	if rs == nil {
		return view, nil
	}
	var blobs []blobRef
	for _, name := range sortedKeys(rs.buckets) {
		b := rs.buckets[name]
		bv := BucketView{Name: RawString(name), Versioned: b.versioned, Clock: b.clock, Objects: []ObjectView{}}
		for _, key := range sortedKeys(b.objects) {
			versions := slices.Clone(b.objects[key])
			bv.Objects = append(bv.Objects, ObjectView{Key: RawString(key), Versions: versions})
			if !withBlobs {
				continue
			}
			for _, v := range versions {
				if !v.DeleteMarker {
					blobs = append(blobs, blobRef{key: string(v.Blob), data: rs.blobs[string(v.Blob)]})
				}
			}
		}
		view.Buckets = append(view.Buckets, bv)
	}
	return view, blobs
}

// SnapshotWithBlobs returns the view of accountID in region and hands the
// blob of every version that is not a delete marker to visitor, in view
// order, in batches of BatchSize entries, each awaited before the next.
// Entries have Size -1 unless KnownSizes is set. The state is copied under
// the read lock, which is released before the first Visit. An error from
// visitor, or the cancellation of ctx between batches, is returned as a
// *core.StateViewError of kind KindBlob wrapping it.
func (s *ObjectStore) SnapshotWithBlobs(ctx context.Context, accountID, region string, visitor core.BlobVisitor) (ObjectStoreView, error) {
	view, blobs := s.snapshot(accountID, region, true)
	size := s.BatchSize
	if size <= 0 {
		size = core.DefaultBlobBatchSize
	}
	for chunk := range slices.Chunk(blobs, size) {
		if err := ctx.Err(); err != nil {
			return ObjectStoreView{}, core.NewBlobError(ObjectStoreName, chunk[0].key, err)
		}
		// Readers are made just before Visit takes ownership of them, so
		// none is ever left open by this method.
		batch := make([]core.BlobExportEntry, len(chunk))
		for i, b := range chunk {
			batch[i] = core.BlobExportEntry{Key: b.key, Reader: io.NopCloser(bytes.NewReader(b.data)), Size: -1}
			if s.KnownSizes {
				batch[i].Size = int64(len(b.data))
			}
		}
		if err := visitor.Visit(ctx, batch); err != nil {
			return ObjectStoreView{}, core.NewBlobError(ObjectStoreName, chunk[0].key,
				fmt.Errorf("visit batch of %d blobs from this key: %w", len(batch), err))
		}
	}
	return view, nil
}

// Restore replaces the state of accountID in region with view. The bytes
// of every version must be in the backing store: those of the same version
// of the current state, if its size and SHA-256 are the view's, or those
// RestoreWithBlobs imported with the view's size and SHA-256. Any other
// version yields a *core.StateViewError of kind KindBlob naming its blob
// key and wrapping core.ErrNotFound, and leaves the state as it was. A
// successful Restore drops the imported blobs it did not use, so call
// RestoreWithBlobs and then Restore with the same view, as snapshot.Import
// does.
func (s *ObjectStore) Restore(ctx context.Context, accountID, region string, view ObjectStoreView) error {
	return s.load(ctx, accountID, region, view, false)
}

// Merge adds the buckets, objects and versions of view to the state of
// accountID in region; it never deletes. A bucket in both takes the view's
// versioning and the larger clock; a version in both (same object and
// version ID) takes the view's. Blobs follow the rule of Restore.
func (s *ObjectStore) Merge(ctx context.Context, accountID, region string, view ObjectStoreView) error {
	return s.load(ctx, accountID, region, view, true)
}

// RestoreWithBlobs imports into the backing store of accountID in region
// the blob of every version of view that is not a delete marker, and
// leaves the visible state alone: call Restore or Merge with the same view
// next. It validates view (a *core.StateViewError of kind KindInvalid,
// matching core.ErrInvalid, names what is wrong), then fetches the blobs
// from source one at a time in view order, reading each into one buffer of
// the view's size ([core.ReadBlob]). Only when all are in does it add them
// to the backing store, so a failed import adds nothing; its error is a
// *core.StateViewError of kind KindBlob naming the key and wrapping the
// cause (the source's error, or core.ErrSizeMismatch).
//
// It does not hash the bytes: a core.BlobSource hands over the bytes
// recorded for a key or fails, and the source of snapshot.Import has
// checked each blob's SHA-256 against the snapshot's manifest, whose
// digests are those of the bytes this store exported with that SHA-256 in
// its view. Hashing them again would double the CPU cost of an import for
// no new guarantee. A source that checks nothing, such as a
// [MemorySource], is trusted as the Rust original trusts its sources.
func (s *ObjectStore) RestoreWithBlobs(ctx context.Context, accountID, region string, view ObjectStoreView, source core.BlobSource) error {
	buckets, err := normalize(view)
	if err != nil {
		return core.NewViewError(core.KindInvalid, ObjectStoreName, err)
	}
	imported := make(map[string][]byte)
	for _, v := range versionsWithBytes(buckets) {
		data, err := fetchBlob(ctx, source, v)
		if err != nil {
			return core.NewBlobError(ObjectStoreName, string(v.Blob), err)
		}
		imported[v.SHA256] = data
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	maps.Copy(s.regionLocked(accountID, region).imported, imported)
	return nil
}

// fetchBlob fetches the blob of v from source and reads it whole, checking
// its size.
func fetchBlob(ctx context.Context, source core.BlobSource, v VersionView) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rc, err := source.Fetch(ctx, string(v.Blob))
	if err != nil {
		return nil, err
	}
	if rc == nil {
		return nil, fmt.Errorf("source returned no reader and no error: %w", core.ErrInvalid)
	}
	data, err := core.ReadBlob(rc, v.Size)
	if err = errors.Join(err, rc.Close()); err != nil {
		return nil, err
	}
	return data, nil
}

// load validates view and replaces (or, if merge, adds to) the state of
// accountID in region.
func (s *ObjectStore) load(ctx context.Context, accountID, region string, view ObjectStoreView, merge bool) error {
	buckets, err := normalize(view)
	if err != nil {
		return core.NewViewError(core.KindInvalid, ObjectStoreName, err)
	}
	if err := s.install(accountID, region, buckets, merge); err != nil {
		return err
	}
	s.notify(ctx, accountID, region)
	return nil
}

// install finds the bytes of every version of the validated buckets in the
// backing store, then swaps them in (or merges them) and drops the
// imported blobs. If a version's bytes are missing, nothing changes.
func (s *ObjectStore) install(accountID, region string, buckets []BucketView, merge bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := scope{accountID, region}
	old := s.regions[sc]
	if old == nil {
		old = newRegionState()
	}
	blobs := make(map[string][]byte)
	for obj, v := range versionsWithBytes(buckets) {
		data, ok := old.resolve(obj, v)
		if !ok {
			return core.NewBlobError(ObjectStoreName, string(v.Blob), fmt.Errorf(
				"no bytes of size %d and sha256 %s in the backing store (import them with RestoreWithBlobs first): %w",
				v.Size, v.SHA256, core.ErrNotFound))
		}
		blobs[string(v.Blob)] = data
	}
	rs := old
	if !merge {
		rs = newRegionState()
	}
	rs.imported = make(map[string][]byte)
	for _, bv := range buckets {
		b := rs.buckets[string(bv.Name)]
		if b == nil {
			b = &bucketState{objects: make(map[string][]VersionView)}
			rs.buckets[string(bv.Name)] = b
		}
		b.versioned = bv.Versioned
		b.clock = max(b.clock, bv.Clock)
		for _, ov := range bv.Objects {
			key := string(ov.Key)
			versions := b.objects[key]
			for _, v := range ov.Versions {
				i := slices.IndexFunc(versions, func(old VersionView) bool { return old.VersionID == v.VersionID })
				if i >= 0 {
					delete(rs.blobs, string(versions[i].Blob))
					versions = slices.Delete(versions, i, i+1)
				}
				versions = append(versions, v)
			}
			slices.SortFunc(versions, compareVersions)
			b.objects[key] = versions
		}
	}
	maps.Copy(rs.blobs, blobs)
	if len(rs.buckets) == 0 {
		delete(s.regions, sc)
	} else {
		s.regions[sc] = rs
	}
	return nil
}

// objectName names an object: its bucket and key.
type objectName struct{ bucket, key string }

// versionsWithBytes yields every version of buckets that is not a delete
// marker, with the name of its object.
func versionsWithBytes(buckets []BucketView) iter.Seq2[objectName, VersionView] {
	return func(yield func(objectName, VersionView) bool) {
		for _, b := range buckets {
			for _, o := range b.Objects {
				for _, v := range o.Versions {
					if !v.DeleteMarker && !yield(objectName{string(b.Name), string(o.Key)}, v) {
						return
					}
				}
			}
		}
	}
}

// resolve returns the bytes of version v of obj: those of the same version
// in rs if its size and SHA-256 are v's, else those imported with v's size
// and SHA-256.
func (rs *regionState) resolve(obj objectName, v VersionView) ([]byte, bool) {
	if b := rs.buckets[obj.bucket]; b != nil {
		for _, held := range b.objects[obj.key] {
			if held.VersionID == v.VersionID && !held.DeleteMarker && held.Size == v.Size && held.SHA256 == v.SHA256 {
				return rs.blobs[string(held.Blob)], true
			}
		}
	}
	data, ok := rs.imported[v.SHA256]
	return data, ok && int64(len(data)) == v.Size
}

// normalize returns a copy of view's buckets sorted as a snapshot sorts
// them, with nil slices made empty, or an error naming what is invalid.
func normalize(view ObjectStoreView) ([]BucketView, error) {
	buckets := slices.Clone(view.Buckets)
	slices.SortFunc(buckets, func(a, b BucketView) int { return strings.Compare(string(a.Name), string(b.Name)) })
	for i := range buckets {
		b := &buckets[i]
		if i > 0 && buckets[i-1].Name == b.Name {
			return nil, fmt.Errorf("duplicate bucket %q", b.Name)
		}
		if err := checkBucketName(string(b.Name)); err != nil {
			return nil, err
		}
		b.Objects = slices.Clone(b.Objects)
		if b.Objects == nil {
			b.Objects = []ObjectView{}
		}
		slices.SortFunc(b.Objects, func(x, y ObjectView) int { return strings.Compare(string(x.Key), string(y.Key)) })
		for j := range b.Objects {
			o := &b.Objects[j]
			if j > 0 && b.Objects[j-1].Key == o.Key {
				return nil, fmt.Errorf("bucket %q: duplicate key %q", b.Name, o.Key)
			}
			if err := normalizeObject(b, o); err != nil {
				return nil, fmt.Errorf("bucket %q: key %q: %w", b.Name, o.Key, err)
			}
		}
	}
	return buckets, nil
}

func normalizeObject(b *BucketView, o *ObjectView) error {
	if o.Key == "" {
		return errors.New("empty key")
	}
	if len(o.Versions) == 0 {
		return errors.New("no versions")
	}
	o.Versions = slices.Clone(o.Versions)
	slices.SortFunc(o.Versions, compareVersions)
	seen := make(map[string]bool, len(o.Versions))
	for _, v := range o.Versions {
		if seen[v.VersionID] {
			return fmt.Errorf("duplicate version %q", v.VersionID)
		}
		seen[v.VersionID] = true
		if err := checkVersion(string(b.Name), string(o.Key), b.Clock, v); err != nil {
			return fmt.Errorf("version %q: %w", v.VersionID, err)
		}
	}
	return nil
}

func checkVersion(bucket, key string, clock uint64, v VersionView) error {
	switch {
	case v.VersionID == "" || !utf8.ValidString(v.VersionID) || strings.Contains(v.VersionID, "\x00"):
		return errors.New("version ID empty, not UTF-8 or holding NUL")
	case v.Modified > clock:
		return fmt.Errorf("modified %d after the bucket's clock %d", v.Modified, clock)
	case v.DeleteMarker:
		if v.Size != 0 || v.SHA256 != "" || v.Blob != "" {
			return errors.New("delete marker with size, sha256 or blob")
		}
	case v.Size < 0 || v.Size == math.MaxInt64:
		return fmt.Errorf("size %d out of range", v.Size)
	case !isSHA256Hex(v.SHA256):
		return fmt.Errorf("sha256 %q is not 64 lowercase hex digits", v.SHA256)
	case string(v.Blob) != BlobKey(bucket, key, v.VersionID):
		return fmt.Errorf("blob key %q does not name this version (want %q)", v.Blob, BlobKey(bucket, key, v.VersionID))
	}
	return nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
