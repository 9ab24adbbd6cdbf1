# meshpy: the one list of commands. CI runs `make test` (see .ci/run). `make help` lists targets.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
CARGO  ?= cargo
PYTEST_ARGS ?= -q
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Every Debian package that make installs, in one place.
APT_PACKAGES       := build-essential pkg-config curl ca-certificates openssl tshark nghttp2-client prometheus
APT_DB_PACKAGES    := postgresql-15
APT_BENCH_PACKAGES := nginx haproxy wrk slowhttptest

# Pinned tools. Python: uv (pinned with hashes in tools/uv.txt) installs .venv exactly as
# uv.lock says; `make lock` refreshes the lock. Go: the programs tests and benchmarks run
# (h2spec, fortio) are `tool` lines of tools/go.mod, checked against tools/go.sum; Jaeger,
# which only `make interop-tracing` runs, is the one tool of tools/jaeger/go.mod.
TOOLS     := .tools
UV        := $(TOOLS)/uv/bin/uv
GO        ?= go
GO_BIN    := $(TOOLS)/bin
JAEGER    := $(GO_BIN)/jaeger
UV_SYNC   := $(UV) sync --locked --no-install-project
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export GOTOOLCHAIN := local

OPENAPI := api/openapi.json

# The PostgreSQL that tests run against (the Debian cluster 15/main, started by `make test-db`).
PG_ROLE     ?= meshpy
PG_PASSWORD ?= meshpy
PG_DB       ?= meshpy_test
export MESHPY_TEST_PG_URL ?= postgresql://$(PG_ROLE):$(PG_PASSWORD)@127.0.0.1:5432/$(PG_DB)

define apt_install_missing
	missing=""; for p in $(1); do \
		dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi
endef

.PHONY: help setup tools system-deps rust-tools venv go-tools lock build lint fmt schema \
	check-schema stubtest check-lock openapi check-openapi test test-db test-rust test-python \
	test-latest test-lowest check-fresh fuzz bench-setup bench demo clean jaeger interop-tracing

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: tools ## install what is needed to build and test (idempotent), and build meshpy once
	@$(PY) -c 'import meshpy._core' 2>/dev/null || $(MAKE) --no-print-directory build

tools: system-deps rust-tools venv

system-deps: ## apt-get install the missing build/test tools
	@$(call apt_install_missing,$(APT_PACKAGES))

rust-tools: ## make sure rustfmt and clippy are installed
	@$(CARGO) fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@$(CARGO) clippy --version >/dev/null 2>&1 || rustup component add clippy

$(UV): tools/uv.txt
	@rm -rf $(TOOLS)/uv
	$(PYTHON) -m venv $(TOOLS)/uv
	$(TOOLS)/uv/bin/pip install -q --require-hashes --no-deps -r tools/uv.txt
	@touch $@

venv: $(VENV)/.installed ## install .venv exactly as uv.lock says (runtime and dev dependencies)

# An exact sync also removes meshpy itself, which `build` puts back (maturin develop).
$(VENV)/.installed: pyproject.toml uv.lock $(UV)
	$(UV_SYNC)
	@touch $@

lock: $(UV) ## re-resolve uv.lock after editing pyproject.toml; UPGRADE=1 moves every pin (and uv's) to the newest
	$(UV) lock $(if $(UPGRADE),--upgrade)
	printf 'uv\n' | $(UV) pip compile - --no-config --generate-hashes --no-header -q \
		$(if $(UPGRADE),--upgrade) -o tools/uv.txt

check-lock: $(UV) ## fail if uv.lock is stale against pyproject.toml
	@$(UV) lock --check -q || { echo "uv.lock is stale against pyproject.toml: run 'make lock'"; exit 1; }

go-tools: $(GO_BIN)/.installed ## build the pinned Go tools (tools/go.mod) into .tools/bin

$(GO_BIN)/.installed: tools/go.mod tools/go.sum
	GOBIN=$(abspath $(GO_BIN)) $(GO) -C tools install tool
	@touch $@

jaeger: $(JAEGER) ## not in CI: build the pinned Jaeger (tools/jaeger/go.mod) into .tools/bin; large, slow to compile

# A module of its own: in tools/go.mod it would move the dependencies that fortio and h2spec
# share with it (grpc, protobuf, x/exp, ...) and be built by every `make test`.
$(JAEGER): tools/jaeger/go.mod tools/jaeger/go.sum
	@command -v $(GO) >/dev/null 2>&1 || { \
		echo "Jaeger is built from source with Go, and '$(GO)' was not found:" \
			"install Go (tools/jaeger/go.mod names the version) or pass GO=/path/to/go"; exit 1; }
	GOBIN=$(abspath $(GO_BIN)) $(GO) -C tools/jaeger install tool
	@touch $@

# maturin builds the extension and the crates it uses; a `cargo build` of the workspace
# before it would compile them again, with other features, for nothing.
build: tools ## maturin develop --release into .venv (the extension and the crates it uses)
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(TOOLS)/uv/bin):$$PATH \
		$(BIN)/maturin develop --release --locked --uv

lint: build ## fmt check, clippy -D warnings, Rust import cycles, ruff, mypy, stubtest, schema, OpenAPI and lock checks
	$(CARGO) fmt --all --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(PY) scripts/rust_layers.py crates/proxy-config crates/proxy-core crates/proxy-py
	$(BIN)/ruff check python tests scripts examples benches
	$(BIN)/ruff format --check python tests scripts examples benches
	$(BIN)/mypy
	$(MAKE) --no-print-directory stubtest check-schema check-openapi check-lock

