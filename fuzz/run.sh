#!/usr/bin/env bash
# Runs proxy-core's fuzz targets with cargo-fuzz (libFuzzer), one after the other.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 600; no TARGET means all of them. Each target
# grows its corpus in fuzz/corpus/<target> (git-ignored), starting from the
# committed seeds in fuzz/seeds/<target>. A crash leaves its input in
# fuzz/artifacts/<target>/ and makes the script exit non-zero once every
# target has run; `cargo +nightly fuzz run <target> <that file>` replays it.
#
# Environment: FUZZ_SANITIZER (address, the default, or none: about twice as
# fast; proxy-core has no unsafe code), FUZZ_ARGS (more libFuzzer flags),
# CARGO_BUILD_JOBS (1 by default: the fuzzer needs the other core).
set -euo pipefail

cd "$(dirname "$0")/.."

ALL_TARGETS=(config_parse http1_inbound spiffe_san normalize_path route_match)

seconds="${1:-600}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
    echo "targets: ${ALL_TARGETS[*]}" >&2
    exit 2
fi
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=("${ALL_TARGETS[@]}")
fi
for target in "${targets[@]}"; do
    if [ ! -f "fuzz/fuzz_targets/$target.rs" ]; then
        echo "no fuzz target $target (targets: ${ALL_TARGETS[*]})" >&2
        exit 2
    fi
done

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "a nightly toolchain is needed: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is needed: cargo install cargo-fuzz --locked" >&2
    exit 2
fi

export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
sanitizer=(--sanitizer "${FUZZ_SANITIZER:-address}")
read -r -a extra <<<"${FUZZ_ARGS:-}"
logs=fuzz/target/logs
mkdir -p "$logs"

# One build for every target, so that the time limits below are fuzzing only.
cargo +nightly fuzz build "${sanitizer[@]}"

failed=()
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    log="$logs/$target.log"
    echo "== $target: ${seconds}s (log: $log)"
    status=0
    cargo +nightly fuzz run "${sanitizer[@]}" "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 "${extra[@]}" >"$log" 2>&1 || status=$?

    # libFuzzer's last status line: "#1234 DONE cov: 567 ft: 890 corp: 12/3Kb ... exec/s: 20 rss: 80Mb".
    stats=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    runs=$(sed -nE 's/^Done ([0-9]+) runs.*/\1/p' "$log" | tail -n 1)
    runs=${runs:-$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$stats")}
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$stats")
    features=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$stats")
    corpus=$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$stats")
    execs=$(sed -nE 's/.* exec\/s: ([0-9]+).*/\1/p' <<<"$stats")
    artifact=$(sed -nE 's/.*Test unit written to ([^ ]+).*/\1/p' "$log" | tail -n 1)
    if [ "$status" -eq 0 ]; then
        crashes=0
    else
        crashes=1
        failed+=("$target")
    fi
    printf '%-15s runs=%s exec/s=%s cov=%s ft=%s corpus=%s crashes=%s%s\n' \
        "$target" "${runs:-?}" "${execs:-?}" "${cov:-?}" "${features:-?}" "${corpus:-?}" "$crashes" \
        "${artifact:+ artifact=$artifact}"
    if [ "$status" -ne 0 ]; then
        echo "-- $target failed (exit $status); the end of its log:"
        grep -vE '^#[0-9]+' "$log" | tail -n 40
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "crashed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
