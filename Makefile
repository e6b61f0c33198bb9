# The one entry point for people and CI. `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Stamp files make set-up idempotent: a second `make test` reuses the venv and the build.
VENV_STAMP := $(VENV)/.installed
BUILD_STAMP := $(VENV)/.built
RUST_SOURCES := $(shell find src -name '*.rs') Cargo.toml Cargo.lock pyproject.toml

.PHONY: help
help: ## Show this help
	@grep -hE '^[a-z][a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(VENV_STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "maturin>=1.9.4,<2" "pydantic>=2.5" "typer>=0.12" "pytest>=8" \
		"pytest-asyncio>=0.24" "pytest-timeout>=2.3" "ruff>=0.6" "mypy>=1.11" "aiokafka>=0.11" \
		"fastavro>=1.9" "fastapi>=0.110" "opentelemetry-sdk>=1.20" \
		"jsonschema>=4.18" "pyyaml>=6" "mkdocs-material>=9.5,<10" "mkdocstrings[python]>=0.26"
	touch $@

.PHONY: install
install: $(VENV_STAMP) ## Create .venv with the build and test tools

# The dev profile, shared with `cargo test` and clippy, so the C libraries build once.
$(BUILD_STAMP): $(VENV_STAMP) $(RUST_SOURCES)
	@# A stale per-version build (from before the abi3 wheel) would shadow the new one.
	rm -f python/fastkafka/_core.*.so
	$(BIN)/maturin develop --quiet
	touch $@

.PHONY: build-dev
build-dev: $(BUILD_STAMP) ## Build the extension into .venv (dev profile, optimized dependencies)

.PHONY: build-release
build-release: $(VENV_STAMP) ## Build the extension into .venv in release mode (for benchmarks)
	rm -f python/fastkafka/_core.*.so
	$(BIN)/maturin develop --quiet --release
	rm -f $(BUILD_STAMP)

.PHONY: demo
demo: $(BUILD_STAMP) ## Run the guide's multi-cluster app end to end on the in-memory broker
	$(BIN)/python examples/demo.py

.PHONY: demo-kafka
demo-kafka: $(BUILD_STAMP) tansu ## The same app under `fastkafka run` on two local Tansu clusters
	$(BIN)/python scripts/local_kafka.py run --topic preprocessed_signals --topic predictions \
		-- $(BIN)/python examples/demo_kafka.py

.PHONY: test-rust
test-rust: tansu ## Rust tests: the core without Python or C, then with the Kafka transport
	cargo test --no-default-features
	cargo test --features kafka

.PHONY: tansu
tansu: ## Install the Kafka-compatible test broker (Tansu 0.6.0) into ~/.cargo/bin if missing
	$(PYTHON) scripts/local_kafka.py install

.PHONY: chromium
chromium: ## Install Debian's Chromium (the docs page is tested in it) if missing
	@command -v chromium >/dev/null || { export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; }

.PHONY: test-python
test-python: $(BUILD_STAMP) tansu chromium ## Python tests (pytest), real-broker ones included
	$(BIN)/pytest; status=$$?; if [ $$status -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$status

.PHONY: docs
docs: $(BUILD_STAMP) ## The documentation site, built offline into target/site (open index.html)
	rm -rf docs/guide-app
	$(BIN)/fastkafka docs generate --root-path docs/guide-app examples.multi_cluster_example:app
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --quiet

.PHONY: faults
faults: $(BUILD_STAMP) tansu ## The fault matrix: each fault under each handler shape on Tansu (~70 min)
	$(BIN)/python scripts/faults/harness.py --markdown target/faults.md

.PHONY: test-wheels
test-wheels: $(VENV_STAMP) ## The one abi3 wheel, pip-installed on every CPython >= 3.11 here and tested
	$(BIN)/python scripts/test_wheels.py

.PHONY: test
test: test-rust test-python test-wheels lint ## Everything CI checks: Rust and Python tests, wheels, lints

.PHONY: lint
lint: $(BUILD_STAMP) ## cargo fmt/clippy for each feature set, ruff, mypy --strict, stubtest
	cargo fmt --check
	cargo clippy --all-targets --no-default-features -- -D warnings
	cargo clippy --all-targets --features python -- -D warnings
	cargo clippy --all-targets --features kafka -- -D warnings
	cargo clippy --all-targets --features python,kafka -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --no-default-features
	$(BIN)/ruff check python tests_py examples benches scripts
	$(BIN)/ruff format --check python tests_py examples benches scripts
	$(BIN)/mypy --strict python/fastkafka
	$(BIN)/python -m mypy.stubtest fastkafka._core

.PHONY: bench
bench: build-release ## Benchmarks: Tester vs FastKafka 0.8.0, a real broker vs confluent-kafka (flat out, paced), a 5M-record soak, each executor on every CPython, criterion
	$(BIN)/pip install --quiet "confluent-kafka>=2.5" "matplotlib>=3.8"
	$(BIN)/python benches/bench_tester.py
	$(BIN)/python benches/bench_kafka.py
	BENCH_DELAY_MS=25 $(BIN)/python benches/bench_kafka.py
	$(BIN)/python benches/bench_paced.py
	BENCH_DELAY_MS=25 $(BIN)/python benches/bench_paced.py
	$(BIN)/python benches/bench_executors.py
	$(BIN)/python benches/soak.py
	cargo bench --no-default-features --bench memory_broker

.PHONY: clean
clean: ## Remove build outputs and virtual environments
	cargo clean
	rm -rf $(VENV) .venv-fastkafka-0.8.0 .pytest_cache .mypy_cache .ruff_cache
