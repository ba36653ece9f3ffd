# Two commands for a fresh machine: `make run` and `make test`. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RATING := $(PY) -m stream.cli

.PHONY: run test install up down status lint typecheck unit integration bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip
	$(VENV)/bin/pip install -q -e '.[test,bench]'
	touch $@

install: $(VENV)/.installed

## make run: stack up, catalog loaded, processor and sinks started, simulated workload
## rated, summary printed, monthly report and licence invoices written (.stack/).
run: install
	$(RATING) demo $(RUN_ARGS)

## make test: install, lint and type-check, stack up, every test, stack down.
test: install lint typecheck
	./deploy/ensure-compose-check.sh
	$(RATING) stack up --with postgres
	set -o pipefail; $(PY) -m pytest -q $(PYTEST_ARGS); status=$$?; \
	  $(RATING) stack down; exit $$status

unit: install
	$(PY) -m pytest -q tests/unit

up: install
	$(RATING) stack up --with postgres

down: install
	$(RATING) stack down

status: install
	$(RATING) stack status

lint: install
	$(VENV)/bin/ruff check stream processors sinks api reports tests bench

typecheck: install
	$(VENV)/bin/mypy

bench: install
	$(PY) -m bench.run $(BENCH_ARGS)

clean: down
	rm -rf $(VENV) .stack .mypy_cache .ruff_cache .pytest_cache
