"""The supported Python and Django pairs, each in its own virtualenv with ``.[test]`` installed.

``make matrix`` runs the sessions tagged ``matrix`` (Python 3.12 with Django 6.0, Python 3.13 with
Django 6.1); ``make test`` covers Python 3.11 with Django 5.2 in ``.venv``, with lint, types and
coverage. Every session runs the whole suite on SQLite, then on PostgreSQL (when one answers at
127.0.0.1:5432; required in CI) the modules that touch database-specific code, both over the two
cores (pytest-xdist); on the pairs of ``BROWSER`` the session runs the browser tests last, in the
same virtualenv. ``make browser-matrix`` runs the "browser" sessions alone. Django's deprecation
warnings are errors everywhere (setup.cfg).

    nox -l                               # the sessions
    nox -t matrix                        # what CI runs
    nox -s "tests(py3.11-django5.2)"     # one pair; arguments after -- go to pytest
    nox -s "browser(py3.13-django6.1)"   # the browser tests on that pair

Interpreters are found on PATH or under pyenv (``$PYENV_ROOT/versions``); a missing one fails the
session rather than skipping it, so the matrix cannot pass without running.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nox

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tests.postgres_modules import selection as postgres_selection

#: (Python, Django): the latest patch release of each supported Django on its Python.
PAIRS = [
    ("3.11", "5.2.19"),
    ("3.12", "6.0.10"),
    ("3.13", "6.1.3"),
]
#: The pairs ``make test`` does not already cover.
MATRIX = {"3.12", "3.13"}
#: The pairs whose "tests" session also runs the browser tests (tests/browser, Debian's Chromium),
#: and whose "browser" session ``make browser-matrix`` runs; ``make test`` runs them on 3.11 with
#: Django 5.2.
BROWSER = {"3.13"}
#: pytest-xdist over both cores, as in the Makefile (tests/conftest.py keeps some modules whole).
XDIST = ["-n", os.environ.get("PYTEST_WORKERS", "2"), "--dist", "loadgroup"]

nox.options.default_venv_backend = "virtualenv"
nox.options.download_python = "never"
nox.options.error_on_missing_interpreters = True
nox.options.tags = ["matrix"]
#: ``nox --install-only`` (``make matrix-install``) runs nothing, the background browser tests
#: included (nox skips only what goes through ``session.run``).
INSTALL_ONLY = "--install-only" in sys.argv


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


def pairs(tag: str, chosen: set[str]) -> list[Any]:
    """The nox parameters of ``PAIRS`` (the interpreter, Django, and whether the pair is one of
    ``BROWSER``), tagged ``tag`` where the Python version is ``chosen``."""
    return [
        nox.param(
            interpreter(python),
            django,
            python in BROWSER,
            id=f"py{python}-django{django.rsplit('.', 1)[0]}",
            tags=[tag] if python in chosen else [],
        )
        for python, django in PAIRS
    ]


def install(session: nox.Session, django: str, extras: str) -> None:
    """The package with ``extras`` and Django pinned, then check that Django is that version."""
    session.install("--quiet", "-e", f".[{extras}]", f"django=={django}")
    session.run(
        "python",
        "-c",
        "import sys, django; v = django.get_version(); "
        "print('Python', sys.version.split()[0], 'Django', v); sys.exit(v != sys.argv[1])",
        django,
    )


@nox.session
@nox.parametrize(("python", "django", "browser_too"), pairs("matrix", MATRIX))
def tests(session: nox.Session, django: str, browser_too: bool) -> None:
    """The suite on one Python and Django pair: SQLite, then PostgreSQL (and the browser tests
    beside it)."""
    install(session, django, "test,browser" if browser_too else "test")
    # The packaging test builds once, in `make test`; the browser tests need Chromium and run
    # there too (and in the "browser" sessions).
    select = ["-m", "not packaging", "--ignore=tests/browser", *session.posargs]
    # Every example of the costly property and fuzz tests is drawn in `make test` (on
    # PostgreSQL); here a fifth of each count (tests/examples.py), from every input class.
    session.env["WHATSAPP_TEST_EXAMPLES"] = os.environ.get("WHATSAPP_TEST_EXAMPLES", "0.2")
    session.run("pytest", "-p", "no:cacheprovider", *XDIST, *select)
    # The browser tests run beside the PostgreSQL run, as in `make test`: they keep about one
    # core busy, and the PostgreSQL run waits on its server and workers for much of its time.
    browser = None
    if browser_too and not session.posargs and not INSTALL_ONLY:
        browser = start_browser_tests(session)
    # On PostgreSQL, the modules whose behaviour differs there: `make test` runs every test that
    # can reach the database on PostgreSQL for the main pair; here the other versions are checked
    # where they matter. Arguments given to nox replace this selection.
    try:
        run_postgres(session, django, select)
    except BaseException:
        if browser is not None:
            browser[0].kill()
            browser[0].wait()
        raise
    if browser is not None:
        finish_browser_tests(session, *browser)


def run_postgres(session: nox.Session, django: str, select: list[str]) -> None:
    """The PostgreSQL run of the "tests" session."""
    session.run(
        "scripts/pytest-postgres",
        *XDIST,
        *(select if session.posargs else [*select, *postgres_selection()]),
        env={
            "VENV": session.virtualenv.location,
            # Its own test database, so that sessions and other checkouts never share one (named
            # after DJANGO_TEST_DB_NAME when it is set; xdist appends _gw0, _gw1).
            "DJANGO_TEST_DB_NAME": os.environ.get("DJANGO_TEST_DB_NAME", "test_django_whatsapp")
            + "_"
            + re.sub(r"\W", "_", django),
        },
        external=True,
    )


def start_browser_tests(session: nox.Session) -> tuple[subprocess.Popen[bytes], Path]:
    """``pytest tests/browser`` in the session's virtualenv, in the background, its output
    into a file of the session's temporary directory."""
    log = Path(session.create_tmp()) / "browser-tests.log"
    session.log(f"pytest -p no:cacheprovider tests/browser (in the background, into {log})")
    bin_dir = session.bin
    env = {
        **os.environ,
        **{k: v for k, v in session.env.items() if v is not None},
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        "VIRTUAL_ENV": session.virtualenv.location,
    }
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - the session's own pytest
            [str(Path(bin_dir) / "pytest"), "-p", "no:cacheprovider", "tests/browser"],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return process, log


def finish_browser_tests(session: nox.Session, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait for the browser tests, print their output, and fail the session if they failed."""
    status = process.wait()
    sys.stdout.write(log.read_text(encoding="utf-8", errors="replace"))
    sys.stdout.flush()
    if status != 0:
        session.error(f"the browser tests failed (pytest exited with {status})")


@nox.session
@nox.parametrize(("python", "django", "browser_too"), pairs("browser", BROWSER))
def browser(session: nox.Session, django: str, browser_too: bool) -> None:
    """The browser tests alone (tests/browser: headless Chromium, /usr/bin/chromium) on one pair
    (the "tests" session of a ``BROWSER`` pair runs them too)."""
    install(session, django, "test,browser")
    session.run("pytest", "-p", "no:cacheprovider", "tests/browser", *session.posargs)
