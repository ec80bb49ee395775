# `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: install run test lint typecheck bench bench-instructions bench-faults clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Serve the demo app at http://127.0.0.1:5000 on the in-process store
## (`make run PORT=5001 HOST=0.0.0.0` to change where).
run: $(STAMP)
	$(BIN)/flask --app flask_stash.demo:create_app run --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

## Lint, type-check, and run the tests (servers the tests need are started by them).
test: lint typecheck
	$(BIN)/pytest

## Speed, side by side with a bare Flask view and Flask-Caching: hits, stampedes,
## the near cache, and a real server (gunicorn loaded by wrk: apt-get install wrk).
bench: $(STAMP)
	$(BIN)/python -m benchmarks

## Instructions per hit (valgrind's callgrind), repeatable on a busy machine: memory
## store, @memoize, memcached and Redis, each beside a bare view and Flask-Caching.
bench-instructions: $(STAMP)
	$(BIN)/python -m benchmarks.bench_instructions

## Faults of the store under gunicorn (memcached, then Redis; Flask-Stash and
## Flask-Caching): kill, restart, SIGSTOP/SIGCONT, eviction, Redis CLIENT PAUSE.
bench-faults: $(STAMP)
	$(BIN)/python -m benchmarks.bench_faults

## Build the documentation into docs/_build/html; any warning, or a reference
## that does not resolve, fails the build.
.PHONY: docs
docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -n -b html docs docs/_build/html

clean:
	rm -rf $(VENV) build src/*.egg-info .mypy_cache .ruff_cache .pytest_cache
