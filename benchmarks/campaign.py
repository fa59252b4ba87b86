"""Campaigns: sent by real ``db_worker`` processes (django-tasks-db on PostgreSQL), and imported
from a large CSV file.

1. **Rate-limited.** The fake gateway (tests/limited_gateway.py) enforces 50 requests/s (a token
   bucket one second deep) and answers 429 with ``Retry-After: 1``, 50 ms per request; 6 worker
   processes share ``RATE_LIMIT = 50`` in Redis. Measured by the gateway's own log: throughput
   over the limit, the share of 429s, messages lost (not accepted) and sent twice.
2. **Unlimited.** 50 ms per request, 2 worker processes of 8 requests in flight each, against a
   bare pooled-HTTP sender with no database at the same total concurrency (16), in the same run,
   three rounds (the medians are reported); the workers' CPU milliseconds per message and, on
   a server with ``pg_stat_statements`` (the runner's private one), the workers' statements per
   message: all of them, and those about the messages (claims, the opt-out query, recordings).
3. **Import.** ``campaign_from_csv`` of 10,000 and of 1,000,000 rows (``BENCH_IMPORT_SIZES``),
   each in a fresh process that reports its own peak memory (``VmHWM``): peak RSS, their
   ratio, rows per second.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from django.conf import settings

from .harness import ROOT, Figure, child_env, run_child, tree_cpu

LIMIT = 50.0
LIMITED_MESSAGES = int(os.environ.get("BENCH_CAMPAIGN_LIMITED", "1500"))
LIMITED_WORKERS = 6
UNLIMITED_MESSAGES = int(os.environ.get("BENCH_CAMPAIGN_UNLIMITED", "2000"))
UNLIMITED_WORKERS = 2
ROUNDS = 3  # of the unlimited run: its figures are the medians
CONCURRENCY = 8  # engine.CONCURRENCY: requests in flight per worker
CHUNK_SIZE = 100
LATENCY = 0.050


def import_sizes(text: str) -> tuple[int, int]:
    """``BENCH_IMPORT_SIZES``: two row counts, the smaller first (the memory of the larger
    import is compared with the smaller's). Anything else stops the run before it starts."""
    try:
        small, large = (int(n) for n in text.split(","))
    except ValueError:
        small = large = 0
    if not 0 < small < large:
        raise SystemExit(
            f"BENCH_IMPORT_SIZES={text!r}: two row counts, the smaller first (e.g. 1000,10000)"
        )
    return small, large


IMPORT_SIZES = import_sizes(os.environ.get("BENCH_IMPORT_SIZES", "10000,1000000"))
#: The role the unlimited run's workers connect as, so that their statements are told apart from
#: the runner's (which watches the campaign's status meanwhile).
WORKER_ROLE = "bench_campaign_workers"
#: The tables whose statements are the sending's own (the claims, the opt-out query, the
#: recordings); the others are the task queue's, the chunks' leases and the campaign's status.
MESSAGE_TABLES = (
    "django_whatsapp_message",
    "django_whatsapp_statusevent",
    "django_whatsapp_contact",
)


def _workers(count: int, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [
                sys.executable,
                "-m",
                "django",
                "db_worker",
                "--interval",
                "0.05",
                "--no-startup-delay",
                "--no-reload",
                "--worker-id",
                f"bench-{n}",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(count)
    ]


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=30)


def _env(gateway_url: str, rate: float | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        DJANGO_SETTINGS_MODULE="benchmarks.settings_campaign",
        PYTHONPATH=str(ROOT),
        BENCH_GATEWAY_URL=gateway_url,
        BENCH_RATE_LIMIT="" if rate is None else str(rate),
        BENCH_REDIS_PREFIX=f"dw-campaigns-bench-{uuid.uuid4().hex[:8]}",
    )
    return env


def _campaign(count: int, start: int) -> Any:
    from django_whatsapp import services
    from django_whatsapp.models import Message, StatusEvent

    StatusEvent.objects.all().delete()
    Message.objects.all().delete()
    numbers = (f"+{380500000000 + start + n}" for n in range(count))
    # Chunks of 100: enough chunks for every worker (a chunk is one worker's at a time).
    return services.create_campaign(
        "Bench", numbers, text="Spring sale: 20% off", chunk_size=CHUNK_SIZE
    )


def _counting() -> bool:
    """Whether the server counts statements (``pg_stat_statements`` loaded: the runner's
    private server); if so, the extension and the workers' role are made in the database."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW shared_preload_libraries")
        if "pg_stat_statements" not in cursor.fetchone()[0]:
            return False
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [WORKER_ROLE])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE ROLE "{WORKER_ROLE}" LOGIN SUPERUSER')
    return True


def _statements(role: str) -> tuple[int, int, list[tuple[int, str]]]:
    """The statements ``role`` ran in this database since the last reset: all of them (queries
    and transaction control), those about the messages, and the most frequent ones."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.calls, s.query FROM pg_stat_statements s"
            " JOIN pg_roles r ON r.oid = s.userid JOIN pg_database d ON d.oid = s.dbid"
            " WHERE d.datname = current_database() AND r.rolname = %s ORDER BY s.calls DESC",
            [role],
        )
        rows = [(int(calls), str(query)) for calls, query in cursor.fetchall()]
    total = sum(calls for calls, _q in rows)
    messages = sum(calls for calls, q in rows if any(t in q for t in MESSAGE_TABLES))
    return total, messages, rows[:12]


