# make run     start the proxy (creates .venv on first use)
# make reverse start it as a reverse proxy in front of https://api.mistral.ai
# make lint    ruff (lint, format check) and mypy
# make test    make lint, then the test suite (creates .venv with the test dependencies on first use, and
#              installs the Node clients of tests/node with `npm ci` whenever its package-lock.json changes)
# make bench   run the benchmark (bench/README.md); not part of the tests
# PYTHON=python3.12 VENV=.venv-3.12 make test   the same on another Python (mitmproxy 12 needs 3.12+)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
PORT ?= 8080
NODE_DIR := tests/node
NODE_STAMP := $(NODE_DIR)/node_modules/.installed

.PHONY: run reverse lint test bench rules clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

run: $(VENV)/.installed
	$(BIN)/mitmdump -s addon.py --listen-host 127.0.0.1 --listen-port $(PORT) \
		--set connection_strategy=lazy $(ARGS)

reverse: $(VENV)/.installed
	$(BIN)/mitmdump -s addon.py --listen-host 127.0.0.1 --listen-port $(PORT) \
		--mode reverse:https://api.mistral.ai --set connection_strategy=lazy $(ARGS)

# npm ci installs exactly the lockfile's versions (it empties node_modules first, so the stamp comes after).
# Without npm the Node client tests skip themselves, except in CI (CI=true), where that is an error.
$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		echo "npm ci in $(NODE_DIR)"; \
		cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	elif [ "$$CI" = true ]; then \
		echo "error: npm not found; the Node client tests (tests/test_clients_node.py) need Node.js 20+ and npm" >&2; \
		exit 1; \
	else \
		echo "warning: npm not found; tests/test_clients_node.py will be skipped" >&2; \
	fi

# ruff (lint and format) and mypy, configured in pyproject.toml; `make test` runs them first
lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint $(NODE_STAMP)
	$(BIN)/python -m pytest $(ARGS)

bench: $(VENV)/.installed-test
	$(BIN)/python bench/run.py $(ARGS)

clean:
	rm -rf .venv .venv-* .pytest_cache $(NODE_DIR)/node_modules
