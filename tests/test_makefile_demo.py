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


def test_the_demo_serves_with_a_worker_beside_the_server_stopped_with_it() -> None:
    output = dry_run()

    # One shell runs both: the worker in the background, the server in the foreground, and a
    # trap that stops the worker whenever that shell ends (the server stopped, or Ctrl+C).
    [serve] = [
        line
        for line in output.splitlines()
        if line.startswith("cd example_project && { /nonexistent/") and "db_worker" in line
    ]
    assert "manage.py db_worker --no-reload --no-startup-delay &" in serve
    assert "trap 'kill $worker 2>/dev/null; wait $worker 2>/dev/null' EXIT" in output
    assert "trap 'exit 130' INT TERM" in output
    assert output.index("manage.py db_worker") < output.index("manage.py runserver 127.0.0.1:8000")


def group_processes(group: int) -> list[str]:
    """The live processes of a process group (zombies waiting for PID 1 do not count)."""
    listed = subprocess.run(
        ["ps", "-eo", "pgid=,stat=,args="],  # noqa: S607 - ps, to see which processes are left
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [
        line
        for line in listed.splitlines()
        if line.split(None, 2)[0] == str(group) and not line.split(None, 2)[1].startswith("Z")
    ]


@pytest.mark.skipif(shutil.which("ps") is None, reason="needs ps")
def test_make_demo_sends_a_campaign_for_real_and_ctrl_c_stops_server_and_worker(
    tmp_path: Path,
) -> None:
    import os
    import signal
    import sys

    from tests.test_example_project import free_port, manage_ok, project_env, query
    from tests.waiting import wait_until

    port = free_port()
    db_path = tmp_path / "demo.sqlite3"
    env = project_env(db_path, WHATSAPP_CALLBACK_BASE_URL=f"http://127.0.0.1:{port}")
    venv = Path(sys.executable).parent.parent
    log = (tmp_path / "make-demo.log").open("w", encoding="utf-8")
    # This interpreter's venv, without installing anything into it (-o: the stamp is old).
    # Ctrl+C as a terminal has it: a test run started in the background (CI's, or `make test &`)
    # has SIGINT ignored, which make, the shell and runserver would inherit and keep; then
    # runserver never stops (found in CI: the server and make ran on for half an hour).
    command = [
        *["env", "--default-signal=INT,QUIT"],
        *["make", "-C", str(REPO), "demo", f"VENV={venv}", f"PORT={port}"],
        *["-o", f"{venv}/.demo-installed"],
    ]
    demo = subprocess.Popen(  # noqa: S603 - make, on this repository's Makefile
        command,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal's Ctrl+C reaches it
    )
    try:
        wait_until(
            lambda: len(group_processes(demo.pid)) >= 4,  # make, its shell, worker, server
            what="make demo to start the server and the worker",
            describe=lambda: (tmp_path / "make-demo.log").read_text(encoding="utf-8")[-2000:],
        )
        audience = tmp_path / "audience.csv"
        audience.write_text("phone\n+380500001011\n+380500001012\n", encoding="utf-8")
        created = manage_ok(
            env, "whatsapp_campaign", "create", "--name", "Demo", "--text", "Hi",
            "--csv", str(audience), "--number-column", "phone", "--start",
        )  # fmt: skip
        assert "Campaign 1 is running." in created

        # The worker beside the server sends it; the sandbox on the server calls back.
        def done() -> bool:
            rows = query(db_path, "SELECT status FROM django_whatsapp_campaign")
            return rows == [("done",)]

        wait_until(done, what="the demo's worker to send the campaign")
        sent = query(db_path, "SELECT COUNT(*) FROM django_whatsapp_message WHERE attempts > 0")
        assert sent == [(2,)]
    finally:
        os.killpg(demo.pid, signal.SIGINT)  # Ctrl+C in the terminal running make demo
        try:
            demo.wait(timeout=120)
        except subprocess.TimeoutExpired:
            left = "\n".join(group_processes(demo.pid))
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
            log.close()
            tail = (tmp_path / "make-demo.log").read_text(encoding="utf-8")[-3000:]
            pytest.fail(f"make demo went on after Ctrl+C; still running:\n{left}\nits log:\n{tail}")
        log.close()
    wait_until(
        lambda: group_processes(demo.pid) == [],
        what="the server and the worker to stop with make demo",
        describe=lambda: "\n".join(group_processes(demo.pid)),
    )
