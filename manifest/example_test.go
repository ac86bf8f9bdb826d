package manifest_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/statebucket/statebucket/core"
	"github.com/statebucket/statebucket/digest"
	"github.com/statebucket/statebucket/manifest"
)

// sha returns a made-up digest: c repeated 64 times as its hex.
func sha(c string) digest.Digest {
	d, err := digest.FromHex(strings.Repeat(c, 64))
	if err != nil {
		panic(err)
	}
	return d
}

func Example() {
	m, err := manifest.New("s3", "123456789012", "us-east-1",
		manifest.Object{Digest: sha("a"), Size: 1234},
		[]manifest.Entry{ // in any order; keys are arbitrary bytes
			{Key: "photos/cat.jpg\x00v2", Digest: sha("c"), Size: 10},
			{Key: "\xffraw", Digest: sha("d"), Size: 0},
			{Key: "photos/cat.jpg\x00v1", Digest: sha("b"), Size: 20},
		})
	if err != nil {
		fmt.Println(err)
		return
	}
	m.Created = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) // not part of the id; fixed for a stable output
	data, err := manifest.Encode(m)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(data))

	got, err := manifest.Decode(data, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	e, ok := got.Lookup("photos/cat.jpg\x00v2")
	fmt.Println(got.ID.Short(), ok, e.Size, got.Index("photos/cat.jpg\x00v2"), got.TotalSize())

	// A change to the content that does not come with a new id is detected.
	tampered := bytes.Replace(data, []byte(`"size": 20`), []byte(`"size": 21`), 1)
	_, err = manifest.Decode(tampered, nil)
	fmt.Println(errors.Is(err, core.ErrCorrupt))
	// Output:
	// {
	//   "format": "statebucket.manifest.v1",
	//   "id": "sha256:ce3da487f87a61e8f113e2c4730b073838fff53f4e263afe3aaad41dab2deaf2",
	//   "created": "2025-01-02T03:04:05Z",
	//   "producer": "statebucket",
	//   "producer_version": "0.1.0",
	//   "service": "s3",
	//   "account": "123456789012",
	//   "region": "us-east-1",
	//   "view": {
	//     "digest": "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	//     "size": 1234
	//   },
	//   "blobs": [
	//     {
	//       "key": "photos/cat.jpg\u0000v1",
	//       "digest": "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
	//       "size": 20
	//     },
	//     {
	//       "key": "photos/cat.jpg\u0000v2",
	//       "digest": "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
	//       "size": 10
	//     },
	//     {
	//       "key_base64": "/3Jhdw==",
	//       "digest": "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
	//       "size": 0
	//     }
	//   ]
	// }
	// ce3da487f87a true 10 1 1264
	// true
}

func ExampleDecode_caps() {
	m, err := manifest.New("s3", "123456789012", "us-east-1",
		manifest.Object{Digest: sha("a"), Size: 100},
		[]manifest.Entry{{Key: "big\x00v1", Digest: sha("b"), Size: 5 << 30}})
	if err != nil {
		fmt.Println(err)
		return
	}
	data, err := manifest.Encode(m)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = manifest.Decode(data, &manifest.DecodeOptions{MaxTotalSize: 1 << 30})
	fmt.Println(err)
	// Output:
	// manifest: blobs[0] (key "big\x00v1"): size: the total size of the view and blobs up to here, 5368709220, exceeds the limit of 1073741824 bytes (DecodeOptions.MaxTotalSize)
}

func ExampleManifest_Sign() {
	m, err := manifest.New("sqs", "123456789012", "eu-west-1",
		manifest.Object{Digest: sha("0"), Size: 2}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	key := []byte("shared CI secret")
	if err := m.Sign(key); err != nil {
		fmt.Println(err)
		return
	}
	data, err := manifest.Encode(m)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = manifest.Decode(data, &manifest.DecodeOptions{HMACKey: key})
	fmt.Println(err)
	_, err = manifest.Decode(data, &manifest.DecodeOptions{HMACKey: []byte("wrong")})
	fmt.Println(err)
	// Output:
	// <nil>
	// manifest: signature: does not match the content under the configured key: the manifest was modified or signed with another key
}
