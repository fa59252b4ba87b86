"""Real engines: a campaign sent by three worker processes of Django's task framework, one of
them killed with SIGKILL mid-campaign; every message reaches the gateway exactly once.

Two backends: ``django-tasks-db`` (``manage.py db_worker``) and RQ on Redis (``django-tasks-rq``,
``manage.py rqworker --with-scheduler``). Each worker is its own process group, as it would run
on its own machine: the workers and the "web" process that creates and starts the campaign share
nothing but a PostgreSQL database of their own (``test_dw_campaigns_w<pid>``) and the test run's
own Redis server (tests/redis_server.py), where the shared rate limit and RQ's queue live.

The fake gateway (tests/limited_gateway.py, real TCP) logs every request. Mid-campaign it holds
its answers; once every claimed message is on its way (the rows in ``sending`` match the requests
it holds), the test kills the worker holding a chunk with requests out, then lets the gateway
answer. The remaining workers take over the dead worker's chunk when its lease runs out: the
messages it had out become ``unknown`` (the gateway did get them: never sent twice) and the rest
of its chunk is sent.

Marked ``postgres``: the PostgreSQL run (``make test``, CI) runs it; on SQLite it is skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from .limited_gateway import LimitedGateway

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
RECIPIENTS = 240
CHUNK_SIZE = 20
WORKERS = 3

#: Run by the "web" process: create the campaign and start it.
CREATE = """
import json
import sys

import django

django.setup()
from django_whatsapp import services

count, chunk_size = int(sys.argv[1]), int(sys.argv[2])
numbers = (f"+38067{n:07d}" for n in range(count))
campaign = services.create_campaign("Workers", numbers, text="Hello", chunk_size=chunk_size)
services.start_campaign(campaign)
print(json.dumps(campaign.pk))
"""


@pytest.fixture(autouse=True)
def _postgres_and_redis(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real workers run on PostgreSQL, with the test run's own Redis server: its URL goes to
    their processes as ``WORKER_REDIS_URL`` (tests/settings_campaigns.py), through the
    environment they are given (tests/test_faults_workers.py uses this fixture too)."""
    if connection.vendor != "postgresql":
        pytest.skip(
            "real campaign workers run on PostgreSQL: run with DATABASE_URL=postgres://... "
            "(make test and CI do)"
        )
    monkeypatch.setenv("WORKER_REDIS_URL", request.getfixturevalue("redis_url"))


def wait_until(condition: Callable[[], Any], what: str, limit: float = 120.0) -> Any:
    """Poll ``condition`` until it is true; fail loudly, saying ``what``, after ``limit``
    seconds (a generous limit: nothing here is timed)."""
    give_up_at = time.monotonic() + limit
    pause = threading.Event()
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > give_up_at:
            raise AssertionError(f"gave up waiting for {what}")
        pause.wait(0.05)


class Database:
    """The workers' own PostgreSQL database, and plain SQL on it from the test process."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.url = f"postgres://postgres@127.0.0.1:5432/{name}"

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(POSTGRES.rsplit("/", 1)[0] + "/" + self.name) as conn:
            return list(conn.execute(sql, params).fetchall())  # type: ignore[arg-type]

    def statuses(self) -> dict[str, int]:
        return dict(
            self.query("SELECT status, COUNT(*) FROM django_whatsapp_message GROUP BY status")
        )

    def campaign_status(self, pk: int) -> str:
        return str(self.query("SELECT status FROM django_whatsapp_campaign WHERE id=%s", pk)[0][0])


@pytest.fixture
def database() -> Iterator[Database]:
    import psycopg

    name = f"test_dw_campaigns_w{os.getpid()}"
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield Database(name)
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def gateway() -> Iterator[LimitedGateway]:
    fake = LimitedGateway(rate=400, burst=400)
    yield fake
    fake.close()


def _forget_former_jobs(redis_url: str) -> None:
    """Empty the test run's own Redis server (never the machine's shared one): no job or worker
    of a former test there."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()


