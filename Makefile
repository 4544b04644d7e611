# Roster mirror. `make run` starts everything locally; `make test` runs the whole suite.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),.tools/bin/uv)
RUN := $(UV) run --frozen
SPECTRAL_VERSION := 6.16.3
SPECTRAL := .tools/spectral-$(SPECTRAL_VERSION)/node_modules/.bin/spectral
AXE_VERSION := 4.14.1
AXE := .tools/axe-core-$(AXE_VERSION)/node_modules/axe-core/axe.min.js

.PHONY: help install run down test test-reliability browser-deps test-browser lint spectral typecheck format migrate openapi openapi-check bench

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

install: $(UV) ## Create .venv with every dependency (locked in uv.lock)
	$(UV) sync --frozen --all-extras

run: install ## Start the API and a worker on embedded Postgres/Redis unless DATABASE_URL/REDIS_URL are set
	$(RUN) roster demo

down: install ## Stop the embedded Postgres and Redis
	$(RUN) roster dev-services down

test: install ## Run the test suite and check the OpenAPI document
	$(RUN) pytest
	$(RUN) roster openapi --check

test-reliability: install ## The reliability suite: fault matrix, crash points, model-based syncs
	$(RUN) pytest -m reliability tests/reliability

$(AXE):
	npm install --prefix .tools/axe-core-$(AXE_VERSION) --ignore-scripts --no-audit --no-fund \
		axe-core@$(AXE_VERSION)

# Debian's Chromium, not a browser build of Playwright's own: Playwright only drives it.
browser-deps: install $(AXE) ## Chromium (apt, when not on the PATH) and axe-core for test-browser
	@command -v chromium >/dev/null || { apt-get update && \
		apt-get install -y --no-install-recommends chromium; }

# Redis db 12, apart from make test's 14: the two suites may run at once.
test-browser: browser-deps ## The console in headless Chromium: flows, axe-core, build/screenshots/
	mkdir -p build/screenshots
	AXE_CORE_JS=$(abspath $(AXE)) TEST_REDIS_DB=12 $(RUN) pytest -m browser tests/browser

lint: install spectral ## ruff (lint + format check), hadolint on the Dockerfile, and spectral
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) hadolint Dockerfile

$(SPECTRAL):
	npm install --prefix .tools/spectral-$(SPECTRAL_VERSION) --ignore-scripts --no-audit --no-fund \
		@stoplight/spectral-cli@$(SPECTRAL_VERSION)

spectral: $(SPECTRAL) ## Spectral (.spectral.yaml) on openapi/openapi.json: any warning fails
	$(SPECTRAL) lint --fail-severity=warn openapi/openapi.json

typecheck: install ## mypy --strict
	$(RUN) mypy

format: install ## Format and fix imports
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

migrate: install ## Apply the database migrations
	$(RUN) roster migrate

openapi: install ## Write openapi/openapi.json from the app
	$(RUN) roster openapi

openapi-check: install ## Fail if openapi/openapi.json differs from the app
	$(RUN) roster openapi --check

BENCH_SIZE ?= M
BENCH_ARGS ?=

bench: install ## Benchmarks (client, sync, naive, api, cli) at BENCH_SIZE; BENCH_ARGS="profile --top 40" etc.
	$(RUN) python -m bench --size $(BENCH_SIZE) $(BENCH_ARGS)
