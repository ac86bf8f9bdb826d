package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/statebucket/statebucket/integration/testserver"
)

// The operations of the table: what a row moved, and how.
const (
	opPut      = "PUT"
	opGet      = "GET"
	opGetHash  = "GET+SHA-256"
	opWrite    = "write+fsync"
	opReadHash = "read+SHA-256"
	opExport   = "export"
	opReexport = "re-export" // of unchanged state, into the repository holding it
	opImport   = "import"
	opUpload   = "copy to"
	opDownload = "copy from"
)

// The families of contenders.
const (
	familyBare        = "bare"
	familyStatebucket = "statebucket"
	familyPeer        = "peer"
)

// Names of the peers whose best is the reference of the copy rows.
const (
	peerRcloneTuned = "rclone tuned"
	peerAWS         = "aws cli v2"
)

// rcloneTuned are the flags of "rclone tuned".
var rcloneTuned = []string{"--transfers", "32", "--checkers", "32", "--s3-no-head", "--no-traverse"}

// backend is where the contenders move a workload to and from: a server
// (s3, gcs) or a local directory (file).
type backend struct {
	name string
	// newDest returns a fresh, empty destination, a bucket or a
	// directory, and the function that removes it with its contents.
	newDest func() (string, func(), error)
	// url returns the URL of the repository under prefix in bucket.
	url func(bucket, prefix string) string
	// Keys of the bare loops and of the child specs.
	putKind, getKind, hashKind string
	endpoint                   string
	rclone                     string // rclone remote name, "" when none
	aws                        bool
}

// setup is what one run of a contender works on.
type setup struct {
	w    *workload
	b    *backend
	seed string // the bucket (or directory) holding w's repository under "repo"
	dest string // a fresh bucket or directory, for a contender that writes
	down string // a fresh directory, for a contender that reads
}

// contender is one tool doing one operation on one backend.
type contender struct {
	name    string
	family  string
	op      string
	up      bool // writes to the backend (else reads from it)
	level   int  // the bare loops' concurrency
	missing string
	cmd     func(ctx context.Context, s setup) (*exec.Cmd, error)
}

// id names the contender within its backend and workload.
func (c contender) id() string { return c.op + "|" + c.name }

// compareName names the in-process contenders of the harness binary
// given with -compare: another build of statebucket, run alternately
// with this one, for an A/B comparison in one run.
const compareName = "statebucket B"

// tools are the external programs the harness runs.
type tools struct {
	compare                         string // another harness binary, or ""
	launch                          string // bench/harness/launch, built
	statebucket, statebucketMissing string
	rclone, rcloneMissing           string
	aws, awsMissing                 string
}

// contenders lists what runs on backend b: bare loops at every level,
// statebucket, and the peers that speak to b.
func contenders(b *backend, levels []int, t tools) []contender {
	var cs []contender
	bare := func(op, kind string, up bool, level int) contender {
		return contender{name: fmt.Sprintf("bare c=%d", level), family: familyBare, op: op, up: up, level: level,
			cmd: func(ctx context.Context, s setup) (*exec.Cmd, error) {
				spec := childSpec{Kind: kind, Workload: filepath.Join(filepath.Dir(s.w.Repo), "workload.json"), Concurrency: level,
					Endpoint: b.endpoint, Prefix: "repo"}
				switch {
				case b.name == "file" && up:
					spec.Dir = s.dest
				case b.name == "file":
					spec.Dir, spec.Prefix = s.w.Repo, ""
				case up:
					spec.Bucket = s.dest
				default:
					spec.Bucket = s.seed
				}
				return childCmd(ctx, "", spec)
			}}
	}
	putOp, hashOp := opPut, opGetHash
	if b.name == "file" {
		putOp, hashOp = opWrite, opReadHash
	}
	for _, l := range levels {
		cs = append(cs, bare(putOp, b.putKind, true, l))
		if b.getKind != "" {
			cs = append(cs, bare(opGet, b.getKind, false, l))
		}
		cs = append(cs, bare(hashOp, b.hashKind, false, l))
	}
	index := func(s setup) string { return filepath.Join(filepath.Dir(s.w.Repo), "workload.json") }
	inProcess := func(name, bin string) []contender {
		return []contender{
			{name: name, family: familyStatebucket, op: opExport, up: true,
				cmd: func(ctx context.Context, s setup) (*exec.Cmd, error) {
					return childCmd(ctx, bin, childSpec{Kind: kindExport, Workload: index(s), URL: b.url(s.dest, "repo")})
				}},
			// The seed repository holds the workload's snapshot already:
			// exporting it again is the re-export of unchanged state.
			{name: name, family: familyStatebucket, op: opReexport,
				cmd: func(ctx context.Context, s setup) (*exec.Cmd, error) {
					return childCmd(ctx, bin, childSpec{Kind: kindExport, Workload: index(s), URL: b.url(s.seed, "repo")})
				}},
			{name: name, family: familyStatebucket, op: opImport,
				cmd: func(ctx context.Context, s setup) (*exec.Cmd, error) {
					return childCmd(ctx, bin, childSpec{Kind: kindImport, Workload: index(s), URL: b.url(s.seed, "repo")})
				}},
		}
	}
	cs = append(cs, inProcess("statebucket", "")...)
	if t.compare != "" {
		cs = append(cs, inProcess(compareName, t.compare)...)
	}
	if b.name == "file" {
		return cs
	}
	sbCopy := func(up bool) contender {
		return contender{name: "statebucket copy", family: familyStatebucket, op: copyOp(up), up: up, missing: t.statebucketMissing,
			cmd: func(ctx context.Context, s setup) (*exec.Cmd, error) {
				from, to := s.w.Repo, b.url(s.dest, "repo")
				if !up {
					from, to = b.url(s.seed, "repo"), filepath.Join(s.down, "repo")
				}
				return exec.CommandContext(ctx, t.statebucket, "--json", "copy", "--from", from, "--to", to, s.w.ID), nil
			}}
	}
	cs = append(cs, sbCopy(true), sbCopy(false))
	for _, tuned := range []bool{false, true} {
		name := "rclone"
		var flags []string
		if tuned {
			name, flags = peerRcloneTuned, rcloneTuned
		}
		for _, up := range []bool{true, false} {
			cs = append(cs, contender{name: name, family: familyPeer, op: copyOp(up), up: up, missing: t.rcloneMissing,
				cmd: func(ctx context.Context, s setup) (*exec.Cmd, error) {
					remote := fmt.Sprintf("%s:%s/repo", b.rclone, s.seed)
					args := []string{"copy", remote, s.down}
					if up {
						args = []string{"copy", s.w.Repo, fmt.Sprintf("%s:%s/repo", b.rclone, s.dest)}
					}
					return exec.CommandContext(ctx, t.rclone, append(args, flags...)...), nil
				}})
		}
	}
	if b.aws {
		for _, up := range []bool{true, false} {
			cs = append(cs, contender{name: peerAWS, family: familyPeer, op: copyOp(up), up: up, missing: t.awsMissing,
				cmd: func(ctx context.Context, s setup) (*exec.Cmd, error) {
					args := []string{"s3", "cp", "--recursive", "--only-show-errors", "--no-progress", "--endpoint-url", b.endpoint}
					if up {
						args = append(args, s.w.Repo, "s3://"+s.dest+"/repo")
					} else {
						args = append(args, "s3://"+s.seed+"/repo", s.down)
					}
					return exec.CommandContext(ctx, t.aws, args...), nil
				}})
		}
	}
	return cs
}