def _run_campaign(
    count: int,
    workers: int,
    gateway_url: str,
    rate: float | None,
    *,
    count_statements: bool = False,
) -> tuple[float, float, tuple[int, int, list[tuple[int, str]]] | None]:
    """Send a campaign of ``count`` through ``workers`` db_worker processes; return the seconds
    from start to done, the workers' CPU seconds over them (their start-up, before the clock
    starts, not counted) and, with ``count_statements``, their statements (:func:`_statements`;
    ``None`` when the server does not count them)."""
    from django.db import connection

    from django_whatsapp import services
    from django_whatsapp.models import Campaign

    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "BASE_URL": gateway_url}
    campaign = _campaign(count, 0)
    counting = count_statements and _counting()
    env = _env(gateway_url, rate)
    if counting:
        env["BENCH_DB_USER"] = WORKER_ROLE
    processes = _workers(workers, env)
    pause = threading.Event()
    counted = None
    try:
        pause.wait(3.0)  # the workers start up (imports, connections) before the clock starts
        if counting:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_stat_statements_reset()")
        before = sum(tree_cpu(p.pid) for p in processes)
        started = time.perf_counter()
        services.start_campaign(campaign)
        while Campaign.objects.get(pk=campaign.pk).status != Campaign.Status.DONE:
            pause.wait(0.05)
            if time.perf_counter() - started > 900:
                raise RuntimeError("the campaign did not finish in 15 minutes")
        elapsed = time.perf_counter() - started
        cpu = sum(tree_cpu(p.pid) for p in processes) - before
        if counting:
            counted = _statements(WORKER_ROLE)
    finally:
        _stop(processes)
    return elapsed, cpu, counted


