# Quickstart: `make demo` (a flow deployed and run locally, no Azure) and `make test`.
# Both set everything up on a fresh machine: a virtualenv (uv), Azurite from npm, local settings.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# checkov (the Bicep analyser) in a venv of its own: its pins are not the app's
IAC    := .venv-iac

.PHONY: setup test check test-unit live-test demo dev lint lint-python lint-iac bench browser clean

# independent steps run side by side (the venv and npm; the Python lint and checkov): a fresh
# clone waits on downloads and installs more than on the CPU (their lines may interleave)
MAKEFLAGS += --jobs=2

setup: $(VENV)/.installed node_modules/.installed local.settings.json flows/finance/.env

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode --quiet -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Created once from the examples, never overwritten: they hold your secrets.
local.settings.json: | local.settings.json.example
	$(PYTHON) -c "import json,secrets; d=json.load(open('local.settings.json.example')); \
	d['Values']['DEPLOYER_CONFIG_DIGEST_KEY']=secrets.token_hex(32); \
	json.dump(d, open('local.settings.json','w'), indent=2)"

flows/finance/.env: | flows/finance/.env.example
	cp flows/finance/.env.example $@

# the lint runs first: its import bans (only adapters import Azure/Prefect SDKs) are architecture.
# Four test processes on two cores (pytest-xdist): the e2e tests wait on real workers far more
# than they compute; one Azurite and one Prefect server serve them all (tests/conftest.py), and
# an idle process takes tests queued for a busy one (worksteal), so slow e2e tests spread out
PYTEST_N := -n 4 --dist worksteal
test: setup lint browser
	$(BIN)/pytest $(PYTEST_N)

# for every change: lint, unit and integration tests (no real worker processes)
check: setup lint
	$(BIN)/pytest $(PYTEST_N) tests/unit tests/integration

# the dashboard's browser test drives Debian's chromium (never a browser download); where apt
# cannot install it, that one test says so and is skipped
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get install -y -qq chromium >/dev/null 2>&1 || \
	  (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1)) || \
	  echo "warning: could not install chromium with apt: the dashboard's browser test will be skipped"

# against real Azure: azd up, the whole path, azd down (tests/live/README.md); skipped without
# a subscription's settings
live-test: setup
	$(BIN)/pytest tests/live -m live -p no:randomly --timeout 7200 -rs

test-unit: setup
	$(BIN)/pytest tests/unit

demo: setup
	$(BIN)/python -m deployer.demo

lint: lint-python lint-iac

lint-python: setup
	$(BIN)/ruff check deployer tests bench function_app.py
	$(BIN)/mypy

lint-iac: $(IAC)/.installed
	$(IAC)/bin/checkov --config-file .checkov.yaml

$(IAC)/.installed: $(VENV)/.installed
	$(BIN)/uv venv --clear --quiet --python $(PYTHON) $(IAC)
	$(BIN)/uv pip install --python $(IAC)/bin/python --quiet 'checkov>=3.2,<4'
	touch $@

# the daily loop: Azurite, a Prefect server with its UI and the function app host, data kept in
# .deployer/services between runs; Ctrl-C stops them all
dev: setup
	$(BIN)/deployer dev --services

bench: setup
	$(BIN)/python bench/bundle.py
	$(BIN)/python bench/local_deploy.py
	$(BIN)/python bench/azure_rotation.py
	$(BIN)/python bench/serverless.py
	$(BIN)/python bench/deploy_safety.py
	$(BIN)/python bench/fast_deploy.py
	$(BIN)/python bench/cleanup.py
	$(BIN)/python bench/function_app.py
	$(BIN)/python bench/idle_load.py
	$(BIN)/python bench/promotion.py

clean:
	rm -rf $(VENV) $(IAC) node_modules .deployer .demo .pytest_cache .mypy_cache .ruff_cache