stubtest: ## check python/meshpy/_core.pyi against the built extension
	$(PY) -m mypy.stubtest meshpy._core --mypy-config-file pyproject.toml

check-schema: ## fail if api/proxy-config.schema.json or meshpy/proxyconfig.py is not what Rust generates
	@$(PY) scripts/proxyconfig.py --check

schema: ## regenerate api/proxy-config.schema.json from the Rust config types, and its Python types
	$(PY) scripts/proxyconfig.py

check-openapi: ## fail if api/openapi.json is not what the REST API generates
	@$(PY) -m meshpy.api --openapi | diff -u $(OPENAPI) - \
		|| { echo "$(OPENAPI) is stale: run 'make openapi'"; exit 1; }

openapi: ## regenerate api/openapi.json from the FastAPI app
	$(PY) -m meshpy.api --openapi > $(OPENAPI)

fmt: ## format Rust and Python, apply safe lint fixes
	$(CARGO) fmt --all
	$(BIN)/ruff check --fix python tests scripts examples benches
	$(BIN)/ruff format python tests scripts examples benches

test: build lint test-rust test-python ## lint, then cargo tests, then pytest (unit, integration, security)

test-rust: ## cargo test --workspace (proxy-core's tests never link Python)
	$(CARGO) test --workspace --locked
	$(CARGO) test --manifest-path fuzz/Cargo.toml --locked  # the fuzz targets on their seeds

test-db: ## start PostgreSQL 15 (apt-get install if missing), create the test role and database
	@$(call apt_install_missing,$(APT_DB_PACKAGES))
	@bash scripts/test-postgres.sh $(PG_ROLE) $(PG_PASSWORD) $(PG_DB)

# Most tests wait on processes and sockets: they run PYTEST_WORKERS test files at a time.
# Then those marked `alone` (the attack suites, tests that judge timing or failed requests
# under load, and tests that restart a process on its old port) run one at a time, with
# nothing else on the machine.
PYTEST_WORKERS ?= 3
test-python: test-db go-tools ## pytest tests, in parallel, then the `alone` ones (PYTEST_ARGS="-k reload -x" to narrow); no tests run is a failure
	@rc1=0; rc2=0; \
	$(BIN)/pytest tests -m "not alone" -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS) || rc1=$$?; \
	$(BIN)/pytest tests -m alone $(PYTEST_ARGS) || rc2=$$?; \
	if [ $$rc1 -eq 5 ] && [ $$rc2 -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; \
	for rc in $$rc1 $$rc2; do if [ $$rc -ne 0 ] && [ $$rc -ne 5 ]; then exit $$rc; fi; done

test-latest: ## not in CI: pip install . with the newest versions the ranges allow, then a smoke test
	bash scripts/smoke-install.sh latest

test-lowest: $(UV) ## not in CI: the same with the lowest versions the ranges allow (the tested lower bounds)
	bash scripts/smoke-install.sh lowest

FUZZ_SECONDS ?= 600

fuzz: ## not in CI: cargo-fuzz each proxy-core target for FUZZ_SECONDS (600); FUZZ_TARGETS="route_match ..." narrows
	@rustup run nightly cargo --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
	@$(CARGO) +nightly fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --version 0.13.2 --locked
	bash fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

check-fresh: ## before a release or after a dependency bump: make test in a fresh clone, no caches
	bash scripts/check-fresh.sh

bench-setup: setup go-tools ## install the load generators and the proxies we compare against
	@$(call apt_install_missing,$(APT_BENCH_PACKAGES))
	$(UV_SYNC) --group bench
	@touch $(VENV)/.installed

bench: bench-setup build ## run the benchmarks in benches/
	$(PY) benches/run.py --write-readme

.PHONY: bench-memory
bench-memory: bench-setup build ## idle memory (PSS) of a whole meshpy sidecar process vs Envoy
	$(PY) benches/memory.py --write-readme

.PHONY: bench-mtls
bench-mtls: bench-setup build ## mTLS: handshakes/s per core and the two-sidecar path vs Envoy
	$(PY) benches/mtls.py --write-readme

.PHONY: bench-tracing
bench-tracing: bench-setup build ## tracing's cost on the two-sidecar path (off, 1%, 100%, collector down or slow) vs Envoy
	$(PY) benches/tracing.py --write-readme

.PHONY: bench-traffic
bench-traffic: bench-setup build ## the two-sidecar path with routes, retries and two endpoints vs Envoy
	$(PY) benches/traffic.py --write-readme

.PHONY: bench-slowclients
bench-slowclients: bench-setup build ## slow head, body and read at 1,000 connections vs nginx and HAProxy (~40 min)
	$(PY) benches/slow_clients.py --write-readme

interop-tracing: build $(JAEGER) ## not in CI: a mesh's spans sent to Jaeger v1.75.0, read back from its query API and checked
	$(PY) -m tests.interop.tracing_jaeger --jaeger $(JAEGER)

demo: build ## run the demo shop for 30 s: sidecars over mTLS, a canary that meshpy rollout rolls back, a live table
	$(BIN)/meshpy demo --duration 30

clean: ## remove build output, .venv and caches
	$(CARGO) clean
	rm -rf $(VENV) $(TOOLS) dist .mypy_cache .ruff_cache .pytest_cache python/meshpy/_core*.so
	find python tests -name __pycache__ -type d -prune -exec rm -rf {} +