// copyOp returns the operation of a copy to the backend (up) or from it.
func copyOp(up bool) string {
	if up {
		return opUpload
	}
	return opDownload
}

// s3Backend returns the backend of the MinIO srv, and sets the
// environment through which statebucket, rclone and the aws CLI reach it.
func s3Backend(srv *testserver.S3Server) *backend {
	setEnv(srv.Env())
	for k, v := range map[string]string{"TYPE": "s3", "PROVIDER": "Minio", "ENDPOINT": srv.Endpoint,
		"ACCESS_KEY_ID": srv.AccessKey, "SECRET_ACCESS_KEY": srv.SecretKey, "REGION": srv.Region} {
		os.Setenv("RCLONE_CONFIG_BENCHS3_"+k, v)
	}
	return &backend{
		name: "s3", endpoint: srv.Endpoint, rclone: "benchs3", aws: true,
		putKind: kindS3Put, getKind: kindS3Get, hashKind: kindS3GetHash,
		url: srv.URL,
		// MinIO frees deleted objects later, at its own pace: the long
		// tail, its seed and two destinations would fill the disk first.
		newDest: purging(bucketDest(srv.NewBucket), srv.PurgeTrash),
	}
}

// purging returns newDest, whose removal functions also call purge.
func purging(newDest func() (string, func(), error), purge func() error) func() (string, func(), error) {
	return func() (string, func(), error) {
		name, remove, err := newDest()
		if err != nil {
			return name, remove, err
		}
		return name, func() {
			remove()
			if err := purge(); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}, nil
	}
}

// gcsBackend returns the backend of the emulator srv, and sets the
// environment through which statebucket and rclone reach it.
func gcsBackend(srv *testserver.GCSServer) *backend {
	setEnv(srv.Env())
	for k, v := range map[string]string{"TYPE": "google cloud storage", "ENDPOINT": srv.Endpoint + "/storage/v1/",
		"ANONYMOUS": "true", "BUCKET_POLICY_ONLY": "true"} {
		os.Setenv("RCLONE_CONFIG_BENCHGCS_"+k, v)
	}
	return &backend{
		name: "gcs", endpoint: srv.Endpoint, rclone: "benchgcs",
		putKind: kindGCSPut, getKind: kindGCSGet, hashKind: kindGCSHash,
		url:     srv.URL,
		newDest: bucketDest(srv.NewBucket),
	}
}

// bucketDest makes destinations with a server's NewBucket: each one a
// new bucket, emptied and deleted by the function returned with it.
func bucketDest(newBucket func(testing.TB) string) func() (string, func(), error) {
	return func() (string, func(), error) {
		tb := &harnessTB{}
		var name string
		err := tb.do(func() { name = newBucket(tb) })
		return name, tb.cleanup, err
	}
}

// fileBackend returns the local-directory backend, its destinations new
// directories under dir.
func fileBackend(dir string) *backend {
	return &backend{
		name: "file", putKind: kindDirWrite, hashKind: kindDirHash,
		url: func(d, prefix string) string { return filepath.Join(d, prefix) },
		newDest: func() (string, func(), error) {
			d, err := os.MkdirTemp(dir, "dest-")
			return d, func() { os.RemoveAll(d) }, err
		},
	}
}

// setEnv sets the variables of env, KEY=VALUE each, in this process, for
// the children to inherit; an empty value unsets its variable (the aws CLI
// takes AWS_PROFILE= for a profile named "").
func setEnv(env []string) {
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if v == "" {
			os.Unsetenv(k)
		} else {
			os.Setenv(k, v)
		}
	}
}
