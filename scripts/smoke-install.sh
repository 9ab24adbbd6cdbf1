#!/usr/bin/env bash
# Install meshpy from this checkout into a new virtualenv as a user would, with the newest
# (latest) or the lowest (lowest) versions that pyproject.toml's ranges allow, not uv.lock's
# pins; then smoke-test it: `meshpy --help` and `meshpy demo --duration 5`.
# Usage: scripts/smoke-install.sh latest|lowest
# latest uses pip with no cache; lowest uses uv's lowest-direct resolution (the pinned uv
# from .tools, which `make test-lowest` installs first). No PyPI cache is used either way.
set -euo pipefail
mode=${1:?usage: smoke-install.sh latest|lowest}
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3.11}
work=$(mktemp -d -t meshpy-smoke.XXXXXX)
trap 'rm -rf "$work"' EXIT

"$python" -m venv "$work/venv"
case $mode in
latest)
	PIP_NO_CACHE_DIR=1 "$work/venv/bin/pip" install -q "$repo"
	;;
lowest)
	UV_NO_CACHE=1 "$repo/.tools/uv/bin/uv" pip install -q --no-config --resolution lowest-direct \
		--python "$work/venv/bin/python" "$repo"
	;;
*)
	echo "usage: smoke-install.sh latest|lowest" >&2
	exit 2
	;;
esac

echo "== $mode: the versions installed"
"$work/venv/bin/python" -m pip list --format freeze 2>/dev/null | grep -v -e '^pip=' -e '^setuptools='

cd "$work"
echo "== meshpy --help"
"$work/venv/bin/meshpy" --help >/dev/null
echo "== meshpy demo --duration 5"
"$work/venv/bin/meshpy" demo --duration 5 --listen 127.0.0.1:0
echo "== $mode: smoke test passed"
