#!/usr/bin/env bash
# Run `make test` as a fresh machine would: a clone of HEAD in a new temporary folder, so a
# new .venv and Rust build, and no pip, uv, cargo or Go module caches. Run it before a
# release and whenever a dependency is bumped. The clone is removed when the run passes
# and kept, for a look, when it fails. Uncommitted changes are not part of the clone.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d -t meshpy-fresh.XXXXXX)

if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
	echo "note: uncommitted changes are not tested; the clone is of HEAD" >&2
fi
git clone -q "$repo" "$work/meshpy"
echo "fresh clone of $(git -C "$work/meshpy" rev-parse --short HEAD) in $work/meshpy" >&2

# rustup's cargo and rustc stay on PATH; CARGO_HOME only moves the crate download cache.
export PIP_NO_CACHE_DIR=1 UV_NO_CACHE=1
export CARGO_HOME="$work/cargo" GOMODCACHE="$work/go/mod" GOCACHE="$work/go/cache"
unset CARGO_TARGET_DIR VIRTUAL_ENV

start=$(date +%s)
if make -C "$work/meshpy" test; then
	echo "check-fresh: make test passed in $(($(date +%s) - start)) s from a fresh clone" >&2
	chmod -R u+w "$work"  # Go's module cache is read-only
	rm -rf "$work"
else
	rc=$?
	echo "check-fresh: make test failed after $(($(date +%s) - start)) s; the clone is in $work" >&2
	exit "$rc"
fi
