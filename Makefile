# django-whatsapp: `make demo` serves the example project against the sandbox gateway,
# `make test` installs what the tests need and runs lint, types and the whole suite,
# `make matrix` runs the suite on the other Python and Django pairs, `make docs` builds the docs.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed
# The demo's own stamp: the package and the example project's extra, nothing for tests or lint
# (the sandbox needs only the package's own requirements).
DEMO_STAMP := $(VENV)/.demo-installed
NOX_STAMP := $(VENV)/.nox-installed
DOCS_STAMP := $(VENV)/.docs-installed
BROWSER_STAMP := $(VENV)/.browser-installed
HOST ?= 127.0.0.1
PORT ?= 8000
# Branch coverage of the package, in percent: `make coverage` fails under it. It is measured
# over the SQLite run and the PostgreSQL run together, so the PostgreSQL-only code counts.
COVERAGE_GATE := 97
# Each run keeps its own data file; `make coverage` combines them and enforces the gate.
COVERAGE := --cov=django_whatsapp --cov-branch --cov-report=
# The suite runs over both cores (pytest-xdist); PYTEST_WORKERS=0 runs it in one process. Each
# worker has its own test database (suffix _gw0, _gw1) and its own Redis server; the modules in
# tests/conftest.py's RUN_WHOLE_IN_ONE_WORKER stay in one worker.
PYTEST_WORKERS ?= 2
XDIST := -n $(PYTEST_WORKERS) --dist loadgroup
# Python's bytecode cache stays on for every recipe, even where the environment turns it off:
# each pytest run, worker and child process would compile the app and rewrite the tests' asserts
# again (a collection: 12.2 s instead of 4.6).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: help install install-nox demo test lint types pytest pytest-sqlite pytest-browser \
	pytest-postgres coverage packaging matrix matrix-install browser-matrix docs chromium \
	screenshots messages bench ci clean

help:
	@echo "make demo      - create .venv, install the demo's needs, migrate, seed, serve (with a"
	@echo "                 worker that sends campaigns, stopped with the server)"
	@echo "                 http://$(HOST):$(PORT)/admin/ (another port: make demo PORT=8001)"
	@echo "make test      - install test tools, then lint (ruff, no sleeps in tests), types (mypy"
	@echo "                 --strict), the suite on SQLite (incl. the packaging test) and on"
	@echo "                 PostgreSQL, then their combined branch coverage"
	@echo "                 (at least $(COVERAGE_GATE)%)"
	@echo "make matrix    - the suite on Python 3.12 + Django 6.0 and Python 3.13 + Django 6.1 (nox),"
	@echo "                 with the browser tests on 3.13 + 6.1"
	@echo "make browser-matrix - only the browser tests on Python 3.13 + Django 6.1 (nox)"
	@echo "make matrix-install - only make the matrix's virtualenvs (CI does it beside make test)"
	@echo "make docs      - build the Sphinx docs into docs/_build/html, warnings are errors"
	@echo "make packaging - only the packaging test: build, install into a new project, send"
	@echo "make screenshots - retake docs/img/*.png in headless Chromium"
	@echo "make messages  - regenerate and compile the en/ru/uk translation catalogues"
	@echo "make bench     - the benchmarks (bulk send, callback, resync, admin list, campaigns,"
	@echo "                 faults, a message's whole life), as ratios against a bare baseline"
	@echo "make ci        - everything CI runs: test, docs, matrix"
	@echo "make clean     - remove build artefacts (keeps .venv)"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PIP) install --quiet -e '.[example,test,lint]'
	@touch $(STAMP)

# Playwright for the browser tests (tests/browser/): only the test runs need it, not the demo.
$(BROWSER_STAMP): $(STAMP)
	$(PIP) install --quiet -e '.[browser]'
	@touch $(BROWSER_STAMP)

install: $(STAMP)

$(DEMO_STAMP): $(PY) pyproject.toml
	$(PIP) install --quiet -e '.[example]'
	@touch $(DEMO_STAMP)

# On another host or port, the sandbox and its callbacks follow the server there, unless the
# environment already names the origin (example_project/.env.example lists every setting).
ifneq ($(HOST):$(PORT),127.0.0.1:8000)
demo: export WHATSAPP_CALLBACK_BASE_URL ?= http://$(HOST):$(PORT)
endif

# The server and, beside it, the worker that sends campaigns (Django's task framework, its queue
# in the demo's database): started together, and the worker stopped when the server stops
# (Ctrl+C included).
demo: $(DEMO_STAMP)
	cd example_project && $(abspath $(PY)) manage.py migrate --noinput
	cd example_project && $(abspath $(PY)) manage.py demo_setup
	cd example_project && { $(abspath $(PY)) manage.py db_worker --no-reload --no-startup-delay & \
		worker=$$!; trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT; \
		trap 'exit 130' INT TERM; \
		$(abspath $(PY)) manage.py runserver $(HOST):$(PORT); }

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	scripts/check-no-sleeps

types: $(STAMP)
	$(VENV)/bin/mypy

# The suite on SQLite over both cores; its coverage data goes to .coverage.sqlite (the old data
# is removed first). Under the tracer the costly property tests draw a fifth of their examples
# (tests/examples.py); the PostgreSQL run draws them all. Then the browser tests, in a pytest
# process of their own: Playwright's event loop and the live server's shared in-memory database
# stay apart from the rest of the suite.
pytest: pytest-sqlite
	$(MAKE) --no-print-directory pytest-browser

