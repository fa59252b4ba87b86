# django-whatsapp: `make demo` serves the example project against the sandbox gateway,
# `make test` installs what the tests need and runs lint, types and the whole suite.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help install demo test lint types pytest pytest-postgres clean

help:
	@echo "make demo   - create .venv, install, migrate, seed, serve http://$(HOST):$(PORT)/admin/"
	@echo "make test   - install test tools, then lint (ruff), types (mypy) and the test suite"
	@echo "make clean  - remove build artefacts (keeps .venv)"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PIP) install --quiet -e '.[example,test,lint]'
	@touch $(STAMP)

install: $(STAMP)

# On another host or port, the sandbox and its callbacks follow the server there, unless the
# environment already names the origin (example_project/.env.example lists every setting).
ifneq ($(HOST):$(PORT),127.0.0.1:8000)
demo: export WHATSAPP_CALLBACK_BASE_URL ?= http://$(HOST):$(PORT)
endif

demo: $(STAMP)
	cd example_project && $(abspath $(PY)) manage.py migrate --noinput
	cd example_project && $(abspath $(PY)) manage.py demo_setup
	cd example_project && $(abspath $(PY)) manage.py runserver $(HOST):$(PORT)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(VENV)/bin/pytest

# The same suite on PostgreSQL whenever one answers at 127.0.0.1:5432 (required in CI).
pytest-postgres: $(STAMP)
	VENV=$(VENV) scripts/pytest-postgres

test: lint types pytest pytest-postgres

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov
