# Two commands for a fresh machine: `make run` and `make test`. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RATING := $(PY) -m stream.cli
# pytest-xdist workers for `make test`: the tests mostly wait on the broker and on the
# processes they start, so 4 fit on 2 cores (about 5 min instead of 14).
TEST_WORKERS ?= 4

.PHONY: run test install compile up down status lint typecheck unit bench clean

# The editable install is pure Python; `compile` then builds the hot path
# (stream/compiled.py) with mypyc beside the sources, again whenever a source changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip 'setuptools>=77'
	RATING_COMPILE=0 $(VENV)/bin/pip install -q -e '.[test,bench]'
	touch $@

install: $(VENV)/.installed

$(VENV)/.compiled: $(VENV)/.installed setup.py $(wildcard stream/*.py processors/*.py processors/*/*.py)
	@echo "compiling the hot path with mypyc (about a minute)"
	$(PY) setup.py -q build_ext --inplace > $(VENV)/compile.log 2>&1 || { tail -40 $(VENV)/compile.log; exit 1; }
	touch $@

## make compile: build the hot path into C extensions beside the sources (mypyc).
## RATING_COMPILE=0 make ...: remove them instead and run everything pure Python.
ifeq ($(RATING_COMPILE),0)
compile: install
	find stream processors -name '*.so' -delete
	rm -f stream/compiled_sources.json $(VENV)/.compiled
else
compile: $(VENV)/.compiled
endif

## make run: stack up, catalog loaded, processor and sinks started, simulated workload
## rated, summary printed, monthly report and licence invoices written (.stack/).
run: compile
	$(RATING) demo $(RUN_ARGS)

## make test: install, lint and type-check, stack up, every test, stack down.
test: compile lint typecheck
	./deploy/ensure-compose-check.sh
	$(RATING) stack up --with postgres
	set -o pipefail; $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS); status=$$?; \
	  $(RATING) stack down; exit $$status

unit: compile
	$(PY) -m pytest -q tests/unit

up: install
	$(RATING) stack up --with postgres

down: install
	$(RATING) stack down

status: install
	$(RATING) stack status

lint: install
	$(VENV)/bin/ruff check stream processors sinks api reports tests bench setup.py

typecheck: install
	$(VENV)/bin/mypy

bench: compile
	$(PY) -m bench.run $(BENCH_ARGS)

clean: down
	rm -rf $(VENV) .stack .mypy_cache .ruff_cache .pytest_cache build
	find stream processors -name '*.so' -delete
