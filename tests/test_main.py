"""``python -m django_whatsapp``: version, system checks and effective settings, secrets masked."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import django_whatsapp
from django_whatsapp.__main__ import _installed, main

from .conftest import API_KEY, CALLBACK_SECRET

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def setting_line(out: str, key: str) -> str:
    (line,) = [line for line in out.splitlines() if line.strip().startswith(f"{key} ")]
    return line.split(None, 1)[1]


def test_prints_version_checks_and_settings_with_secrets_masked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, _err = run_main(capsys)

    assert status == 0
    assert out.startswith(f"django-whatsapp-decisiontelecom {django_whatsapp.__version__} (Python ")
    assert "Settings: tests.settings" in out
    # tests.urls mounts the sandbox and DEBUG is off: a warning, not an error.
    assert "django_whatsapp.W002 [WARNING]" in out
    assert "HINT: The sandbox is for development" in out
    assert API_KEY not in out
    assert CALLBACK_SECRET not in out
    assert setting_line(out, "API_KEY") == "'***'"
    assert setting_line(out, "CALLBACK_SECRET") == "['***']"
    assert setting_line(out, "BASE_URL") == "'http://127.0.0.1:9/v1/api'"
    assert setting_line(out, "TIMEOUT") == "(2.0, 5.0)"
    assert setting_line(out, "SEND_PATH") == "'send-whatsapp'  (default)"
    assert setting_line(out, "SANDBOX_CALLBACK_DELAY") == "1.0  (default)"


def test_no_issues_with_debug_on(capsys: pytest.CaptureFixture[str], settings: Any) -> None:
    settings.DEBUG = True

    status, out, _err = run_main(capsys)

    assert status == 0
    assert "System checks (django_whatsapp.checks.check_settings):\n  no issues\n" in out
    assert "DEBUG is on: checks that only apply in production (W001, W002) are quiet." in out


def test_an_error_found_by_the_checks_exits_1(
    capsys: pytest.CaptureFixture[str], settings: Any
) -> None:
    settings.DEBUG = True
    settings.DJANGO_WHATSAPP = {
        "CALLBACK_BASE_URL": "https://app.example.com",
        "CALLBACK_SECRET": ["new-secret-value", "old-secret-value"],
    }

    status, out, _err = run_main(capsys)

    assert status == 1
    assert "  no issues" not in out
    assert "django_whatsapp.E002 [ERROR]: DJANGO_WHATSAPP['API_KEY'] is not set" in out
    assert setting_line(out, "API_KEY") == "None  (default)"
    assert setting_line(out, "CALLBACK_SECRET") == "['***', '***']"
    assert "secret-value" not in out
    assert "DEBUG is on" in out


def test_invalid_settings_are_shown_as_given_and_exit_1(
    capsys: pytest.CaptureFixture[str], settings: Any
) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "TIMEOUT": "soon"}

    status, out, _err = run_main(capsys)

    assert status == 1
    assert "django_whatsapp.E001 [ERROR]: DJANGO_WHATSAPP['TIMEOUT'] must be" in out
    assert "settings.DJANGO_WHATSAPP as given, over the defaults (not valid:" in out
    assert setting_line(out, "TIMEOUT") == "'soon'"
    assert setting_line(out, "API_KEY") == "'***'"
    assert API_KEY not in out


def test_a_setting_that_is_not_a_dict_is_reported(
    capsys: pytest.CaptureFixture[str], settings: Any
) -> None:
    settings.DJANGO_WHATSAPP = ["API_KEY"]

    status, out, _err = run_main(capsys)

    assert status == 1
    assert "settings.DJANGO_WHATSAPP must be a dict." in out
    assert setting_line(out, "BASE_URL") == "'https://web.it-decision.com/v1/api'  (default)"


def test_settings_option_names_the_module(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _err = run_main(capsys, "--settings", "tests.settings")

    assert status == 0
    assert os.environ["DJANGO_SETTINGS_MODULE"] == "tests.settings"
    assert "Settings: tests.settings" in out


def test_runs_as_a_module(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["python -m django_whatsapp"])
    monkeypatch.delitem(sys.modules, "django_whatsapp.__main__", raising=False)
    # Found as `python -m` finds it: not through pytest's assertion rewriter, which has no
    # get_code() for runpy (it takes the package's modules in xdist's workers).
    finders = [f for f in sys.meta_path if type(f).__name__ != "AssertionRewritingHook"]
    monkeypatch.setattr(sys, "meta_path", finders)

    with pytest.raises(SystemExit) as exited:
        runpy.run_module("django_whatsapp", run_name="__main__", alter_sys=True)

    assert exited.value.code == 0
    assert "Effective settings.DJANGO_WHATSAPP:" in capsys.readouterr().out


def test_versions_of_what_is_not_installed_are_said_so() -> None:
    assert _installed("djangorestframework") != "not installed"
    assert _installed("no-such-distribution-here") == "not installed"


# -- a real process, as a user runs it ---------------------------------------------------------


def python_m(*args: str, settings_module: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    if settings_module is not None:
        env["DJANGO_SETTINGS_MODULE"] = settings_module
    return subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-m", "django_whatsapp", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_process_with_settings() -> None:
    result = python_m(settings_module="tests.settings")

    assert result.returncode == 0, result.stderr
    assert "django_whatsapp.W002" in result.stdout
    assert API_KEY not in result.stdout


def test_process_without_settings_says_how_to_name_them() -> None:
    result = python_m(settings_module=None)

    assert result.returncode == 2
    assert "DJANGO_SETTINGS_MODULE is not set" in result.stderr
    assert "DJANGO_SETTINGS_MODULE=mysite.settings python -m django_whatsapp" in result.stderr
    assert result.stdout.startswith("django-whatsapp-decisiontelecom ")


def test_process_with_a_missing_settings_module() -> None:
    result = python_m("--settings", "no_such_project.settings", settings_module=None)

    assert result.returncode == 2
    assert "Could not load the settings: No module named 'no_such_project'" in result.stderr
