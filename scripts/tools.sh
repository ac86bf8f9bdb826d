#!/usr/bin/env bash
# tools.sh builds the servers statebucket's integration tests run against
# into ./bin, at pinned versions, with `go install`. `make tools` runs it;
# the test harness (integration/testserver) finds the binaries there.
#
# A tool is rebuilt only when its binary is missing or was built from
# another version than the one pinned below (recorded in bin/.NAME.version).
set -euo pipefail

# MinIO (github.com/minio/minio): the S3 server. MinIO tags its releases
# RELEASE.2025-…, which are not semantic versions, so the Go module proxy
# serves only pseudo-versions of the module; this one is the newest the
# proxy listed as @latest on 2026-11-27. Building it takes about 2.5
# minutes on 2 cores.
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

# fake-gcs-server (github.com/fsouza/fake-gcs-server): the GCS emulator.
# v1.56.1 is the newest release the Go module proxy listed on 2026-12-01.
# Releases before v1.55.0 drop a resumable upload's preconditions
# (ifGenerationMatch=0) when they finalize it and never check the CRC32C or
# MD5 a client declares, so a create-only write could replace an object and
# a corrupted upload would be stored: the gcsstore tests would fail there.
# Building it takes about a minute on 2 cores.
FAKE_GCS_SERVER_VERSION=v1.56.1

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/bin"

# build_tool NAME PACKAGE VERSION builds PACKAGE@VERSION into bin/NAME unless
# it is there already.
build_tool() {
	local name="$1" want="$2@$3"
	local stamp="$bin/.$name.version"
	if [[ -x "$bin/$name" && -f "$stamp" && "$(<"$stamp")" == "$want" ]]; then
		echo "tools: $name is up to date ($want)"
		return
	fi
	echo "tools: building $want into $bin/$name (this takes a few minutes)"
	mkdir -p "$bin"
	rm -f "$stamp"
	GOBIN="$bin" go install "$want"
	echo "$want" >"$stamp"
}

build_tool minio github.com/minio/minio "$MINIO_VERSION"
build_tool fake-gcs-server github.com/fsouza/fake-gcs-server "$FAKE_GCS_SERVER_VERSION"
