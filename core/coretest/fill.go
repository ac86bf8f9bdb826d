package coretest

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/statebucket/statebucket/core"
)

// FillOptions controls [Fill]. The zero value fills 100 objects of up to
// 4 KiB with plain keys, from seed 0.
type FillOptions struct {
	// Objects is the number of object versions to write; zero means 100.
	Objects int
	// Size is the largest object size in bytes; zero means 4,096. Sizes are
	// mixed: some objects are empty, some tiny, the rest up to Size.
	Size int
	// Seed selects the keys, sizes and bytes; a given seed always yields
	// the same state.
	Seed int64
	// Hostile adds a bucket whose name is not valid UTF-8 and a bucket
	// with a non-ASCII name, and gives half the objects keys from
	// [HostileKeys].
	Hostile bool
}

const (
	defaultFillObjects = 100
	defaultFillSize    = 4096
	// sameKey is the key Fill writes several versions of in its
	// versioned bucket.
	sameKey = "versions/same-key"
)

type fillBucket struct {
	name      string
	versioned bool
}

// Fill writes test data to svc in accountID and region: buckets
// "coretest-plain" and "coretest-versioned" (versioned; it holds three
// versions of one key, the first empty), plus hostile buckets when
// opts.Hostile is set, and opts.Objects object versions of mixed sizes,
// some sharing the same bytes. Existing buckets are reused. Every write
// creates a distinct version, so on an empty region the counts returned
// are those Stats then reports.
//
// It returns the number of versions written and their total size, also
// when it stops early with an error. Negative options yield core.ErrInvalid.
func Fill(ctx context.Context, svc *ObjectStore, accountID, region string, opts FillOptions) (objects int, bytes int64, err error) {
	if opts.Objects < 0 || opts.Size < 0 {
		return 0, 0, fmt.Errorf("coretest: fill: negative objects (%d) or size (%d): %w", opts.Objects, opts.Size, core.ErrInvalid)
	}
	n := cmp.Or(opts.Objects, defaultFillObjects)
	size := cmp.Or(opts.Size, defaultFillSize)
	buckets := []fillBucket{{"coretest-plain", false}, {"coretest-versioned", true}}
	var hostile []string
	if opts.Hostile {
		buckets = append(buckets, fillBucket{"coretest-\xff\xfe-not-utf8", false}, fillBucket{"coretest-ünïcödé-bücket", true})
		hostile = HostileKeys(n/2, opts.Seed)
	}
	for _, b := range buckets {
		if err := svc.CreateBucket(ctx, accountID, region, b.name, b.versioned); err != nil && !errors.Is(err, core.ErrExists) {
			return 0, 0, fmt.Errorf("coretest: fill: %w", err)
		}
	}
	rng := rand.New(rand.NewPCG(uint64(opts.Seed), fillStream))
	var prev []byte
	for i := range n {
		bucket, key := fillTarget(buckets, hostile, i)
		var data []byte
		switch {
		case i == 0:
			// The first version of sameKey is empty.
		case i%8 == 7 && prev != nil:
			data = prev // identical bytes under another key
		default:
			data = randomBytes(rng, randomSize(rng, size))
		}
		if _, err := svc.PutObject(ctx, accountID, region, bucket, key, data); err != nil {
			return objects, bytes, fmt.Errorf("coretest: fill: %w", err)
		}
		objects++
		bytes += int64(len(data))
		prev = data
	}
	return objects, bytes, nil
}

// fillStream is the PCG stream of Fill; hostileStream that of HostileKeys.
const (
	fillStream    = 0x636f726574657374 // "coretest"
	hostileStream = 0x686f7374696c6521 // "hostile!"
)

// fillTarget returns the bucket and key of write i: the first three
// writes are versions of sameKey in the versioned bucket, then writes go
// round the buckets, half of them under hostile keys while they last.
func fillTarget(buckets []fillBucket, hostile []string, i int) (bucket, key string) {
	if i < 3 {
		return buckets[1].name, sameKey
	}
	bucket = buckets[i%len(buckets)].name
	if k := i - 3; k%2 == 0 && k/2 < len(hostile) {
		return bucket, hostile[k/2]
	}
	return bucket, fmt.Sprintf("data/%03d/object-%06d", i%7, i)
}