class Workers:
    """Worker processes, each in its own process group (its "machine")."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self, env: dict[str, str], backend: str, count: int) -> None:
        for number in range(count):
            if backend == "rq":
                command = ["rqworker", "--job-class", "django_tasks_rq.Job", "--with-scheduler"]
                command += ["--name", f"dw-campaigns-{os.getpid()}-{number}", "default"]
            else:
                command = ["db_worker", "--interval", "0.1", "--no-startup-delay", "--no-reload"]
                command += ["--worker-id", f"dw-campaigns-{number}"]
            log = self.tmp_path / f"worker{number}.log"
            with log.open("wb") as output:
                self.processes.append(
                    subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                        [sys.executable, "-m", "django", *command],
                        cwd=ROOT,
                        env=env,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            self.logs.append(log)

    def output(self) -> str:
        return "\n".join(log.read_text(errors="replace")[-3000:] for log in self.logs)

    def stop(self) -> None:
        """After the test: nothing of the workers is checked any more, so they are killed
        rather than asked to finish (RQ's warm shutdown waits for its scheduler), each with
        the work horses it forked into process groups of their own."""
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGSTOP)  # forks nothing more
                    for child in _children(process.pid):
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(os.getpgid(child), signal.SIGKILL)
                    os.killpg(process.pid, signal.SIGKILL)
        for process in self.processes:
            process.wait(timeout=30)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    started = Workers(tmp_path)
    try:
        yield started
    finally:
        started.stop()


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux's /proc)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            if f"\nPPid:\t{pid}\n" in status.read_text():
                found.append(int(status.parent.name))
    return found


def _parent(pid: int) -> int:
    """The parent process of ``pid`` (Linux's /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no parent for {pid}")


def django(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize("backend", ["db", "rq"])
def test_three_workers_one_killed_every_message_sent_exactly_once(
    backend: str, database: Database, gateway: LimitedGateway, workers: Workers, redis_url: str
) -> None:
    _forget_former_jobs(redis_url)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings_campaigns",
        PYTHONPATH=str(ROOT),
        WORKER_DATABASE_URL=database.url,
        WORKER_GATEWAY_URL=gateway.base_url,
        WORKER_BACKEND=backend,
        WORKER_REDIS_URL=redis_url,
        WORKER_REDIS_PREFIX=f"dw-campaigns-{uuid.uuid4().hex[:12]}",
    )
    django(env, "-m", "django", "migrate", "--noinput", "-v", "0")
    campaign = json.loads(django(env, "-c", CREATE, str(RECIPIENTS), str(CHUNK_SIZE)))
    assert database.statuses() == {"draft": RECIPIENTS}
    assert gateway.log == []

    workers.start(env, backend, WORKERS)
    # Let the workers get going, then hold every answer.
    gateway.wait_for(lambda g: len(g.log) >= RECIPIENTS // 4, timeout=120)
    gateway.hold()

    def held() -> set[str]:
        with gateway.lock:
            return {str(number) for number in gateway.held_destinations}

    def all_claimed_are_out() -> bool:
        # Every message in sending is one whose request the gateway has read and holds: each
        # worker with messages out is blocked on them (a request still in a socket's queue when
        # its worker dies never reached the gateway; a worker between two batches could claim
        # the next one after this check).
        sending = {
            number
            for (number,) in database.query(
                "SELECT destination_addr FROM django_whatsapp_message WHERE status = 'sending'"
            )
        }
        return bool(sending) and sending == held()

    wait_until(all_claimed_are_out, "every claimed message to reach the held gateway")
    # The worker to kill: the one holding a leased chunk with the most requests out, all held
    # (so it is blocked on them and claims nothing more before it dies).
    out_by_holder: dict[str, set[str]] = {}
    for token, number in database.query(
        "SELECT c.lease_token, m.destination_addr FROM django_whatsapp_campaignchunk c "
        "JOIN django_whatsapp_message m ON m.campaign_id = c.campaign_id "
        "AND m.id BETWEEN c.first_id AND c.last_id AND m.status = 'sending' "
        "WHERE c.state = 'leased'"
    ):
        out_by_holder.setdefault(token, set()).add(number)
    held_now = held()
    token, numbers = max(
        ((t, n) for t, n in out_by_holder.items() if n <= held_now), key=lambda item: len(item[1])
    )
    out = len(numbers)
    holder = int(token.split("-")[0])
    # RQ runs each job in a forked "work horse" with a process group of its own: the machine
    # that dies is the worker and its horse.
    victim = holder if holder in {p.pid for p in workers.processes} else _parent(holder)
    assert victim in {p.pid for p in workers.processes}
    for group in {os.getpgid(holder), victim}:
        os.killpg(group, signal.SIGKILL)
    [killed] = [p for p in workers.processes if p.pid == victim]
    killed.wait(timeout=30)
    gateway.release()

    wait_until(
        lambda: database.campaign_status(campaign) == "done",
        f"the campaign to be done; workers said:\n{workers.output()}",
        limit=180,
    )
    output = workers.output()
    # Every recipient reached the gateway exactly once: none missing, none twice.
    received = gateway.accepted_destinations()
    expected = {380670000000 + n for n in range(RECIPIENTS)}
    assert set(received) == expected, output
    assert [n for n, times in received.items() if times != 1] == [], output
    # The dead worker's requests that were out are unknown (never re-sent); all else accepted.
    statuses = database.statuses()
    assert statuses == {"accepted": RECIPIENTS - out, "unknown": out}, output
    assert out >= 1
    chunk_states = dict(
        database.query("SELECT state, COUNT(*) FROM django_whatsapp_campaignchunk GROUP BY state")
    )
    assert chunk_states == {"done": RECIPIENTS // CHUNK_SIZE}
    # The dead worker's chunk ran twice: taken over without an operator.
    assert database.query("SELECT MAX(runs) FROM django_whatsapp_campaignchunk")[0][0] >= 2
