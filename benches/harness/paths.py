"""Where the benchmarks' files live: the repository, built tools, results and the README."""

from __future__ import annotations

from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
TOOLS_DIR = BENCH_DIR / ".tools"
README = BENCH_DIR / "README.md"
GO_TOOLS_BIN = REPO / ".tools" / "bin"  # tools/go.mod's programs, built by `make go-tools`
