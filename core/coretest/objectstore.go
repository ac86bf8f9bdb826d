package coretest

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/statebucket/statebucket/core"
)

// ObjectStoreName is the service name of an [ObjectStore]: "s3".
const ObjectStoreName = "s3"

// NullVersionID is the version ID of an object written to a bucket without
// versioning, as in Amazon S3.
const NullVersionID = "null"

var _ core.BlobBackedService[ObjectStoreView] = (*ObjectStore)(nil)

// ObjectStore is an in-memory object store shaped like the S3 mock of the
// Rust original: per account and region, buckets (with or without
// versioning) holding objects, each a list of versions whose bytes are
// blobs. Its state view is an [ObjectStoreView]; the blob of a version is
// exported under the key [BlobKey](bucket, key, versionID), the shape real
// callers use.
//
// Per account and region, its backing store holds the bytes of every
// version, and the blobs RestoreWithBlobs imported for a view not restored
// yet. A restore takes two calls, in the order of the Rust original:
// RestoreWithBlobs imports the view's blobs and leaves the visible state
// alone, then Restore or Merge makes the view visible, finding each
// version's bytes among those held or imported by the version's size and
// SHA-256. snapshot.Import makes both calls.
//
// Create one with [NewObjectStore]; the zero value is not usable. Set
// BatchSize and KnownSizes before first use. An ObjectStore is safe for
// concurrent use. Every change to the visible state notifies the listeners
// of Notifier after releasing its lock, so a listener may call any method
// except one that mutates the same store (which would notify again,
// forever).
type ObjectStore struct {
	// BatchSize is the number of blobs SnapshotWithBlobs hands to the
	// visitor at a time; zero means core.DefaultBlobBatchSize.
	BatchSize int
	// KnownSizes makes SnapshotWithBlobs state each blob's size. When false
	// (the default), every entry has Size -1, as the versioned S3 mock of
	// the Rust original exports them.
	KnownSizes bool

	mu       sync.RWMutex
	regions  map[scope]*regionState
	notifier core.StateChangeNotifier[ObjectStoreView]
}

type scope struct{ account, region string }

// regionState is the state of one account and region: its buckets, the
// bytes of every version that is not a delete marker (blobs, keyed by
// BlobKey), and the bytes RestoreWithBlobs imported for a view that no
// Restore or Merge has taken up yet (imported, keyed by SHA-256 hex).
// Stored byte slices are never modified, so they may be shared after the
// lock is released.
type regionState struct {
	buckets  map[string]*bucketState
	blobs    map[string][]byte
	imported map[string][]byte
}

type bucketState struct {
	versioned bool
	clock     uint64
	objects   map[string][]VersionView // oldest version first
}

// ObjectInfo describes the latest version of an object.
type ObjectInfo struct {
	Key       string
	VersionID string
	Size      int64
	SHA256    string // lowercase hex
	Modified  uint64 // the bucket's logical clock at the write
}

// NewObjectStore returns an empty ObjectStore.
func NewObjectStore() *ObjectStore {
	return &ObjectStore{regions: make(map[scope]*regionState)}
}

// BlobKey returns the key under which the blob of a version is exported:
// "{bucket}/{key}\x00{versionID}". Bucket names hold neither '/' nor NUL
// and version IDs hold no NUL, so the key identifies the version.
func BlobKey(bucket, key, versionID string) string {
	return bucket + "/" + key + "\x00" + versionID
}

// ServiceName returns ObjectStoreName.
func (s *ObjectStore) ServiceName() string { return ObjectStoreName }

// Notifier returns the store's notifier, the same on every call.
func (s *ObjectStore) Notifier() *core.StateChangeNotifier[ObjectStoreView] { return &s.notifier }

// notify calls the listeners. ObjectStore.Snapshot cannot fail, so neither
// can NotifyStateChanged.
func (s *ObjectStore) notify(ctx context.Context, accountID, region string) {
	_ = core.NotifyStateChanged[ObjectStoreView](ctx, s, accountID, region)
}

