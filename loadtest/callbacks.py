"""Load test of the status callback: gunicorn on loopback, PostgreSQL, shuffled duplicates.

    python loadtest/callbacks.py                  # 1,000 messages, 30% of requests duplicates
    python loadtest/callbacks.py --messages 200 --workers 2 --concurrency 8

It creates (and afterwards drops) the PostgreSQL database ``dw_loadtest``, migrates it, stores
the messages (a fifth of them ``unknown`` with no provider id, as when the send's answer was
lost), starts gunicorn serving the callback, and posts every message's status reports (JSON,
form, query string and Meta's webhook shape), 30% of the requests being exact duplicates, all
in shuffled order from concurrent clients. Then it checks:

- no answer was a 5xx (and every answer was 200),
- the number of ``StatusEvent`` rows is the number of distinct reports,
- every message's status is its highest-ranked report, and every lost id was adopted,

and prints the figures. It exits 1 when a check fails. Everything stays on 127.0.0.1 and is
bounded in time (``--deadline``, 110 s by default). ``tests/test_reliability_load.py`` runs a
smaller version of it in the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: python loadtest/callbacks.py
    sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/dw_loadtest"
SHAPES = ("json", "json-code", "form", "get", "meta")


@dataclass(frozen=True)
class Delivery:
    """One HTTP request: a status report about one message."""

    message_pk: int
    path: str
    method: str
    body: bytes
    content_type: str
    query: str
    status: str
    carries_id: bool


@dataclass
class Plan:
    deliveries: list[Delivery]  # shuffled, duplicates included
    distinct: int  # distinct (message, status) reports
    duplicates: int
    expected_status: dict[int, str]
    expected_id: dict[int, int | None]


@dataclass
class Result:
    codes: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    duration: float = 0.0


# -- the plan ----------------------------------------------------------------------------------


def seed_messages(count: int, rng: random.Random) -> list[Any]:
    """Store ``count`` messages: 80% ``accepted`` with a provider id, 20% ``unknown`` without."""
    from django_whatsapp.models import Message

    Status = Message.Status
    base = rng.randrange(10**9, 10**12)
    rows = []
    for index in range(count):
        lost = rng.random() < 0.2
        rows.append(
            Message(
                source_addr="LoadTest",
                destination_addr=f"380{index:09d}",
                text=f"load test {index}",
                status=Status.UNKNOWN if lost else Status.ACCEPTED,
                provider_message_id=None if lost else base + index,
            )
        )
    Message.objects.bulk_create(rows, batch_size=500)
    stored = list(Message.objects.filter(source_addr="LoadTest").order_by("pk"))
    for index, message in enumerate(stored):
        message.wanted_id = base + index  # the id the gateway reports about it
    return stored


def _delivery(message: Any, status: str, shape: str, path: str) -> Delivery:
    from django_whatsapp.status_rule import PROVIDER_CODES

    code = PROVIDER_CODES[status]
    if shape == "meta":
        body = {"statuses": [{"id": f"wamid.{message.pk}", "status": status}]}
        return Delivery(
            message.pk, path, "POST", json.dumps(body).encode(), "application/json", "", status,
            carries_id=False,
        )  # fmt: skip
    report = {"message_id": message.wanted_id, "status": code if shape == "json-code" else status}
    if shape in ("json", "json-code"):
        return Delivery(
            message.pk, path, "POST", json.dumps(report).encode(), "application/json", "", status,
            carries_id=True,
        )  # fmt: skip
    if shape == "form":
        return Delivery(
            message.pk, path, "POST", urlencode(report).encode(),
            "application/x-www-form-urlencoded", "", status, carries_id=True,
        )  # fmt: skip
    return Delivery(message.pk, path, "GET", b"", "", urlencode(report), status, carries_id=True)


def make_plan(messages: list[Any], duplicate_share: float, rng: random.Random) -> Plan:
    """Each message gets 1 to 4 distinct reports in random shapes; then exact duplicates are
    added until they are ``duplicate_share`` of all requests; then everything is shuffled."""
    from django.urls import reverse

    from django_whatsapp.conf import get_settings
    from django_whatsapp.signing import sign
    from django_whatsapp.status_rule import PROVIDER_CODES, STATUS_RANK

    secret = get_settings().require_callback_secrets()[0]
    reported = sorted(PROVIDER_CODES)
    distinct: list[Delivery] = []
    expected_status: dict[int, str] = {}
    expected_id: dict[int, int | None] = {}
    for message in messages:
        path = reverse(
            "django_whatsapp:callback",
            kwargs={"message_uuid": message.uuid, "signature": sign(message.uuid, secret)},
        )
        statuses = rng.sample(reported, rng.randint(1, 4))
        mine = [_delivery(message, status, rng.choice(SHAPES), path) for status in statuses]
        distinct.extend(mine)
        expected_status[message.pk] = max([message.status, *statuses], key=STATUS_RANK.__getitem__)
        carried = message.provider_message_id is not None or any(d.carries_id for d in mine)
        expected_id[message.pk] = message.wanted_id if carried else None
    duplicates = round(len(distinct) * duplicate_share / (1 - duplicate_share))
    deliveries = distinct + [rng.choice(distinct) for _ in range(duplicates)]
    rng.shuffle(deliveries)
    return Plan(deliveries, len(distinct), duplicates, expected_status, expected_id)


# -- gunicorn ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(
    database_url: str, *, workers: int, threads: int, timeout: float = 120
) -> Iterator[str]:
    """Serve ``loadtest.wsgi`` with gunicorn on 127.0.0.1; yield its origin; stop it after."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "loadtest.settings",
        "DW_LOADTEST_DATABASE_URL": database_url,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable, "-m", "gunicorn", "loadtest.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
        "--worker-class", "gthread", "--threads", str(threads),
        "--timeout", "30", "--graceful-timeout", "5", "--log-level", "warning",
    ]  # fmt: skip
    origin = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)  # noqa: S603
        try:
            _wait_until_up(server, log, origin, timeout)
            yield origin
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(5)


