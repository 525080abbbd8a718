# Two set-up commands that work on a bare machine with Python 3.11:
#   make demo   creates .venv, installs, runs the bot over real BTC/USDT hourly data
#   make test   creates .venv, installs, checks the layers (lint-imports), runs the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# import-linter lives apart: its dependency rich would be imported by structlog in every neuralbot
# process of .venv (~50 ms); the layers are read from the source, nothing of ours is installed there
LINT_VENV := .venv-lint
LINT_STAMP := $(LINT_VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(LINT_STAMP):
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/python -m pip install --quiet 'import-linter>=2.1,<3'
	touch $(LINT_STAMP)

demo: $(STAMP)
	$(BIN)/neuralbot demo

lint: $(LINT_STAMP)
	PYTHONPATH=. $(LINT_VENV)/bin/lint-imports --no-cache  # the contracts in .importlinter (docs/architecture.md)

test: lint $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	for f in bench/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) $(LINT_VENV) var reports .pytest_cache