// CreateBucket creates bucket in accountID and region, with versioning on
// if versioned. A bucket name must be non-empty and hold neither '/' nor
// NUL (else core.ErrInvalidPath); an existing name yields core.ErrExists.
func (s *ObjectStore) CreateBucket(ctx context.Context, accountID, region, bucket string, versioned bool) error {
	if err := checkBucketName(bucket); err != nil {
		return fmt.Errorf("coretest: s3: create bucket: %w", err)
	}
	if err := s.createBucket(accountID, region, bucket, versioned); err != nil {
		return err
	}
	s.notify(ctx, accountID, region)
	return nil
}

func (s *ObjectStore) createBucket(accountID, region, bucket string, versioned bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.regionLocked(accountID, region)
	if _, ok := rs.buckets[bucket]; ok {
		return fmt.Errorf("coretest: s3: create bucket %q: %w", bucket, core.ErrExists)
	}
	rs.buckets[bucket] = &bucketState{versioned: versioned, objects: make(map[string][]VersionView)}
	return nil
}

// PutObject stores a copy of data as the latest version of key in bucket
// and returns its version ID: NullVersionID in a bucket without
// versioning (replacing the previous bytes), else a new ID "v%08d" drawn
// from the bucket's clock. An empty key yields core.ErrInvalidPath, a
// missing bucket core.ErrNotFound.
func (s *ObjectStore) PutObject(ctx context.Context, accountID, region, bucket, key string, data []byte) (versionID string, err error) {
	if key == "" {
		return "", fmt.Errorf("coretest: s3: put object in bucket %q: empty key: %w", bucket, core.ErrInvalidPath)
	}
	data = slices.Clone(data)
	sum := sha256.Sum256(data)
	versionID, err = s.putObject(accountID, region, bucket, key, data, hex.EncodeToString(sum[:]))
	if err != nil {
		return "", err
	}
	s.notify(ctx, accountID, region)
	return versionID, nil
}

func (s *ObjectStore) putObject(accountID, region, bucket, key string, data []byte, sum string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs, b, err := s.bucketLocked(accountID, region, bucket)
	if err != nil {
		return "", fmt.Errorf("coretest: s3: put object %q: %w", key, err)
	}
	versions := b.objects[key]
	id := NullVersionID
	if b.versioned {
		id = b.nextVersionID(versions)
	} else {
		b.clock++
		versions = slices.DeleteFunc(versions, func(v VersionView) bool { return v.VersionID == NullVersionID })
	}
	blob := BlobKey(bucket, key, id)
	b.objects[key] = append(versions, VersionView{
		VersionID: id,
		Modified:  b.clock,
		Size:      int64(len(data)),
		SHA256:    sum,
		Blob:      RawString(blob),
	})
	rs.blobs[blob] = data
	return id, nil
}

// nextVersionID advances the clock and returns the ID it names, skipping
// IDs that versions already use (a restored view may hold any IDs).
func (b *bucketState) nextVersionID(versions []VersionView) string {
	for {
		b.clock++
		id := fmt.Sprintf("v%08d", b.clock)
		if !slices.ContainsFunc(versions, func(v VersionView) bool { return v.VersionID == id }) {
			return id
		}
	}
}

// GetObject returns a copy of the bytes of the latest version of key in
// bucket. A missing bucket or key, or a key whose latest version is a
// delete marker, yields core.ErrNotFound.
func (s *ObjectStore) GetObject(ctx context.Context, accountID, region, bucket, key string) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rs, b, err := s.bucketLocked(accountID, region, bucket)
	if err != nil {
		return nil, fmt.Errorf("coretest: s3: get object %q: %w", key, err)
	}
	v, ok := latest(b.objects[key])
	if !ok {
		return nil, fmt.Errorf("coretest: s3: get object %q in bucket %q: %w", key, bucket, core.ErrNotFound)
	}
	return slices.Clone(rs.blobs[string(v.Blob)]), nil
}

// DeleteObject deletes key from bucket. In a bucket without versioning
// the object and all its versions are gone; in a versioned bucket a delete
// marker becomes the latest version and older versions are kept. A missing
// bucket or key yields core.ErrNotFound.
func (s *ObjectStore) DeleteObject(ctx context.Context, accountID, region, bucket, key string) error {
	if err := s.deleteObject(accountID, region, bucket, key); err != nil {
		return err
	}
	s.notify(ctx, accountID, region)
	return nil
}

