#!/usr/bin/env bash
# bench-tools.sh installs the peers `make bench` compares statebucket with,
# when they are missing: rclone into ./bin (with `go install`, at a pinned
# version), and the aws CLI v2 (Debian's awscli package, when running as
# root). A peer it cannot install is reported here and shows as a
# "not installed" row in the table; the benchmark still runs.
set -uo pipefail

# rclone v1.76.0, the version issue 11's figures were taken with. Building
# it takes several minutes on 2 cores.
RCLONE_VERSION=v1.76.0

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/bin"

if "$bin/rclone" version 2>/dev/null | grep -q "^rclone $RCLONE_VERSION"; then
	echo "bench-tools: rclone is up to date ($RCLONE_VERSION)"
else
	echo "bench-tools: building rclone $RCLONE_VERSION into $bin/rclone (this takes several minutes)"
	mkdir -p "$bin"
	GOBIN="$bin" go install "github.com/rclone/rclone@$RCLONE_VERSION" ||
		echo "bench-tools: rclone could not be built: its rows will say not installed" >&2
fi

# The aws CLI v2. A pyenv shim of v1 may come first on PATH: the harness
# looks for /usr/bin/aws first, and takes only a binary that says aws-cli/2.
aws_v2() {
	local a
	for a in /usr/bin/aws $(type -ap aws); do
		if "$a" --version 2>&1 | grep -q '^aws-cli/2'; then
			echo "$a"
			return 0
		fi
	done
	return 1
}
if a="$(aws_v2)"; then
	echo "bench-tools: aws CLI v2 found ($a)"
elif [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
	echo "bench-tools: installing the aws CLI v2 (Debian's awscli)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q awscli >/dev/null ||
		echo "bench-tools: apt-get install awscli failed: its rows will say not installed" >&2
	aws_v2 >/dev/null || echo "bench-tools: awscli installed no aws-cli/2: its rows will say not installed" >&2
else
	echo "bench-tools: no aws CLI v2, and not root to apt-get install awscli: its rows will say not installed" >&2
fi
exit 0
