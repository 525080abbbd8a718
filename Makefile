# Two set-up commands that work on a bare machine with Python 3.11:
#   make demo   creates .venv, installs, runs the bot over real BTC/USDT hourly data
#   make test   creates .venv, installs, checks the layers (lint-imports), runs the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/neuralbot demo

lint: $(STAMP)
	$(BIN)/lint-imports --no-cache  # the contracts in .importlinter (docs/architecture.md)

test: lint
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	for f in bench/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) var reports .pytest_cache
