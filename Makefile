# opscenter: `make demo` starts a demo, `make test` runs every test.
#
# Variables: PYTHON (the interpreter that makes .venv), PYTEST_ARGS (extra pytest
# arguments, e.g. PYTEST_ARGS='tests/demo -x'), PYTEST_WORKERS (parallel pytest
# workers; 0 runs in one process), HOST and PORT (where `make demo` serves),
# BENCH_ARGS (e.g. BENCH_ARGS='--only B1,B4 --scale small' for `make bench`).

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?=
BENCH_ARGS ?=
HOST ?= 0.0.0.0
PORT ?= 8000

ifeq ($(PYTEST_WORKERS),0)
XDIST :=
else
XDIST := -n $(PYTEST_WORKERS)
endif

# opscenter refuses to start in production settings (DEBUG off) without SECRET_KEY and
# OPSCENTER_ENCRYPTION_KEY. Setting up and benchmarking run on keys of their own unless
# the environment gives some; tests bring theirs (pyproject.toml), the demo makes its own.
DEV_KEYS := SECRET_KEY="$${SECRET_KEY:-opscenter-make-development-key}" \
	OPSCENTER_ENCRYPTION_KEY="$${OPSCENTER_ENCRYPTION_KEY:-N0RBM2kHXc3UgP-ZOOmy8D1sQgsfcfYq0zSfpZfVbOA=}"

.PHONY: setup demo test bench lint format clean

setup: $(VENV)/.installed node_modules/.installed
	$(DEV_KEYS) $(PY) manage.py migrate --noinput
	$(DEV_KEYS) $(PY) manage.py collectstatic --noinput -v 0

# Stamp files keep a repeated `make setup` fast: pip and npm run again only when
# pyproject.toml or package-lock.json changed.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

demo: setup
	bin/demo

test: setup
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

# Benchmarks of issue 5 on PostgreSQL (DATABASE_URL when it names PostgreSQL, else
# opscenter_bench on 127.0.0.1): a fresh database each run, one table of results.
bench: setup
	$(DEV_KEYS) $(PY) -m bench $(BENCH_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) node_modules staticfiles var .pytest_cache test-results *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
