# The commands the README uses. Everything runs from a project-local virtualenv that the
# first target to need it creates, so a fresh clone needs only python3 (>= 3.11) and make.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

# Tests talk to the real servers on this machine; set a variable to empty to skip those tests.
export CQRSKIT_TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test
export CQRSKIT_TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

PYTEST_ARGS ?=

# Every install takes the versions pinned here; `make upgrade` refreshes them on purpose.
LOCK := requirements/lock.txt

.PHONY: install upgrade run quickstart test lint format typecheck imports check bench clean

$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c $(LOCK) -e ".[dev]"
	touch $@

install: $(VENV)/.installed

## upgrade: move the lock to the newest releases pyproject.toml allows, reinstall, check
upgrade: install
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --extra bench --python-version 3.11 --upgrade \
		--quiet --output-file $(LOCK)
	$(MAKE) check

## run: the Orders service on the embedded default (SQLite files in .orders-data/)
run: install
	$(VENV)/bin/orders serve

## quickstart: the framework's one-file example, an event-sourced bank account on SQLite
quickstart: install
	$(PY) examples/quickstart.py

## test: the whole test suite
test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples

format: install
	$(VENV)/bin/ruff check --fix src tests bench examples
	$(VENV)/bin/ruff format src tests bench examples

typecheck: install
	$(VENV)/bin/mypy

## imports: the import-linter contracts (the library example is a root package too)
imports: install
	PYTHONPATH=examples/library $(VENV)/bin/lint-imports

## check: everything CI checks: lint, types, import contracts, tests
check: lint typecheck imports test

## fuzz: a longer API fuzzing campaign than CI's (schemathesis, SQLite; about 4 minutes)
.PHONY: fuzz
fuzz: install
	ORDERS_FUZZ_EXAMPLES=$${ORDERS_FUZZ_EXAMPLES:-100} $(PY) -m pytest -s -p no:cacheprovider \
		tests/orders/e2e/test_fuzz.py -k sqlite $(PYTEST_ARGS)

## soak: a long soak of `orders serve` (20,000 orders at 32 clients, then `orders verify`);
## on SQLite, or on the stores ORDERS_EVENT_STORE_URL / ORDERS_READ_DB_URL / ORDERS_REDIS_URL name
.PHONY: soak
soak: install
	ORDERS_SOAK_ORDERS=$${ORDERS_SOAK_ORDERS:-20000} ORDERS_SOAK_CLIENTS=$${ORDERS_SOAK_CLIENTS:-32} \
		$(PY) -m pytest -s -p no:cacheprovider tests/orders/reliability/test_soak.py $(PYTEST_ARGS)

## bench: every benchmark, about 15 minutes (not tests; PostgreSQL and Redis as above);
## tables on the terminal, JSON in bench/results/, plots in docs/bench/, the write-up in
## docs/benchmarks.md. HTTP and compare.py run 3 rounds (a true median); the bench
## extra brings compare.py's peer (eventsourcing) and matplotlib.
BENCH_STEPS ?= \
	"bench/bench_event_store.py --rounds 3" \
	"bench/bench_sqlite_writes.py --rounds 3" \
	"bench/bench_projections.py --latency-seconds 5" \
	"bench/bench_http.py --rounds 3 --seconds 2" \
	"bench/bench_search.py" \
	"bench/compare.py --rounds 3" \
	"bench/plots.py"
bench: install
	$(PY) -m pip install --quiet -c $(LOCK) -e ".[dev,bench]"
	@started=$$(date +%s); for step in $(BENCH_STEPS); do \
		echo "== $$step (load average: $$(cut -d' ' -f1-3 /proc/loadavg))"; \
		$(PY) $$step || exit 1; \
	done; echo "== all benchmarks: $$(( ($$(date +%s) - started) / 60 )) min"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis data .orders-data
