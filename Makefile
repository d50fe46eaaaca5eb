# EdgeFleet: two commands matter — `make demo` and `make test` (see README).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-unit install lint bench bench-quick clean migration

$(BIN)/python:
	bash scripts/bootstrap.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

## Install, then run the whole product locally: control plane, embedded broker, 3 devices.
demo: install
	$(BIN)/edgectl demo

## Install, start Mosquitto/PostgreSQL if needed, then lint, type-check, check the import
## rules, run every test, then every benchmark in quick mode (docs/benchmarks.md).
test: install
	bash scripts/services.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest
	$(BIN)/python -m bench --quick

## The unit tests alone (tests/unit): the quick check while working.
test-unit: install
	$(BIN)/pytest tests/unit

## A new schema migration for a model change: make migration m="add device.site"
## (docs/controlplane.md, "Schema migrations"; read and format what it writes).
migration: install
	$(BIN)/python -m controlplane.migrations.new "$(m)"
	$(BIN)/ruff format controlplane/migrations/versions

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy && $(BIN)/lint-imports

## Every benchmark in full (minutes; figures for docs/benchmarks.md come from a quiet box).
bench: install
	$(BIN)/python -m bench

## Every benchmark in quick mode (about 30 s): does each still run? Part of `make test`.
bench-quick: install
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
