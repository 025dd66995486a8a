# The commands of the README: `make demo` (the main job), `make serve` (the HTTP API and the
# demo) and `make test` (CI runs this).
# Each sets up .venv first: torch==2.13.0 is installed on its own so pip takes the CPU wheel.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo serve test lint
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

demo: setup
	$(BIN)/detente demo

serve: setup
	$(BIN)/detente serve

lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: setup lint
	$(BIN)/python -m pytest
