"""The release as a stranger gets it: build the sdist and the wheel, then install the wheel into a
brand-new virtual environment and a brand-new ``django-admin startproject``, set up exactly as
README.rst's "Installing into your project" and "The sandbox" sections say, and send a message
through the sandbox on a real ``runserver`` until the sandbox's callbacks make it ``seen``.

Slow (a build, a venv, a pip install from PyPI or pip's cache): ``-m "not packaging"`` skips it.
"""

from __future__ import annotations

import email.parser
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message as EmailMessage
from pathlib import Path

import pytest
import requests
from trove_classifiers import classifiers as known_classifiers

import django_whatsapp
from tests.waiting import wait_until

pytestmark = pytest.mark.packaging

REPO_ROOT = Path(__file__).resolve().parent.parent
DIST_NAME = "django_whatsapp_decisiontelecom"
VERSION = django_whatsapp.__version__
STEP_TIMEOUT = 300  # a build or a pip install, from PyPI when pip's cache is cold

#: What a build never needs from the work tree (virtual environments, caches, build output).
NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".nox",
    ".tox",
    "*_cache",
    ".hypothesis",
    "__pycache__",
    "*.py[cod]",
    "build",
    "dist",
    "_build",
    "htmlcov",
    ".coverage*",
    "*.egg-info",
    "*.sqlite3*",
    ".env",
)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what points at this checkout or its virtualenv."""
    drop = (
        "VIRTUAL_ENV",
        "PYTHONPATH",
        "PYTHONHOME",
        "DJANGO_SETTINGS_MODULE",
        "PIP_REQUIRE_VIRTUALENV",
    )
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(  # noqa: S603 - our own interpreters and tools
        [str(a) for a in args],
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
    )
    command = " ".join(str(a) for a in args)
    assert result.returncode == 0, (
        f"{command} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    )
    return result.stdout


def package_files(source: Path) -> set[str]:
    """Every file of the package in a source tree, as a path inside a wheel."""
    return {
        path.relative_to(source).as_posix()
        for path in (source / "django_whatsapp").rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and path.suffix not in (".pyc", ".pyo")
    }


@dataclass(frozen=True)
class Dist:
    source: Path  # the copy of the work tree that was built
    wheel: Path
    sdist: Path


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """``python -m build`` on a copy of the work tree: the sdist, then the wheel built from it."""
    source = tmp_path_factory.mktemp("source") / "django-whatsapp"
    shutil.copytree(REPO_ROOT, source, ignore=NOT_SOURCE)
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, source, cwd=source)
    return Dist(
        source=source,
        wheel=out / f"{DIST_NAME}-{VERSION}-py3-none-any.whl",
        sdist=out / f"{DIST_NAME}-{VERSION}.tar.gz",
    )


def wheel_metadata(wheel: Path) -> EmailMessage:
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(f"{DIST_NAME}-{VERSION}.dist-info/METADATA").decode()
    return email.parser.Parser().parsestr(text)


# -- what is built ------------------------------------------------------------------------------


def test_wheel_has_every_file_of_the_package_and_nothing_else(dist: Dist) -> None:
    with zipfile.ZipFile(dist.wheel) as archive:
        names = set(archive.namelist())

    expected = package_files(dist.source)
    assert sorted(expected - names) == []
    # Typed, migrated, and the data files a project serves or loads at run time.
    assert "django_whatsapp/py.typed" in names
    assert "django_whatsapp/migrations/0001_initial.py" in names
    data_dirs = ("templates", "static", "locale")
    for data_dir in data_dirs:
        in_source = {name for name in expected if name.startswith(f"django_whatsapp/{data_dir}/")}
        assert in_source <= names, data_dir
    for po in (name for name in expected if name.endswith(".po")):
        assert po[:-3] + ".mo" in names, f"{po} is not compiled (django-admin compilemessages)"
    assert {name.split("/")[0] for name in names} == {
        "django_whatsapp",
        f"{DIST_NAME}-{VERSION}.dist-info",
    }


def test_sdist_has_the_package_the_docs_and_the_tests(dist: Dist) -> None:
    root = f"{DIST_NAME}-{VERSION}"
    with tarfile.open(dist.sdist) as archive:
        names = {name.removeprefix(f"{root}/") for name in archive.getnames()}

    assert sorted(package_files(dist.source) - names) == []
    for required in (
        "README.rst",
        "CHANGELOG.rst",
        "pyproject.toml",
        "setup.cfg",
        "tests/conftest.py",
        "tests/settings.py",
        "tests/callbacks/plain_code.json",
        "tests/payloads/provider_errors.json",
        "docs/conf.py",
        "docs/index.rst",
    ):
        assert required in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert not [name for name in names if name.startswith("docs/_build")]


def test_metadata_says_what_is_supported(dist: Dist) -> None:
    metadata = wheel_metadata(dist.wheel)
    classifiers = metadata.get_all("Classifier") or []
    requires = metadata.get_all("Requires-Dist") or []

    assert metadata["Name"] == "django-whatsapp-decisiontelecom"
    assert metadata["Version"] == VERSION
    assert metadata["Requires-Python"] == ">=3.11"
    assert metadata["License-Expression"] == "MIT"
    assert metadata["Description-Content-Type"] == "text/x-rst"
    assert "django-whatsapp" in metadata.get_payload()  # the README is the long description
    assert [c for c in classifiers if c not in known_classifiers] == []
    for supported in (
        "Framework :: Django :: 5.2",
        "Framework :: Django :: 6.0",
        "Framework :: Django :: 6.1",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Typing :: Typed",
    ):
        assert supported in classifiers
    runtime = sorted(r.replace(" ", "") for r in requires if "extra ==" not in r)
    assert runtime == [
        "Django<6.2,>=5.2",
        "djangorestframework>=3.16.1",
        "phonenumbers>=8.13",
        "requests>=2.31",
    ]


# -- a stranger's project -----------------------------------------------------------------------


def readme_section(title: str) -> str:
    text = (REPO_ROOT / "README.rst").read_text()
    match = re.search(
        rf"^{re.escape(title)}\n[=-]+\n(.*?)(?=^\S[^\n]*\n[=-]{{3,}}\n)", text, re.M | re.S
    )
    assert match, f"README.rst has no section {title!r}: update tests/test_packaging.py with it"
    return match.group(1)


def code_block(section: str, after: str = "") -> str:
    """The first ``.. code-block:: python`` after the paragraph ``after``, dedented."""
    start = section.index(after) if after else 0
    match = re.search(r"^\.\. code-block:: python\n\n((?:(?:   .*)?\n)+)", section[start:], re.M)
    assert match, f"no python code block after {after!r} in README.rst"
    return "\n".join(line[3:] for line in match.group(1).splitlines()).strip() + "\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Project:
    python: Path
    directory: Path
    env: dict[str, str]
    port: int

    def manage(self, *args: str) -> str:
        return run(self.python, "manage.py", *args, cwd=self.directory, env=self.env)


@pytest.fixture(scope="module")
def project(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A new venv with only the wheel (and what it requires), and a new project set up by README.

    The venv has no pip of its own: this interpreter's pip installs into it (``--python``), and
    compiles nothing ahead (``--no-compile``: Python compiles what the project imports when it
    imports it). Installing pip into the venv and compiling every module of Django and
    phonenumbers took 22 s of the fixture's CPU; the wheel, its requirements and what they
    install are the same."""
    home = tmp_path_factory.mktemp("stranger")
    venv = home / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=home)
    python = venv / "bin" / "python"
    run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        dist.wheel,
        cwd=home,
    )
    run(venv / "bin" / "django-admin", "startproject", "mysite", cwd=home)

    port = free_port()
    directory = home / "mysite"
    install = readme_section("Installing into your project")
    sandbox = code_block(readme_section("The sandbox"))
    sandbox_urls = [line for line in sandbox.splitlines() if line.startswith("path(")]
    sandbox_settings = re.findall(r"^# then (DJANGO_WHATSAPP\[.+)$", sandbox, re.M)
    assert sandbox_urls, "README's sandbox section no longer shows the path() to mount"
    assert sandbox_settings, "README's sandbox section no longer says which BASE_URL to set"

    # README's blocks go at the end of the files startproject wrote, exactly as written; the
    # only change is the port, which README says how to change (8000 may be taken here).
    settings_py = directory / "mysite" / "settings.py"
    settings_py.write_text(
        settings_py.read_text()
        + "\n# -- README.rst, Installing into your project --\n"
        + code_block(install, "At the end of ``settings.py``:")
        + "\n# -- README.rst, The sandbox --\n"
        + "\n".join(s.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for s in sandbox_settings)
        + "\n"
    )
    urls_py = directory / "mysite" / "urls.py"
    urls_py.write_text(
        urls_py.read_text()
        + "\n# -- README.rst, Installing into your project --\n"
        + code_block(install, "At the end of ``urls.py``:")
        + "\n# -- README.rst, The sandbox --\n"
        + "urlpatterns += [\n"
        + "".join(f"    {line}\n" for line in sandbox_urls)
        + "]\n"
    )
    # The variables README's console block exports, with this run's values.
    exported = re.findall(r"^   export (\w+)=", install, re.M)
    assert exported == ["WHATSAPP_API_KEY", "WHATSAPP_CALLBACK_SECRET"], exported
    env = clean_env(
        WHATSAPP_API_KEY="stranger-api-key-5c4b3a",
        WHATSAPP_CALLBACK_SECRET="stranger-callback-secret-0f9e8d",
        # README: "Serving on another port ... set WHATSAPP_CALLBACK_BASE_URL".
        WHATSAPP_CALLBACK_BASE_URL=f"http://127.0.0.1:{port}",
        PYTHONUNBUFFERED="1",
    )
    return Project(python=python, directory=directory, env=env, port=port)


