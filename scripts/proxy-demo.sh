#!/usr/bin/env bash
# The proxy end to end: a backend, `meshpy proxy run` with examples/proxy-demo.yaml,
# a few requests through it, the admin /stats, then a graceful stop.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
logs=$(mktemp -d)
pids=()

stop() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    echo "--- proxy log"; cat "$logs/proxy.log" || true
    rm -rf "$logs"
}
trap stop EXIT

"$PY" examples/echo_backend.py 127.0.0.1:18081 2>"$logs/backend.log" &
pids+=($!)
"$PY" -m meshpy proxy run --config examples/proxy-demo.yaml 2>"$logs/proxy.log" &
pids+=($!)

for _ in $(seq 100); do
    grep -q '^meshpy proxy: admin ' "$logs/proxy.log" && break
    kill -0 "${pids[1]}" 2>/dev/null || { cat "$logs/proxy.log"; exit 1; }
    sleep 0.1
done
grep '^meshpy proxy: admin ' "$logs/proxy.log"

for i in 1 2 3; do
    echo "--- GET http://127.0.0.1:18080/hello?i=$i"
    curl -sS --fail-with-body "http://127.0.0.1:18080/hello?i=$i"
    echo
done
echo "--- GET http://127.0.0.1:19901/stats"
curl -sS --fail-with-body http://127.0.0.1:19901/stats | "$PY" -m json.tool
