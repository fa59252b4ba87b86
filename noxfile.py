"""The supported Python and Django pairs, each in its own virtualenv with ``.[test]`` installed.

``make matrix`` runs the sessions tagged ``matrix`` (Python 3.12 with Django 6.0, Python 3.13 with
Django 6.1); ``make test`` covers Python 3.11 with Django 5.2 in ``.venv``, with lint, types and
coverage. Every session runs the suite on SQLite, then again on PostgreSQL when one answers at
127.0.0.1:5432 (required in CI). Django's deprecation warnings are errors everywhere (setup.cfg).

    nox -l                               # the sessions
    nox -t matrix                        # what CI runs
    nox -s "tests(py3.11-django5.2)"     # one pair; arguments after -- go to pytest

Interpreters are found on PATH or under pyenv (``$PYENV_ROOT/versions``); a missing one fails the
session rather than skipping it, so the matrix cannot pass without running.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import nox

#: (Python, Django): the latest patch release of each supported Django on its Python.
PAIRS = [
    ("3.11", "5.2.19"),
    ("3.12", "6.0.10"),
    ("3.13", "6.1.3"),
]
#: The pairs ``make test`` does not already cover.
MATRIX = {"3.12", "3.13"}

nox.options.default_venv_backend = "virtualenv"
nox.options.download_python = "never"
nox.options.error_on_missing_interpreters = True
nox.options.tags = ["matrix"]


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.parent.name))


def interpreter(version: str) -> str:
    """An absolute path to a working ``python{version}``, or the bare version when none is found.

    pyenv's shims answer for every installed version but fail for those not enabled, so each
    candidate is run once.
    """
    candidates = [shutil.which(f"python{version}")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = pyenv.glob(f"{version}.*/bin/python{version}")
    candidates += [str(p) for p in sorted(found, key=_version_key, reverse=True)]
    for candidate in candidates:
        if candidate and _runs(candidate, version):
            return candidate
    return version


def _runs(candidate: str, version: str) -> bool:
    check = f"import sys; sys.exit(sys.version.startswith('{version}.') is False)"
    try:
        result = subprocess.run(  # noqa: S603 - an interpreter found above
            [candidate, "-c", check], capture_output=True, timeout=30, check=False
        )
    except OSError:
        return False
    return result.returncode == 0


#: The test modules the matrix also runs on PostgreSQL.
POSTGRES_MODULES = [
    "tests/test_reliability_concurrency.py",
    "tests/test_reliability_faults.py",
    "tests/test_reliability_load.py",
    "tests/test_status_rules.py",
    "tests/test_status_batch.py",
    "tests/test_send_batch.py",
    "tests/test_callback.py",
    "tests/test_services.py",
    "tests/test_idempotency.py",
    "tests/test_hardening_send.py",
    "tests/test_suite_gaps_send_after_callback.py",
    "tests/test_suite_gaps_inbound_503.py",
    "tests/test_campaigns.py",
    "tests/test_campaign_workers.py",
    "tests/test_tasks_worker.py",
    "tests/test_purge.py",
]


@nox.session
@nox.parametrize(
    ("python", "django"),
    [
        nox.param(
            interpreter(python),
            django,
            id=f"py{python}-django{django.rsplit('.', 1)[0]}",
            tags=["matrix"] if python in MATRIX else [],
        )
        for python, django in PAIRS
    ],
)
def tests(session: nox.Session, django: str) -> None:
    """The suite on one Python and Django pair: SQLite, then PostgreSQL."""
    session.install("--quiet", "-e", ".[test]", f"django=={django}")
    session.run(
        "python",
        "-c",
        "import sys, django; v = django.get_version(); "
        "print('Python', sys.version.split()[0], 'Django', v); sys.exit(v != sys.argv[1])",
        django,
    )
    # The packaging test builds once, in `make test`; the browser tests need Chromium and run
    # there too.
    select = ["-m", "not packaging", "--ignore=tests/browser", *session.posargs]
    session.run("pytest", "-p", "no:cacheprovider", *select)
    # On PostgreSQL, the modules whose behaviour differs there (races and row locks, the
    # one-statement status rule, workers, database failures): `make test` runs the whole suite
    # on PostgreSQL for the main pair; here the other versions are checked where they matter,
    # which keeps CI well inside its time. Arguments given to nox replace this selection.
    session.run(
        "scripts/pytest-postgres",
        *(select if session.posargs else [*select, *POSTGRES_MODULES]),
        env={
            "VENV": session.virtualenv.location,
            # Its own test database, so that sessions and other checkouts never share one.
            "DJANGO_TEST_DB_NAME": "test_django_whatsapp_" + re.sub(r"\W", "_", django),
        },
        external=True,
    )
