"""``make demo``: installs only what the demo needs, and serves on another port when asked, with
the sandbox and its callbacks following (read from make's dry run and database: nothing runs)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def dry_run(*args: str) -> str:
    """What ``make`` would run (``-n``) and its variables (``-p``), for a venv that does not
    exist, so that every step shows."""
    result = subprocess.run(  # noqa: S603 - make, on this repository's Makefile
        ["make", "-n", "-p", "-C", str(REPO), "demo", "VENV=/nonexistent/demo-venv", *args],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_the_demo_installs_only_the_example_extra() -> None:
    output = dry_run()

    # The commands make would run (the database of rules, from -p, starts with "#" or a tab).
    installs = [
        line
        for line in output.splitlines()
        if line.startswith("/nonexistent/") and " install " in line and "-e " in line
    ]
    assert installs == [
        "/nonexistent/demo-venv/bin/python -m pip --disable-pip-version-check install --quiet "
        "-e '.[example]'"
    ]
    assert "runserver 127.0.0.1:8000" in output


def test_another_port_moves_the_server_and_the_sandbox_callbacks() -> None:
    output = dry_run("PORT=8001")

    assert "runserver 127.0.0.1:8001" in output
    # The target's variable, exported to runserver: http://$(HOST):$(PORT).
    assert "demo: WHATSAPP_CALLBACK_BASE_URL = http://$(HOST):$(PORT)" in output
    assert "demo: WHATSAPP_CALLBACK_BASE_URL" not in dry_run()
