"""The status callback: SQL statements per report, and reports per second under gunicorn.

Queries are counted with Django's ``CaptureQueriesContext`` around the whole request (the view's
lookup of the message included; transaction control such as BEGIN and COMMIT would count too).
Throughput: gunicorn serving this site on PostgreSQL, callbacks each applying a new report to
another message, against a bare Django view on the same stack (same middleware, same database
connection settings) that does one INSERT.
"""

from __future__ import annotations

import http.client
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from .harness import ROOT, CPUMeter, Figure, child_env, free_port, own_cpu, wait_for_port

SAMPLE = 30
REQUESTS = 1500  # per measurement
LOAD_THREADS = 16
WORKERS = 5  # gunicorn's advice: 2 x cores + 1
CPU_SAMPLE = 1000  # requests per in-process CPU measurement


def make_messages(count: int) -> list[str]:
    """``count`` accepted messages; the paths of their signed callback URLs."""
    from django_whatsapp.models import Message
    from django_whatsapp.signing import callback_url

    first = (
        Message.objects.order_by("-provider_message_id")
        .values_list("provider_message_id", flat=True)
        .first()
        or 5_000_000
    ) + 1
    messages = Message.objects.bulk_create(
        Message(
            source_addr="TestCo",
            destination_addr="380501234567",
            text="hi",
            status="accepted",
            provider_message_id=first + n,
        )
        for n in range(count)
    )
    paths = []
    for message in messages:
        url = callback_url(message.uuid)
        assert url is not None
        paths.append(urlsplit(url).path)
    return paths


def count_queries() -> tuple[list[Figure], list[str]]:
    client = Client()
    applied: list[int] = []
    duplicates: list[int] = []
    sql: list[str] = []
    for path in make_messages(SAMPLE):
        for counts, key in ((applied, "applied"), (duplicates, "duplicates")):
            with CaptureQueriesContext(connection) as queries:
                answer = client.post(
                    path, '{"status": "delivered"}', content_type="application/json"
                )
            assert answer.status_code == 200, answer.content
            assert answer.json()[key] == 1, answer.json()
            counts.append(len(queries))
            if not sql:
                sql = [q["sql"] for q in queries.captured_queries]
    most_applied, most_duplicate = max(applied), max(duplicates)
    print(
        f"callback: queries per applied report {applied[:5]}..., per duplicate {duplicates[:5]}..."
    )
    return [
        Figure(
            "callback",
            "SQL queries per applied report (max)",
            most_applied,
            "queries",
            "<= 3",
            most_applied <= 3,
        ),
        Figure(
            "callback",
            "SQL queries per duplicate report (max)",
            most_duplicate,
            "queries",
            "<= 2",
            most_duplicate <= 2,
        ),
    ], sql