def limited() -> list[Figure]:
    from tests.limited_gateway import LimitedGateway

    fake = LimitedGateway(rate=LIMIT, burst=LIMIT, retry_after=1, latency=LATENCY)
    try:
        elapsed, _cpu, _counted = _run_campaign(
            LIMITED_MESSAGES, LIMITED_WORKERS, fake.base_url, LIMIT
        )
        received = fake.accepted_destinations()
        with fake.lock:
            times = sorted(e.at for e in fake.log if e.status == 200)
            total = len(fake.log)
        refused = fake.count(429)
    finally:
        fake.close()
    from django_whatsapp.models import Message

    accepted = Message.objects.filter(status="accepted").count()
    lost = LIMITED_MESSAGES - accepted
    twice = sum(1 for n in received.values() if n > 1)
    # Throughput as the gateway saw it: accepted requests over the span they arrived in.
    span = times[-1] - times[0] if len(times) > 1 else elapsed
    rate = (len(times) - 1) / span if span else 0.0
    share = refused / total if total else 0.0
    print(
        f"campaign: limit {LIMIT:.0f}/s, {LIMITED_WORKERS} workers, {LIMITED_MESSAGES} messages:"
        f" {rate:.1f}/s at the gateway, {refused} 429s of {total}, lost {lost}, twice {twice},"
        f" {elapsed:.1f}s start to done"
    )
    return [
        Figure("campaign", "rate-limited: gateway throughput, msg/s", rate, "msg/s", "", None),
        Figure(
            "campaign",
            "rate-limited: throughput / limit",
            rate / LIMIT,
            "",
            ">= 0.95",
            rate / LIMIT >= 0.95,
        ),
        Figure("campaign", "rate-limited: 429s / requests", share, "", "<= 0.01", share <= 0.01),
        Figure("campaign", "rate-limited: messages lost", lost, "msgs", "0", lost == 0),
        Figure("campaign", "rate-limited: messages sent twice", twice, "msgs", "0", twice == 0),
    ]


def bare(base_url: str, count: int, concurrency: int) -> float:
    """Messages per second from a bare sender: ``concurrency`` threads over one pooled session,
    no database, no validation."""
    conf: dict[str, Any] = settings.DJANGO_WHATSAPP
    headers = {
        "Authorization": "Basic " + base64.b64encode(conf["API_KEY"].encode()).decode(),
        "Content-Type": "application/json",
    }
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=concurrency)
    session.mount("http://", adapter)

    def post(n: int) -> None:
        body = {
            "source_addr": "TestCo",
            "destination_addr": 380900000000 + n,
            "message_type": 1,
            "text": "Spring sale: 20% off",
        }
        answer = session.post(
            f"{base_url}/send-whatsapp", data=json.dumps(body), headers=headers, timeout=30
        )
        answer.raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(post, range(count)))
    return count / (time.perf_counter() - started)


