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

.PHONY: demo test tools check bench bench-s3 fuzz clean

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

# Throughput and peak memory against a raw baseline, printed as ratios.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 30m ./bench/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 60s ./manifest/

clean:
	rm -rf $(BIN) $(REPO)