def load(port: int, requests: list[tuple[str, bytes]]) -> float:
    """Send the requests from ``LOAD_THREADS`` threads; return requests per second."""
    position = iter(range(len(requests)))
    lock = threading.Lock()
    failures: list[str] = []

    def work() -> None:
        while True:
            with lock:
                index = next(position, None)
            if index is None:
                return
            path, body = requests[index]
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.request("POST", path, body, {"Content-Type": "application/json"})
                answer = conn.getresponse()
                answer.read()
                if answer.status != 200:
                    failures.append(f"{path}: HTTP {answer.status}")
            finally:
                conn.close()

    threads = [threading.Thread(target=work) for _ in range(LOAD_THREADS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert not failures, failures[:5]
    return len(requests) / elapsed


#: The two ways a project may connect to PostgreSQL, each measured: Django's defaults (the
#: client binds parameters into the SQL text, PostgreSQL plans every statement), and prepared
#: statements (``OPTIONS``: ``server_side_binding`` and ``prepare_threshold``; PostgreSQL plans a
#: statement once per connection), which a project may turn on when no transaction-pooling
#: bouncer stands between it and the database.
CONFIGURATIONS = {"Django's defaults": "0", "prepared statements": "1"}
PAIRS = 3  # rounds of (bare view, callback) per configuration; medians are reported


@dataclass
class Round:
    rate: float
    server_ms: float  # gunicorn's processes, CPU per request
    database_ms: float | None  # PostgreSQL's processes, when they run on this machine
    load_ms: float  # the load generator's


def serve(database: str, prepared: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "gunicorn",
            "benchmarks.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(WORKERS),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=child_env(BENCH_DB_NAME=database, BENCH_PREPARED=prepared),
    )
    return server, port


def measure(label: str, prepared: str) -> list[Figure]:
    """Pairs of rounds against one gunicorn: the bare view, then the callback; each pair's
    ratio compares two rounds a few seconds apart, and the median pair is reported."""
    from django.db import connection as db

    report = b'{"status": "delivered"}'
    callbacks = [make_messages(REQUESTS) for _ in range(PAIRS + 1)]
    server, port = serve(db.settings_dict["NAME"], prepared)
    meter = CPUMeter(server.pid)

    def measured(requests: list[tuple[str, bytes]]) -> Round:
        meter.start()
        rate = load(port, requests)
        server_seconds, database_seconds, load_seconds = meter.stop()
        per = 1000 / len(requests)
        database_ms = None if database_seconds is None else database_seconds * per
        return Round(rate, server_seconds * per, database_ms, load_seconds * per)

    pairs: list[tuple[Round, Round]] = []
    try:
        wait_for_port(port)
        bare_requests = [("/bare/", report)] * REQUESTS
        # Warm up both: imports, connections, caches, the prepared statements.
        load(port, bare_requests[:200])
        load(port, [(p, report) for p in callbacks[0][:200]])
        for pair in range(PAIRS):
            bare = measured(bare_requests)
            callback = measured([(p, report) for p in callbacks[pair + 1]])
            pairs.append((bare, callback))
    finally:
        server.terminate()
        server.wait(timeout=30)
    for bare, callback in pairs:
        print(f"callback ({label}): bare {bare}")
        print(f"callback ({label}): callback {callback}")

    def median_of(values: list[float]) -> float:
        return statistics.median(values)

    ratio = median_of([callback.rate / bare.rate for bare, callback in pairs])
    bare_rate = median_of([bare.rate for bare, _ in pairs])
    callback_rate = median_of([callback.rate for _, callback in pairs])
    figures = [
        Figure("callback", f"{label}: bare view, one INSERT", bare_rate, "req/s", "", None),
        Figure("callback", f"{label}: callbacks", callback_rate, "req/s", "", None),
        Figure("callback", f"{label}: callback / bare view", ratio, "", ">= 0.6", ratio >= 0.6),
        Figure(
            "callback",
            f"{label}: CPU per bare request, gunicorn",
            median_of([b.server_ms for b, _ in pairs]),
            "ms",
            "",
            None,
        ),
        Figure(
            "callback",
            f"{label}: CPU per callback, gunicorn",
            median_of([c.server_ms for _, c in pairs]),
            "ms",
            "",
            None,
        ),
    ]
    if all(b.database_ms is not None and c.database_ms is not None for b, c in pairs):
        whole_ratio = median_of(
            [
                (c.server_ms + (c.database_ms or 0.0)) / (b.server_ms + (b.database_ms or 0.0))
                for b, c in pairs
            ]
        )
        figures += [
            Figure(
                "callback",
                f"{label}: CPU per bare request, PostgreSQL",
                median_of([b.database_ms or 0.0 for b, _ in pairs]),
                "ms",
                "",
                None,
            ),
            Figure(
                "callback",
                f"{label}: CPU per callback, PostgreSQL",
                median_of([c.database_ms or 0.0 for _, c in pairs]),
                "ms",
                "",
                None,
            ),
            Figure(
                "callback",
                f"{label}: CPU per callback / bare, gunicorn + PostgreSQL",
                whole_ratio,
                "",
                "<= 2.5",
                whole_ratio <= 2.5,
            ),
        ]
    else:  # PostgreSQL runs elsewhere: the application's side alone
        server_ratio = median_of([c.server_ms / b.server_ms for b, c in pairs])
        figures.append(
            Figure(
                "callback",
                f"{label}: CPU per callback / bare, gunicorn",
                server_ratio,
                "",
                "<= 2.5",
                server_ratio <= 2.5,
            )
        )
    figures.append(
        Figure(
            "callback",
            f"{label}: CPU per callback, load generator",
            median_of([c.load_ms for _, c in pairs]),
            "ms",
            "",
            None,
        )
    )
    return figures


def throughput() -> list[Figure]:
    from django.db import connection as db

    with db.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS bench_ping (id bigserial PRIMARY KEY, body text)"
        )
    figures: list[Figure] = []
    for label, prepared in CONFIGURATIONS.items():
        figures += measure(label, prepared)
    from django_whatsapp.models import Message

    applied = Message.objects.filter(status="delivered").count()
    assert applied >= len(CONFIGURATIONS) * PAIRS * REQUESTS, applied
    return figures


def in_process_cpu() -> list[Figure]:
    """CPU per request in this one process through Django's test client (no network, no
    gunicorn): the view's own cost, the bare view's beside it."""
    client = Client()
    report = '{"status": "delivered"}'
    paths = make_messages(CPU_SAMPLE + 100)
    for path in paths[:100]:  # warm up
        client.post(path, report, content_type="application/json")
        client.post("/bare/", report, content_type="application/json")
    started = own_cpu()
    for _ in range(CPU_SAMPLE):
        client.post("/bare/", report, content_type="application/json")
    bare = (own_cpu() - started) * 1000 / CPU_SAMPLE
    started = own_cpu()
    for path in paths[100:]:
        client.post(path, report, content_type="application/json")
    callback = (own_cpu() - started) * 1000 / CPU_SAMPLE
    print(
        f"callback: CPU per request in one process: bare {bare:.3f} ms, callback {callback:.3f} ms"
    )
    return [
        Figure("callback", "in one process: CPU per bare request", bare, "ms", "", None),
        Figure("callback", "in one process: CPU per callback", callback, "ms", "", None),
        Figure("callback", "in one process: callback / bare", callback / bare, "", "", None),
    ]


BINDING_BATCH = 1000  # statements per batch; the two ways take turns
BINDING_ROUNDS = 6


def binding_cpu() -> list[Figure]:
    """This process's CPU per callback statement (the function call, as the view runs it)
    through Django's own cursor, which binds client-side by default, and through the fast
    paths' server-binding cursor (:mod:`django_whatsapp.fastpaths.binding`): batches of each
    way in turn (which goes first alternates), on fresh messages, the medians of the rounds.
    PostgreSQL's side is not here (the throughput rounds count it)."""
    from django_whatsapp import services
    from django_whatsapp.fastpaths import by_uuid
    from django_whatsapp.fastpaths.binding import server_bound_cursor
    from django_whatsapp.models import Message, StatusEvent

    own = connections["default"]  # the wrapper itself: each attribute of the proxy is a lookup
    lookup = services.lookup_for("default", own)
    sql = by_uuid.call_text(lookup.lean_columns, "delivered", 1, "callback", ("accepted",), False)
    payload = StatusEvent._meta.get_field("payload")
    report = {"message_id": 123456789, "status": 1, "time": "2026-12-07 12:00:00"}
    ways = {
        "client-side": own.cursor,
        "server-side": lambda: server_bound_cursor(own),
    }
    spent: dict[str, list[float]] = {name: [] for name in ways}
    for round_ in range(BINDING_ROUNDS):
        for name in list(ways)[:: 1 if round_ % 2 == 0 else -1]:
            paths = make_messages(BINDING_BATCH)
            keys = [uuid.UUID(path.rstrip("/").split("/")[-2]) for path in paths]
            started = time.process_time()
            for key in keys:
                params = {
                    "uuid": key,
                    "payload": payload.get_db_prep_save(report, own),
                    "now": timezone.now(),
                }
                with ways[name]() as cursor:
                    cursor.execute(sql, params)
                    assert cursor.fetchone() is not None
            spent[name].append((time.process_time() - started) * 1000 / BINDING_BATCH)
    applied = Message.objects.filter(status="delivered").count()
    assert applied >= 2 * BINDING_ROUNDS * BINDING_BATCH, applied
    client, server = (statistics.median(spent[name]) for name in ways)
    print(f"callback: CPU per statement: client-side {client:.3f} ms, server-side {server:.3f} ms")
    return [
        Figure("callback", "its statement, bound client-side: CPU", client, "ms", "", None),
        Figure("callback", "its statement, bound server-side: CPU", server, "ms", "", None),
        Figure("callback", "server-side / client-side binding", server / client, "", "", None),
    ]


def run() -> list[Figure]:
    figures, sql = count_queries()
    print("callback: the SQL of an applied report:")
    for statement in sql:
        print("   ", " ".join(statement.split())[:160])
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS bench_ping (id bigserial PRIMARY KEY, body text)"
        )
    return figures + binding_cpu() + in_process_cpu() + throughput()
