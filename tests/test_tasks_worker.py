"""Real workers: ``SEND_ASYNC`` sends reach the gateway through separate worker processes.

Two ``db_worker`` processes of the database task backend (``django-tasks-db``) share one database
of their own (PostgreSQL ``dw_worker_test_<pid>`` when PostgreSQL answers at 127.0.0.1:5432, else
a SQLite file) with a process that enqueues messages through the services, as a web process
would. The test watches the rows until every message is ``accepted`` at the fake gateway
(pytest-httpserver on 127.0.0.1), then stops the workers and drops the database.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FakeGateway
from tests.waiting import wait_until

pytest.importorskip("django_tasks_db")

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
MESSAGES = 12
MESSAGE_STATUSES = "SELECT status, COUNT(*) FROM django_whatsapp_message GROUP BY status"
JOB_STATES = "SELECT status, COUNT(*) FROM django_tasks_database_dbtaskresult GROUP BY status"
PROVIDER_IDS = "SELECT DISTINCT provider_message_id FROM django_whatsapp_message"

#: Run by a "web" process: queue messages, one in a transaction that rolls back, and one
#: message enqueued a second time (two jobs for one message).
ENQUEUE = """
import json
import sys

import django

django.setup()
from django.db import transaction
from django_whatsapp import services
from django_whatsapp.models import Message

ids = [services.send_text(f"+38050000{n:04d}", f"Hello {n}").pk for n in range(int(sys.argv[1]))]
try:
    with transaction.atomic():
        services.send_text("+380509999999", "rolled back")
        raise RuntimeError
except RuntimeError:
    pass
services.enqueue_message(Message.objects.get(pk=ids[0]))
print(json.dumps(ids))
"""


def postgres_answers() -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    try:
        psycopg.connect(POSTGRES, connect_timeout=3).close()
    except psycopg.Error:
        return False
    return True


class Database:
    """The workers' database, and plain SQL on it from the test process."""

    def __init__(self, env: dict[str, str], query: Callable[[str], list[tuple[Any, ...]]]) -> None:
        self.env = env
        self.query = query

    def statuses(self) -> dict[str, int]:
        """How many messages are in each status."""
        return dict(self.query(MESSAGE_STATUSES))

    def jobs(self) -> dict[str, int]:
        """How many task results are in each state."""
        return dict(self.query(JOB_STATES))


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    if postgres_answers():
        import psycopg

        name = f"dw_worker_test_{os.getpid()}"
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')

        def query(sql: str) -> list[tuple[Any, ...]]:
            with psycopg.connect(POSTGRES.rsplit("/", 1)[0] + "/" + name) as conn:
                return list(conn.execute(sql).fetchall())  # type: ignore[arg-type]

        try:
            yield Database(
                {"WORKER_DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}"}, query
            )
        finally:
            with psycopg.connect(POSTGRES, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        path = tmp_path / "worker.sqlite3"

        def query(sql: str) -> list[tuple[Any, ...]]:
            with sqlite3.connect(path, timeout=30) as conn:
                return list(conn.execute(sql).fetchall())

        yield Database({"WORKER_SQLITE_PATH": str(path)}, query)


def environment(database: Database, gateway: FakeGateway) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(database.env)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings_tasks",
        PYTHONPATH=str(ROOT),
        WORKER_GATEWAY_URL=gateway.base_url,
    )
    return env


def django(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., list[Path]]]:
    """Start ``db_worker`` processes; they are stopped (then killed) when the test ends."""
    started: list[subprocess.Popen[bytes]] = []

    def start(env: dict[str, str], count: int) -> list[Path]:
        logs = []
        for number in range(count):
            log = tmp_path / f"worker{number}.log"
            with log.open("wb") as output:
                started.append(
                    subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                        [
                            sys.executable,
                            "-m",
                            "django",
                            "db_worker",
                            "--interval",
                            "0.1",
                            "--no-startup-delay",
                            "--no-reload",
                            "--worker-id",
                            f"test-worker-{number}",
                        ],
                        cwd=ROOT,
                        env=env,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                    )
                )
            logs.append(log)
        return logs

    try:
        yield start
    finally:
        for process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


def test_workers_send_what_the_web_process_queued(
    gateway: FakeGateway, database: Database, workers: Callable[..., list[Path]]
) -> None:
    gateway.accept()
    env = environment(database, gateway)
    django(env, "-m", "django", "migrate", "--noinput", "-v", "0")
    ids = json.loads(django(env, "-c", ENQUEUE, str(MESSAGES)))
    assert len(ids) == MESSAGES
    # Queued, nothing sent yet: MESSAGES rows (the rolled-back one is gone), MESSAGES + 1 jobs.
    assert database.statuses() == {"queued": MESSAGES}
    assert database.jobs() == {"READY": MESSAGES + 1}
    assert gateway.requests == []

    logs = workers(env, 2)

    def log_tails() -> str:
        return "\n".join(log.read_text(errors="replace")[-2000:] for log in logs)

    def finished() -> dict[str, int] | None:
        jobs = database.jobs()
        done = jobs.get("SUCCESSFUL", 0) + jobs.get("FAILED", 0) == MESSAGES + 1
        return jobs if done else None

    jobs = wait_until(
        finished,
        what=f"the workers to finish {MESSAGES + 1} jobs",
        interval=0.2,
        describe=lambda: f"jobs {database.jobs()}\n{log_tails()}",
    )
    output = log_tails()
    assert jobs == {"SUCCESSFUL": MESSAGES + 1}, output
    assert database.statuses() == {"accepted": MESSAGES}, output
    # Each message went to the gateway once, the one with two jobs too.
    bodies = gateway.sent_bodies()
    assert sorted(b["destination_addr"] for b in bodies) == [
        380500000000 + n for n in range(MESSAGES)
    ]
    provider_ids = {row[0] for row in database.query(PROVIDER_IDS)}
    assert None not in provider_ids
    assert len(provider_ids) == MESSAGES
