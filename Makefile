# statebucket: two commands do all set-up on a fresh machine with Go.
#   make demo   the main job on the embedded default (a local directory)
#   make test   builds the pinned test servers into ./bin, then runs every test
GO       ?= go
BIN      := $(CURDIR)/bin
export PATH := $(BIN):$(PATH)
# The tests start servers on loopback; a proxy would intercept them.
export NO_PROXY := 127.0.0.1,localhost
export no_proxy := 127.0.0.1,localhost
# Tests talk to loopback only: never let the AWS SDK ask the EC2 metadata
# service for credentials.
export AWS_EC2_METADATA_DISABLED := true

REPO     ?= ./snapshots
OBJECTS  ?= 1000

.PHONY: demo test tools check bench bench-quick bench-tools bench-engine bench-s3 fuzz clean

demo:
	$(GO) run ./cmd/statebucket demo --repo $(REPO) --objects $(OBJECTS)

test: tools check
	$(GO) test -race -count=1 -timeout 25m ./...

# Pinned MinIO (and later fake-gcs-server) built with `go install` into ./bin.
tools:
	bash scripts/tools.sh

# gofmt, go vet, and go.mod/go.sum exactly as `go mod tidy` leaves them
# (direct dependencies not marked indirect, nothing unused).
check:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt: not formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@$(GO) mod tidy -diff || { echo "go.mod or go.sum is not tidy: run 'go mod tidy'"; exit 1; }

# statebucket against bare SDK loops, rclone and the aws CLI, on the same
# data against the same servers, in one table (docs/benchmarks.md): every
# workload (about 17 GiB, generated once under BENCH_DATA) on S3, GCS and a
# local directory. bench-quick runs a small subset (S3 and a local directory,
# one level of the bare loops) in under two minutes on an idle 2-core machine.
# Both also write the results as JSON to BENCH_JSON.
BENCH_DATA ?= $(or $(TMPDIR),/tmp)/statebucket-bench
BENCH_JSON ?= bench-results.json
BENCH_FLAGS ?=
bench: tools bench-tools
	$(GO) run ./bench/harness -data $(BENCH_DATA) -json $(BENCH_JSON) $(BENCH_FLAGS)

bench-quick: tools bench-tools
	$(GO) run ./bench/harness -data $(BENCH_DATA) -json $(BENCH_JSON) -workloads 1000x4KiB,4x64MiB -backends s3,file -levels 32 $(BENCH_FLAGS)

# The peers `make bench` compares with: rclone (./bin) and the aws CLI v2.
bench-tools:
	bash scripts/bench-tools.sh

# The engine's go-test benchmarks: throughput and peak memory against a raw
# baseline, in process, printed as ratios.
bench-engine:
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 30m ./bench/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 60s ./manifest/

clean:
	rm -rf $(BIN) $(REPO)