// randomSize returns 0 one time in ten, 1 to 16 bytes three times in ten,
// and otherwise up to limit bytes.
func randomSize(rng *rand.Rand, limit int) int {
	switch r := rng.IntN(10); {
	case r == 0:
		return 0
	case r <= 3:
		return 1 + rng.IntN(min(16, limit))
	}
	return rng.IntN(limit + 1)
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	var w [8]byte
	for i := 0; i < n; i += len(w) {
		binary.LittleEndian.PutUint64(w[:], rng.Uint64())
		copy(b[i:], w[:])
	}
	return b
}

// hostileBase are the keys HostileKeys returns first: each one breaks a
// naive mapping of keys to file or object names.
var hostileBase = []string{
	"../../etc/passwd",
	"\x00",
	"nul\x00inside",
	"trailing-nul\x00",
	"/leading-slash",
	"/",
	"trailing-slash/",
	"double//slash",
	".",
	"..",
	"./dot-slash",
	"a/../b",
	"a/./b",
	"\xff\xfe",
	"invalid-\xc3\x28-utf8",
	"surrogate-\xed\xa0\x80",
	"overlong-slash-\xc0\xaf",
	"lone-continuation-\x80",
	strings.Repeat("k", 4096),
	strings.Repeat("é", 2048),
	strings.Repeat("dir/", 300) + "deep",
	"caf\u00e9",  // NFC
	"cafe\u0301", // NFD of the key above
	"\u00e9",
	"e\u0301",
	"Å-\u212b", // A-ring and the Ångström sign
	"control-\x01\x02\x1f-chars",
	"del-\x7f",
	"tab\there",
	"new\nline",
	"carriage\rreturn",
	"%46",
	"%2F",
	"%00",
	"%2e%2e/%2e%2e",
	"trailing-space ",
	" leading-space",
	"   ",
	"trailing-dot.",
	"back\\slash",
	"..\\..\\windows",
	"C:\\absolute",
	"CON",
	"aux.txt",
	"question?mark",
	"star*",
	"colon:name",
	"quote\"s'",
	"<angle>|pipe",
	"hash#fragment",
	"amp&eq=plus+",
	"~tilde",
	"日本語/キー",
	"emoji-😀",
	"rtl-\u202e-override",
	"\ufeffbom",
	"zero\u200bwidth",
	"line\u2028separator",
	"Case",
	"case",
	"CASE",
}

var (
	hostilePieces = []string{
		"\x00", "..", ".", "%46", "%2F", " ", "\xff", "\xfe", "\x80", "é", "e\u0301",
		"\t", "\n", "\r", "\x7f", "\x1b", "日本", "😀", "\u202e", "\ufeff", "\u200b",
		"\\", "~", "*", "?", "#", "&", "+", "=", "'", "\"", "<", ">", "|", ":", ";",
		"A", "a", "-", "_",
	}
	hostileSeparators = []string{"/", "//", "/../", "\x00", "", "\\"}
)

// HostileKeys returns n distinct object keys that are hard to store: NUL
// bytes, '/', "..", "../../etc/passwd", a leading '/', invalid UTF-8, keys
// of 4 KiB, NFC and NFD spellings of the same text, control characters,
// "%46", trailing spaces, names that differ only in case, and more. The
// first ones are fixed; the rest are drawn from seed, so a given n and
// seed always yield the same keys. None is empty.
func HostileKeys(n int, seed int64) []string {
	keys := make([]string, 0, max(n, 0))
	seen := make(map[string]bool, max(n, 0))
	add := func(k string) {
		if len(keys) < n && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	for _, k := range hostileBase {
		add(k)
	}
	rng := rand.New(rand.NewPCG(uint64(seed), hostileStream))
	for i := 0; len(keys) < n; i++ {
		var b strings.Builder
		for p := range 1 + rng.IntN(3) {
			if p > 0 {
				b.WriteString(hostileSeparators[rng.IntN(len(hostileSeparators))])
			}
			piece := hostilePieces[rng.IntN(len(hostilePieces))]
			if rng.IntN(50) == 0 {
				piece = strings.Repeat(piece, 1100/len(piece)+1) // past S3's 1,024-byte limit
			}
			b.WriteString(piece)
		}
		fmt.Fprintf(&b, "#%d", i)
		add(b.String())
	}
	return keys
}
