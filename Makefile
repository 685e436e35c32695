# hqlake front door. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
RUN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_LINK_MODE := copy

DEMO_HOME ?= .hqlake/demo
DEMO_START ?= 2026-11-09
DEMO_DAYS ?= 7
DEMO_SCALE ?= 0.02
AIRFLOW_PORT ?= 8081
AIRFLOW_SLOTS ?= 1
# pytest-xdist workers of make test (tests/xdist_groups.py); 0 runs in this process
TEST_WORKERS ?= 2

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-z][a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# --compile-bytecode: the .pyc files are written once here. Where PYTHONDONTWRITEBYTECODE is
# set (this machine's and CI's environment), Python never writes them itself and compiled
# Airflow, dbt, GX and polars again in every process: 21-28 s of imports instead of 9-11 s,
# paid by every Airflow task, CLI subprocess and test worker. 25 s more at install.
$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-extras --quiet --compile-bytecode
	touch $@

install: $(VENV)/.installed ## create .venv from uv.lock (run by every other target)

# Headless Chromium renders the HTML reports in the tests (a screenshot proves they render).
# Debian's package; installed once, as root or through sudo.
browser: ## install Debian's Chromium for the report screenshot tests
	@{ command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi wqy; } || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing Debian's chromium (report screenshot tests)"; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-wqy-microhei >/dev/null; }

demo: install ## generate a week of the sample city and ingest it on the embedded runtime
	HQLAKE_HOME=$(DEMO_HOME) $(RUN)/python -m infra.demo --inbox $(DEMO_HOME)/inbox --start $(DEMO_START) --days $(DEMO_DAYS) --scale $(DEMO_SCALE)

portal: install ## serve the demo warehouse's quality portal on 127.0.0.1:8080 (after make demo) with one demo account per role
	HQLAKE_HOME=$(DEMO_HOME) HQLAKE_ORG_REGISTRY=$(DEMO_HOME)/inbox/_registry.csv HQLAKE_PORTAL_URL=http://127.0.0.1:8080 $(RUN)/python -m infra.portal.demo

docs: install ## the data resource catalogue (dbt docs) of the demo warehouse; run make demo first
	HQLAKE_HOME=$(DEMO_HOME) HQLAKE_ORG_REGISTRY=$(DEMO_HOME)/inbox/_registry.csv $(RUN)/hqlake docs --out $(DEMO_HOME)/catalogue

backfill: install ## the daily run for START..END (YYYY-MM-DD) from INBOX, e.g. make backfill START=2026-11-09 END=2026-11-11 INBOX=.hqlake/demo/inbox
	$(RUN)/hqlake backfill --start $(START) --end $(END) $(if $(INBOX),--inbox $(INBOX))

airflow: install ## a local Airflow (api-server, scheduler, dag-processor) on 127.0.0.1:AIRFLOW_PORT running the daily DAG; prints the UI login
	$(RUN)/python -m infra.airflow_local start --port $(AIRFLOW_PORT) --slots $(AIRFLOW_SLOTS)

airflow-stop: install ## stop the processes make airflow started
	$(RUN)/python -m infra.airflow_local stop

wheel: install ## build the project's wheel into dist/ (what a hospital installs for hqlake check)
	$(UV) build --wheel --out-dir dist

bench: install ## time and memory of a city-day at 0.25/1/4 M rows (~45 min); tables in bench/results
	$(RUN)/python -m bench.run
	$(RUN)/python -m bench.overlap

test: install browser ## run the test suite on TEST_WORKERS processes (each starts its own SeaweedFS and chDB)
	$(RUN)/pytest -n $(TEST_WORKERS) --dist loadscope

test-fast: install ## the unit tests only (no chDB, SeaweedFS, Chromium or Airflow stack)
	$(RUN)/pytest -n $(TEST_WORKERS) --dist loadscope -m "not integration and not browser and not scheduler"

lint: install ## ruff, the import layers (import-linter) and sqlfluff
	$(RUN)/ruff check .
	$(RUN)/ruff format --check .
	$(RUN)/lint-imports
	$(RUN)/sqlfluff lint dbt/models

format: install ## apply ruff's fixes and formatting
	$(RUN)/ruff check --fix .
	$(RUN)/ruff format .

clean: ## remove local state (.hqlake) but keep the virtualenv
	rm -rf .hqlake

.PHONY: help install browser demo portal docs backfill airflow airflow-stop wheel bench test test-fast lint format clean
