"""The status callback: SQL statements per report, and reports per second under gunicorn.

Queries are counted with Django's ``CaptureQueriesContext`` around the whole request (the view's
lookup of the message included; transaction control such as BEGIN and COMMIT would count too).
Throughput: gunicorn serving this site on PostgreSQL, callbacks each applying a new report to
another message, against a bare Django view on the same stack (same middleware, same database
connection settings) that does one INSERT.
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

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


def throughput() -> list[Figure]:
    from django.db import connection as db

    with db.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS bench_ping (id bigserial PRIMARY KEY, body text)"
        )
    report = b'{"status": "delivered"}'
    rounds = 2
    callbacks = [make_messages(REQUESTS) for _ in range(rounds + 1)]
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
        env=child_env(BENCH_DB_NAME=db.settings_dict["NAME"]),
    )
    meter = CPUMeter(server.pid)
    bare_cpu: list[tuple[float, float]] = []
    callback_cpu: list[tuple[float, float]] = []

    def measured(requests: list[tuple[str, bytes]], cpu: list[tuple[float, float]]) -> float:
        meter.start()
        rate = load(port, requests)
        server_seconds, load_seconds = meter.stop()
        cpu.append((server_seconds * 1000 / len(requests), load_seconds * 1000 / len(requests)))
        return rate

    try:
        wait_for_port(port)
        bare_requests = [("/bare/", report)] * REQUESTS
        # Warm up both: imports, connections, caches.
        load(port, bare_requests[:200])
        load(port, [(p, report) for p in callbacks[0][:200]])
        bare_rates, callback_rates = [], []
        for round_ in range(rounds):
            bare_rates.append(measured(bare_requests, bare_cpu))
            callback_rates.append(
                measured([(p, report) for p in callbacks[round_ + 1]], callback_cpu)
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
    from django_whatsapp.models import Message

    applied = Message.objects.filter(status="delivered").count()
    assert applied >= rounds * REQUESTS, applied
    bare, callback = max(bare_rates), max(callback_rates)
    rates = f"bare view {bare_rates} req/s, callback {callback_rates} req/s"
    print(f"callback: gunicorn, {WORKERS} workers: {rates}")
    print(
        f"callback: CPU ms per request (gunicorn, load): bare {bare_cpu}, callback {callback_cpu}"
    )
    bare_ms = min(server for server, _ in bare_cpu)
    callback_ms = min(server for server, _ in callback_cpu)
    load_ms = min(load_ for _, load_ in callback_cpu)
    return [
        Figure(
            "callback",
            f"bare view, one INSERT (gunicorn, {WORKERS} workers)",
            bare,
            "req/s",
            "",
            None,
        ),
        Figure("callback", "callback, applied reports", callback, "req/s", "", None),
        Figure(
            "callback",
            "callback / bare view",
            callback / bare,
            "",
            ">= 0.6",
            callback / bare >= 0.6,
        ),
        Figure("callback", "CPU per bare request (gunicorn's processes)", bare_ms, "ms", "", None),
        Figure("callback", "CPU per callback (gunicorn's processes)", callback_ms, "ms", "", None),
        Figure(
            "callback",
            "CPU per callback / per bare request",
            callback_ms / bare_ms,
            "",
            "<= 2.5",
            callback_ms / bare_ms <= 2.5,
        ),
        Figure("callback", "CPU per request of the load generator", load_ms, "ms", "", None),
    ]


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


def run() -> list[Figure]:
    figures, sql = count_queries()
    print("callback: the SQL of an applied report:")
    for statement in sql:
        print("   ", " ".join(statement.split())[:160])
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS bench_ping (id bigserial PRIMARY KEY, body text)"
        )
    return figures + in_process_cpu() + throughput()
