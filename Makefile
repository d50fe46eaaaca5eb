# EdgeFleet: two commands matter — `make demo` and `make test` (see README).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
## EdgeFleet's own packages (byte-compiled by `install`, their bytecode removed by `clean`)
PACKAGES := protocol model_store hw_profiles agent controlplane edgectl bench
## pytest-xdist workers of `make test`'s parallel phase (the tests mostly wait on brokers,
## servers and subprocesses, so more workers than cores still shortens the run)
WORKERS ?= 3

.PHONY: demo test test-unit install lint bench bench-quick clean migration images compose-test system-test browser-test

$(BIN)/python:
	bash scripts/bootstrap.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## EdgeFleet's own packages byte-compiled, as a wheel install leaves them: where
## PYTHONDONTWRITEBYTECODE is set (this machine, CI), Python would otherwise compile every
## module again at each start of each agent, control plane and edgectl (~1.4 s and ~0.9 MB
## of the agent's resident memory; docs/benchmarks.md). Up to date: a few stat calls.
install: $(VENV)/.installed
	$(BIN)/python -m compileall -q $(PACKAGES)

## Install, then run the whole product locally: control plane, embedded broker, 3 devices.
demo: install
	$(BIN)/edgectl demo

## Install, start Mosquitto/PostgreSQL and a Docker engine if needed, install Debian's
## chromium if missing, lint, type-check, check the import rules, build the images, run
## every test (the system tests in containers and the browser tests in Chromium included:
## tests/system, tests/browser), then every benchmark in quick mode. The tests run in two
## phases: all but the `serial` ones on $(WORKERS) pytest-xdist workers (a module's tests
## on one worker, so module-scoped fixtures are set up once), then the serial ones
## (system and browser tests) alone.
test: install
	bash scripts/services.sh
	bash scripts/docker-engine.sh
	bash scripts/chromium.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	bash docker/images.sh
	EDGEFLEET_REQUIRE_DOCKER=1 EDGEFLEET_REQUIRE_BROWSER=1 \
	  $(BIN)/pytest -n $(WORKERS) --dist loadscope -m "not serial"
	EDGEFLEET_REQUIRE_DOCKER=1 EDGEFLEET_REQUIRE_BROWSER=1 $(BIN)/pytest -m serial
	$(BIN)/python -m bench --quick

## The unit tests alone (tests/unit): the quick check while working.
test-unit: install
	$(BIN)/pytest tests/unit

## A new schema migration for a model change: make migration m="add device.site"
## (docs/controlplane.md, "Schema migrations"; read and format what it writes).
migration: install
	$(BIN)/python -m controlplane.migrations.new "$(m)"
	$(BIN)/ruff format controlplane/migrations/versions

## Every image, on a machine without a registry: a Debian base from debootstrap
## (docker import), then docker build FROM it (docs/docker.md). Starts dockerd if needed.
images: install
	bash scripts/docker-engine.sh
	bash docker/images.sh

## Build the images, start docker/compose.yaml (broker, PostgreSQL, 2 control planes,
## 3 agents), enroll, push a model, check every agent serves it, tear it all down.
compose-test: images
	EDGEFLEET_REQUIRE_DOCKER=1 $(BIN)/pytest tests/system/test_compose_stack.py

## Build the images, then the agent's systemd unit under a real systemd as PID 1 in a
## container (tests/system/test_systemd_pid1.py) and the Compose stack.
system-test: images
	EDGEFLEET_REQUIRE_DOCKER=1 $(BIN)/pytest tests/system

## The dashboard in Debian's chromium (tests/browser, about 20 s); screenshots are kept
## in build/test-artifacts/screenshots/.
browser-test: install
	bash scripts/chromium.sh
	EDGEFLEET_REQUIRE_BROWSER=1 $(BIN)/pytest tests/browser

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy && $(BIN)/lint-imports

## Every benchmark in full (minutes; figures for docs/benchmarks.md come from a quiet box).
bench: install
	$(BIN)/python -m bench

## Every benchmark in quick mode (about 3 minutes): does each still run? Part of `make test`.
bench-quick: install
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
	find $(PACKAGES) -name __pycache__ -prune -exec rm -rf {} +
