# make run     start the proxy (creates .venv on first use)
# make reverse start it as a reverse proxy in front of https://api.mistral.ai
# make test    run the test suite (creates .venv with the test dependencies on first use)
# make bench   run the benchmark (bench/README.md); not part of the tests
# PYTHON=python3.12 VENV=.venv-3.12 make test   the same on another Python (mitmproxy 12 needs 3.12+)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
PORT ?= 8080

.PHONY: run reverse test bench rules clean

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

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(ARGS)

bench: $(VENV)/.installed-test
	$(BIN)/python bench/run.py $(ARGS)

clean:
	rm -rf .venv .venv-* .pytest_cache