def _wait_until_up(server: subprocess.Popen[bytes], log: Any, origin: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"gunicorn exited: {log.read().decode(errors='replace')}")
        try:
            # A malformed UUID is answered 404 by the view itself: Django is up.
            requests.get(f"{origin}/whatsapp/callback/ready/x/", timeout=timeout)
            return
        except requests.RequestException:
            # Refused, or accepted by gunicorn before a worker has loaded Django (a read
            # timeout on a busy machine): not up yet.
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start in time") from None
            time.sleep(0.1)


# -- the driver --------------------------------------------------------------------------------


def drive(origin: str, deliveries: list[Delivery], *, concurrency: int, deadline: float) -> Result:
    """Post every delivery from ``concurrency`` threads, each with its own keep-alive session."""
    result = Result()
    local = threading.local()
    lock = threading.Lock()

    def post(delivery: Delivery) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        url = f"{origin}{delivery.path}" + (f"?{delivery.query}" if delivery.query else "")
        headers = {"Content-Type": delivery.content_type} if delivery.content_type else {}
        started = time.perf_counter()
        try:
            response = session.request(
                delivery.method, url, data=delivery.body or None, headers=headers, timeout=60
            )
        except requests.RequestException as error:
            with lock:
                result.failures.append(f"{delivery.path}: {type(error).__name__}: {error}")
            return
        elapsed = time.perf_counter() - started
        with lock:
            result.codes[response.status_code] += 1
            result.latencies.append(elapsed)
            if response.status_code != 200 and len(result.failures) < 20:
                result.failures.append(
                    f"{delivery.method} {delivery.status}: HTTP {response.status_code} "
                    f"{response.text[:200]}"
                )

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(post, delivery) for delivery in deliveries]
        try:
            for future in as_completed(futures, timeout=max(deadline - time.monotonic(), 1)):
                future.result()
        except TimeoutError:
            for future in futures:
                future.cancel()
            result.failures.append("the deadline passed before every request was answered")
    result.duration = time.perf_counter() - started
    return result