func (s *ObjectStore) deleteObject(accountID, region, bucket, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs, b, err := s.bucketLocked(accountID, region, bucket)
	if err != nil {
		return fmt.Errorf("coretest: s3: delete object %q: %w", key, err)
	}
	versions := b.objects[key]
	if _, ok := latest(versions); !ok {
		return fmt.Errorf("coretest: s3: delete object %q in bucket %q: %w", key, bucket, core.ErrNotFound)
	}
	if b.versioned {
		id := b.nextVersionID(versions)
		b.objects[key] = append(versions, VersionView{VersionID: id, Modified: b.clock, DeleteMarker: true})
		return nil
	}
	for _, v := range versions {
		delete(rs.blobs, string(v.Blob))
	}
	delete(b.objects, key)
	return nil
}

// ListObjects returns the latest version of every object in bucket whose
// key starts with prefix and whose latest version is not a delete marker,
// sorted by key bytes. A missing bucket yields core.ErrNotFound.
func (s *ObjectStore) ListObjects(ctx context.Context, accountID, region, bucket, prefix string) ([]ObjectInfo, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, b, err := s.bucketLocked(accountID, region, bucket)
	if err != nil {
		return nil, fmt.Errorf("coretest: s3: list objects: %w", err)
	}
	var infos []ObjectInfo
	for key, versions := range b.objects {
		v, ok := latest(versions)
		if !ok || !strings.HasPrefix(key, prefix) {
			continue
		}
		infos = append(infos, ObjectInfo{Key: key, VersionID: v.VersionID, Size: v.Size, SHA256: v.SHA256, Modified: v.Modified})
	}
	slices.SortFunc(infos, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return infos, nil
}

// Stats returns the number of object versions holding bytes in accountID
// and region (delete markers do not count) and their total size: the blobs
// SnapshotWithBlobs exports. Blobs imported for a view not restored yet do
// not count.
func (s *ObjectStore) Stats(accountID, region string) (objects int, bytes int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rs := s.regions[scope{accountID, region}]
	if rs == nil {
		return 0, 0
	}
	for _, data := range rs.blobs {
		bytes += int64(len(data))
	}
	return len(rs.blobs), bytes
}

// latest returns the latest version, unless there is none or it is a
// delete marker.
func latest(versions []VersionView) (VersionView, bool) {
	if len(versions) == 0 || versions[len(versions)-1].DeleteMarker {
		return VersionView{}, false
	}
	return versions[len(versions)-1], true
}

// regionLocked returns the state of accountID and region, creating it.
// The caller holds the write lock.
func (s *ObjectStore) regionLocked(accountID, region string) *regionState {
	sc := scope{accountID, region}
	rs := s.regions[sc]
	if rs == nil {
		rs = newRegionState()
		s.regions[sc] = rs
	}
	return rs
}

func newRegionState() *regionState {
	return &regionState{buckets: make(map[string]*bucketState), blobs: make(map[string][]byte), imported: make(map[string][]byte)}
}

// bucketLocked returns bucket and its region. The caller holds a lock.
func (s *ObjectStore) bucketLocked(accountID, region, bucket string) (*regionState, *bucketState, error) {
	rs := s.regions[scope{accountID, region}]
	if rs != nil {
		if b := rs.buckets[bucket]; b != nil {
			return rs, b, nil
		}
	}
	return nil, nil, fmt.Errorf("no such bucket %q: %w", bucket, core.ErrNotFound)
}

func checkBucketName(name string) error {
	if name == "" || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("bucket name %q: empty or holds '/' or NUL: %w", name, core.ErrInvalidPath)
	}
	return nil
}

// sortedKeys returns the keys of m sorted by bytes.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// compareVersions orders versions oldest first: by Modified, then by ID.
func compareVersions(a, b VersionView) int {
	return cmp.Or(cmp.Compare(a.Modified, b.Modified), strings.Compare(a.VersionID, b.VersionID))
}