pytest-sqlite: $(BROWSER_STAMP) chromium
	rm -f .coverage .coverage.sqlite
	COVERAGE_FILE=.coverage.sqlite WHATSAPP_TEST_EXAMPLES=$${WHATSAPP_TEST_EXAMPLES:-0.2} \
		$(VENV)/bin/pytest $(XDIST) $(COVERAGE) --ignore=tests/browser

pytest-browser: $(BROWSER_STAMP) chromium
	COVERAGE_FILE=.coverage.sqlite $(VENV)/bin/pytest $(COVERAGE) --cov-append tests/browser

# The suite again on PostgreSQL whenever one answers at 127.0.0.1:5432 (required in CI), over
# both cores. Only the tests that can reach the database (--database-tests-only,
# tests/conftest.py): the others cannot tell the two databases apart and ran in `pytest`, as did
# the browser tests (the same pages on either database). First the modules whose behaviour
# differs on PostgreSQL (tests/postgres_modules.py), their coverage data in .coverage.postgres
# (the PostgreSQL-only code is theirs); then the others, which run there the code they ran on
# SQLite, without the tracer's cost.
POSTGRES_MODULES = $(shell $(PYTHON) tests/postgres_modules.py)
PG_SELECT := --database-tests-only -m "not packaging" --ignore=tests/browser
pytest-postgres: $(STAMP)
	rm -f .coverage.postgres
	COVERAGE_FILE=.coverage.postgres VENV=$(VENV) scripts/pytest-postgres $(XDIST) $(PG_SELECT) \
		$(COVERAGE) $(POSTGRES_MODULES)
	VENV=$(VENV) scripts/pytest-postgres $(XDIST) $(PG_SELECT) \
		$(addprefix --ignore=,$(POSTGRES_MODULES))

# After both runs: their data combined into .coverage, reported, and the gate enforced.
coverage: $(STAMP)
	VENV=$(VENV) scripts/coverage-gate $(COVERAGE_GATE)

packaging: $(STAMP)
	$(VENV)/bin/pytest -m packaging

# After the SQLite run, the browser tests and the PostgreSQL run at the same time (the browser
# tests keep about one core busy, the PostgreSQL run waits on its server and worker processes
# for much of its time; each one's output is printed when it ends), then the coverage step.
# The PostgreSQL run is named first: make 4.3 started nothing beside a first goal whose
# prerequisite (chromium) was being made, and ran the two one after the other.
test: lint types pytest-sqlite
	$(MAKE) --no-print-directory -j2 --output-sync=target pytest-postgres pytest-browser
	$(MAKE) --no-print-directory coverage

$(NOX_STAMP): $(PY)
	$(PIP) install --quiet 'nox>=2025.5'
	@touch $(NOX_STAMP)

install-nox: $(NOX_STAMP)

# The pairs in noxfile.py tagged "matrix"; each session has its own virtualenv under .nox/,
# kept between runs (--reuse-venv=yes: a second run installs nothing new). The pairs of BROWSER
# (Python 3.13 + Django 6.1) run the browser tests too, in the same virtualenv.
matrix: $(NOX_STAMP) chromium
	$(VENV)/bin/nox --reuse-venv=yes -t matrix

# Only the matrix's virtualenvs, with what they need installed (.ci/run makes them while `make
# test` runs: the downloads and installs wait on the network, not on the cores).
matrix-install: $(NOX_STAMP)
	$(VENV)/bin/nox --reuse-venv=yes -t matrix --install-only

# The browser tests alone on the pairs of BROWSER (noxfile.py's "browser" sessions).
browser-matrix: $(NOX_STAMP) chromium
	$(VENV)/bin/nox --reuse-venv=yes -t browser

$(DOCS_STAMP): $(STAMP)
	$(PIP) install --quiet -e '.[docs]'
	@touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	@echo "docs: file://$(abspath docs/_build/html/index.html)"

# Debian's Chromium for the browser tests (tests/browser/); they skip without it, except in CI.
# `make test` installs it where it can (root with apt-get); elsewhere the browser tests skip,
# saying how to enable them. In CI (CI=true) a failed install fails the run.
chromium:
	@if [ -x /usr/bin/chromium ]; then echo "chromium: $$(/usr/bin/chromium --version)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
			|| [ "$${CI:-}" != true ]; \
	else echo "chromium: not installed, and installing it needs root and apt-get:" \
		"the browser tests will be skipped (apt-get install chromium to run them)"; fi

# docs/img/*.png, from the browser tests marked "screenshots" (tests/browser/test_screenshots.py).
screenshots: $(BROWSER_STAMP) chromium
	$(PY) docs/screenshots.py

# The translation catalogues (en, ru, uk); needs GNU gettext (apt-get install gettext).
# Translate the new empty msgstr lines after it, then run it again to compile.
messages: $(STAMP)
	cd django_whatsapp && $(abspath $(VENV))/bin/django-admin makemessages -l en -l ru -l uk \
		&& $(abspath $(VENV))/bin/django-admin compilemessages

# The benchmarks of docs/benchmarks.rst, printed as ratios against baselines of the same run.
bench: $(STAMP)
	$(PY) -m benchmarks

ci: test docs matrix

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* htmlcov \
		.nox docs/_build