def unlimited() -> list[Figure]:
    """``ROUNDS`` rounds, each the bare sender then the campaign against the same gateway; the
    figures are the medians over the rounds (the ratio the median of the rounds' ratios)."""
    from django_whatsapp.models import Message
    from tests.limited_gateway import LimitedGateway

    concurrency = UNLIMITED_WORKERS * CONCURRENCY
    rounds: list[tuple[float, float, float]] = []  # bare msg/s, campaign msg/s, CPU ms
    statements: list[tuple[float, float]] = []  # all, about the messages: per message
    for _ in range(ROUNDS):
        fake = LimitedGateway(rate=None, latency=LATENCY)
        try:
            baseline = bare(fake.base_url, UNLIMITED_MESSAGES, concurrency)
            elapsed, cpu, counted = _run_campaign(
                UNLIMITED_MESSAGES, UNLIMITED_WORKERS, fake.base_url, None, count_statements=True
            )
        finally:
            fake.close()
        accepted = Message.objects.filter(status="accepted").count()
        assert accepted == UNLIMITED_MESSAGES, accepted
        rounds.append((baseline, UNLIMITED_MESSAGES / elapsed, 1000 * cpu / UNLIMITED_MESSAGES))
        print(
            f"campaign: no limit, {UNLIMITED_WORKERS} workers x {CONCURRENCY}: "
            f"{rounds[-1][1]:.0f}/s; bare pooled sender at {concurrency}: {baseline:.0f}/s; "
            f"{rounds[-1][2]:.2f} CPU ms per message"
        )
        if counted is not None:
            total, about_messages, top = counted
            statements.append((total / UNLIMITED_MESSAGES, about_messages / UNLIMITED_MESSAGES))
            print(
                f"campaign: the workers' statements: {total} ({statements[-1][0]:.2f} a message),"
                f" {about_messages} about the messages ({statements[-1][1]:.2f} a message);"
                " the most frequent:"
            )
            for calls, query in top:
                print(f"  {calls:>7}  {' '.join(query.split())[:110]}")
    ratios = [campaign / baseline for baseline, campaign, _cpu in rounds]
    ratio = statistics.median(ratios)
    listed = ", ".join(f"{r:.2f}" for r in ratios)
    counted_figures = (
        [
            Figure(
                "campaign",
                "unlimited: worker statements per message (median)",
                statistics.median(s[0] for s in statements),
                "stmts",
                "",
                None,
            ),
            Figure(
                "campaign",
                "unlimited: of them about the messages (median)",
                statistics.median(s[1] for s in statements),
                "stmts",
                "",
                None,
            ),
        ]
        if statements
        else []
    )
    return [
        Figure(
            "campaign",
            "unlimited: bare pooled sender, msg/s (median)",
            statistics.median(r[0] for r in rounds),
            "msg/s",
            "",
            None,
        ),
        Figure(
            "campaign",
            "unlimited: campaign, msg/s (median)",
            statistics.median(r[1] for r in rounds),
            "msg/s",
            "",
            None,
        ),
        Figure(
            "campaign",
            f"unlimited: campaign / bare sender ({listed})",
            ratio,
            "",
            ">= 0.8",
            ratio >= 0.8,
        ),
        Figure(
            "campaign",
            "unlimited: worker CPU per message (median)",
            statistics.median(r[2] for r in rounds),
            "ms",
            "",
            None,
        ),
        *counted_figures,
    ]


#: Run in a fresh process: import a CSV file, print its seconds, recipients, CPU and peak
#: memory (its own ``VmHWM``: see :func:`benchmarks.harness.peak_rss_kib`).
IMPORT = """
import json, sys, time
import django
django.setup()
from benchmarks.harness import own_usage
from django_whatsapp import services
started = time.perf_counter()
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    c = services.campaign_from_csv("Import", f, number_column="phone", text="Hi")
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "recipients": c.recipients_count, **own_usage()}))
"""


def imports() -> list[Figure]:
    from django_whatsapp.models import Campaign, Message, StatusEvent

    results: dict[int, dict[str, float]] = {}
    for size in IMPORT_SIZES:
        StatusEvent.objects.all().delete()
        Message.objects.all().delete()
        Campaign.objects.all().delete()
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as file:
            file.write("phone,name\n")
            for n in range(size):
                file.write(f"+{380500000000 + n},Customer {n}\n")
        try:
            results[size] = run_child(["-c", IMPORT, file.name], env=child_env())
        finally:
            os.unlink(file.name)
        assert results[size]["recipients"] == size, results[size]
        print(
            f"campaign: import of {size} rows: {results[size]['seconds']:.1f}s, "
            f"peak RSS {results[size]['peak_rss_mb']:.0f} MB"
        )
    small, large = (results[s] for s in IMPORT_SIZES)
    peak = large["peak_rss_mb"]
    ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    per_second = IMPORT_SIZES[-1] / large["seconds"]
    label = f"{IMPORT_SIZES[-1]:,}"
    return [
        Figure("campaign", f"import {label} rows: peak RSS", peak, "MB", "< 150", peak < 150),
        Figure(
            "campaign",
            f"import: peak RSS {label} / {IMPORT_SIZES[0]:,} rows",
            ratio,
            "x",
            "<= 1.2",
            ratio <= 1.2,
        ),
        Figure("campaign", "import: rows per second", per_second, "rows/s", "", None),
    ]


def run() -> list[Figure]:
    return [*limited(), *unlimited(), *imports()]