def verify(plan: Plan, result: Result) -> list[str]:
    """What is wrong in the database and the answers, as readable lines (none: all good)."""
    from django_whatsapp.models import Message, StatusEvent

    problems = list(result.failures)
    server_errors = sum(n for code, n in result.codes.items() if code >= 500)
    if server_errors:
        problems.append(f"{server_errors} answers were 5xx")
    answered = sum(result.codes.values())
    if answered != len(plan.deliveries):
        problems.append(f"{answered} of {len(plan.deliveries)} requests were answered")
    pks = list(plan.expected_status)
    events = StatusEvent.objects.filter(message_id__in=pks, source="callback").count()
    if events != plan.distinct:
        problems.append(f"{events} events for {plan.distinct} distinct reports")
    wrong = []
    for pk, status, provider_id in Message.objects.filter(pk__in=pks).values_list(
        "pk", "status", "provider_message_id"
    ):
        if status != plan.expected_status[pk] or provider_id != plan.expected_id[pk]:
            wrong.append(
                f"message {pk}: {status}/{provider_id}, expected "
                f"{plan.expected_status[pk]}/{plan.expected_id[pk]}"
            )
    if wrong:
        problems.append(f"{len(wrong)} messages have a wrong status or id, e.g. {wrong[:3]}")
    return problems


def figures(plan: Plan, result: Result) -> dict[str, Any]:
    latencies = sorted(result.latencies) or [0.0]

    def percentile(share: float) -> float:
        return latencies[min(int(share * len(latencies)), len(latencies) - 1)] * 1000

    requests_made = sum(result.codes.values())
    return {
        "requests": requests_made,
        "distinct reports": plan.distinct,
        "duplicates": plan.duplicates,
        "duration s": round(result.duration, 2),
        "req/s": round(requests_made / result.duration, 1) if result.duration else 0,
        "p50 ms": round(statistics.median(latencies) * 1000, 1),
        "p95 ms": round(percentile(0.95), 1),
        "p99 ms": round(percentile(0.99), 1),
        "max ms": round(latencies[-1] * 1000, 1),
        "5xx": sum(n for code, n in result.codes.items() if code >= 500),
        "answers": dict(sorted(result.codes.items())),
    }


def run(
    database_url: str,
    *,
    messages: int,
    duplicate_share: float = 0.3,
    workers: int = 4,
    threads: int = 4,
    concurrency: int = 16,
    seed: int = 1,
    deadline: float = 110,
) -> tuple[dict[str, Any], list[str]]:
    """Seed, serve, drive, verify, in the database this process's Django already uses (and
    that ``database_url`` names for the gunicorn workers). Returns the figures and problems."""
    ends = time.monotonic() + deadline
    rng = random.Random(seed)  # noqa: S311 - a reproducible shuffle, not a secret
    stored = seed_messages(messages, rng)
    plan = make_plan(stored, duplicate_share, rng)
    with gunicorn(database_url, workers=workers, threads=threads) as origin:
        result = drive(origin, plan.deliveries, concurrency=concurrency, deadline=ends)
    return figures(plan, result), verify(plan, result)


# -- the command -------------------------------------------------------------------------------


def _database(url: str, *, create: bool) -> None:
    import psycopg
    from psycopg import sql

    name = url.rsplit("/", 1)[-1]
    admin = url.rsplit("/", 1)[0].replace("postgres://", "postgresql://", 1) + "/postgres"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        if create:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--duplicates", type=float, default=0.3, help="share of all requests")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--concurrency", type=int, default=16, help="client threads")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--deadline", type=float, default=110, help="seconds, for everything")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DW_LOADTEST_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="a database of its own: it is dropped and created again",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    options = parser.parse_args(argv)

    os.environ["DW_LOADTEST_DATABASE_URL"] = options.database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "loadtest.settings"
    import django
    from django.core.management import call_command
    from django.db import connections

    _database(options.database_url, create=True)
    try:
        django.setup()
        call_command("migrate", verbosity=0)
        print(
            f"{options.messages} messages, {options.duplicates:.0%} duplicates, gunicorn "
            f"{options.workers} workers x {options.threads} threads, "
            f"{options.concurrency} clients, {os.cpu_count()} CPUs"
        )
        numbers, problems = run(
            options.database_url,
            messages=options.messages,
            duplicate_share=options.duplicates,
            workers=options.workers,
            threads=options.threads,
            concurrency=options.concurrency,
            seed=options.seed,
            deadline=options.deadline,
        )
        connections.close_all()
    finally:
        if not options.keep:
            _database(options.database_url, create=False)
    for name, value in numbers.items():
        print(f"  {name:>17}: {value}")
    if problems:
        print("FAILED:", *problems, sep="\n  ")
        return 1
    print("OK: no 5xx, one event per distinct report, every status the highest-ranked report.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