@pytest.fixture
def server(project: Project) -> Iterator[Path]:
    """``manage.py runserver`` on the project's port until the test ends; yields its log."""
    log = project.directory / "runserver.log"
    with log.open("w") as output:
        process = subprocess.Popen(  # noqa: S603 - the project's own manage.py
            [
                str(project.python),
                "manage.py",
                "runserver",
                f"127.0.0.1:{project.port}",
                "--noreload",
            ],
            cwd=project.directory,
            env=project.env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:

        def answers() -> bool:
            assert process.poll() is None, f"runserver exited:\n{log.read_text()}"
            try:
                requests.get(f"http://127.0.0.1:{project.port}/admin/login/", timeout=30)
            except requests.RequestException:
                return False
            return True

        wait_until(answers, what="runserver to answer", describe=log.read_text)
        yield log
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_installed_app_comes_from_the_wheel(project: Project) -> None:
    location = run(
        project.python,
        "-c",
        "import django_whatsapp; print(django_whatsapp.__file__)",
        cwd=project.directory,
        env=project.env,
    )

    assert Path(location.strip()).is_relative_to(project.python.parent.parent)
    assert not Path(location.strip()).is_relative_to(REPO_ROOT)


def test_the_project_passes_its_checks_and_migrates(project: Project) -> None:
    assert "System check identified no issues" in project.manage("check", "--fail-level", "WARNING")
    project.manage("migrate", "--noinput")
    project.manage("makemigrations", "--check", "--dry-run")
    report = run(
        project.python,
        "-m",
        "django_whatsapp",
        cwd=project.directory,
        env={**project.env, "DJANGO_SETTINGS_MODULE": "mysite.settings"},
    )

    assert f"django-whatsapp-decisiontelecom {VERSION}" in report
    assert "  no issues" in report
    assert f"'http://127.0.0.1:{project.port}/sandbox/v1/api'" in report
    assert "stranger-api-key" not in report
    assert "stranger-callback-secret" not in report


def test_the_check_warns_when_the_sandbox_could_not_call_back(project: Project) -> None:
    env = {**project.env, "WHATSAPP_CALLBACK_BASE_URL": "https://example.com"}
    result = subprocess.run(  # noqa: S603 - the project's own manage.py
        [str(project.python), "manage.py", "check"],
        cwd=project.directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
    )

    assert "django_whatsapp.W003" in result.stderr + result.stdout
    assert f"set CALLBACK_BASE_URL to http://127.0.0.1:{project.port}" in result.stderr + (
        result.stdout
    )


def test_a_message_sent_through_the_sandbox_is_seen(project: Project, server: Path) -> None:
    project.manage("migrate", "--noinput")

    output = project.manage(
        "whatsapp_send", "--to", "+380 63 123 4567", "--text", "Hello from a new project"
    )

    sent = re.search(r"Message (\d+) to \+380631234567: accepted, provider id (\d+)\.", output)
    assert sent, output
    message_pk = int(sent.group(1))
    database = sqlite3.connect(project.directory / "db.sqlite3", timeout=10)
    try:

        def status() -> str:
            row = database.execute(
                "SELECT status FROM django_whatsapp_message WHERE id = ?", (message_pk,)
            ).fetchone()
            return str(row[0])

        wait_until(
            lambda: status() == "seen",
            what=f"message {message_pk} to be seen",
            interval=0.2,
            describe=lambda: f"still {status()!r}:\n{server.read_text()}",
        )
        events = database.execute(
            "SELECT status, source FROM django_whatsapp_statusevent"
            " WHERE message_id = ? ORDER BY id",
            (message_pk,),
        ).fetchall()
    finally:
        database.close()

    assert events == [
        ("accepted", "send"),
        ("sent", "callback"),
        ("delivered", "callback"),
        ("seen", "callback"),
    ]
    assert "POST /whatsapp/callback/" in server.read_text()
