# Shortcuts. `make setup-dev` then `make test` on a fresh machine (Python 3.11+ and git).
PYTHON    ?= python3
VENV      ?= .venv
INVENTORY ?= local
PHASE     ?=
INVOKE    := $(VENV)/bin/invoke
# pytest-xdist workers for every test target, each with servers of its own (at most 4)
WORKERS   ?= auto
PYTEST_ARGS ?=
PYTEST    := $(VENV)/bin/pytest
PARALLEL  := -n $(WORKERS) --maxprocesses 4

.PHONY: setup-dev deploy plan cleanup-dev test test-fast test-integration lint bench venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11 or newer is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -e '.[test,lint]'
	touch $@

setup-dev: venv  ## venv, install, start embedded PostgreSQL + moto, converge phase 1, health check
	$(INVOKE) setup-dev --inventory $(INVENTORY)

deploy: venv  ## converge to PHASE=N (without PHASE: the inventory's phase; never below the deployed one)
	$(INVOKE) deploy $(if $(PHASE),--phase $(PHASE)) --inventory $(INVENTORY)

plan: venv  ## what deploy PHASE=N would change, touching nothing
	$(INVOKE) plan $(if $(PHASE),--phase $(PHASE)) --inventory $(INVENTORY)

cleanup-dev: venv  ## tear the environment down in reverse and stop local services
	$(INVOKE) cleanup-dev --inventory $(INVENTORY)

test: venv  ## the whole suite, against real servers it starts on loopback; prints the 25 slowest
	$(PYTEST) $(PARALLEL) --durations=25 $(PYTEST_ARGS)

test-fast: venv  ## the fast tier: every test that needs no server, in seconds
	$(PYTEST) $(PARALLEL) -m "not integration and not slow" $(PYTEST_ARGS)

test-integration: venv  ## the rest: the tests with servers, and the slow ones
	$(PYTEST) $(PARALLEL) -m "integration or slow" --durations=25 $(PYTEST_ARGS)

lint: venv  ## ruff (lint and format check), mypy, and the migrations (squawk and the project's checks), clean
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(INVOKE) db.lint

bench: venv  ## benchmarks, printing ratios measured in one run
	$(VENV)/bin/python bench/run.py
