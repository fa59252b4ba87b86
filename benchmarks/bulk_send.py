"""Bulk send of 2,000 text messages to a gateway that adds 20 ms per request, at concurrency 8
(the default) and 16.

Beside each run, in the same process and against the same gateway, the bare sender: as many
threads as the concurrency over one pooled ``requests.Session``, posting the same number of
send bodies and reading the answers, with no database and no Django. Throughput against the bare
sender's, and CPU per message of each (``resource.getrusage`` of this process, every thread; the
gateway runs in a process of its own). The naive baseline (sequential ``requests.post``, a new
connection each time: what a loop over the API without this package does) is kept for reference.
"""

from __future__ import annotations

import base64
import json
import resource
import threading
import time
from typing import Any

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from .harness import Figure, gateway

COUNT = 2000
BASELINE_COUNT = 150  # a throughput: measured on fewer requests, it is the same rate
CONCURRENCIES = (8, 16)
LATENCY = 0.020
TEXT = "Spring sale: 20% off"


def cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def headers() -> dict[str, str]:
    conf: dict[str, Any] = settings.DJANGO_WHATSAPP
    return {
        "Authorization": "Basic " + base64.b64encode(conf["API_KEY"].encode()).decode(),
        "Content-Type": "application/json",
    }


def body(n: int) -> dict[str, Any]:
    return {
        "source_addr": "TestCo",
        "destination_addr": 380500000000 + n,
        "message_type": 1,
        "text": TEXT,
    }


def naive(base_url: str, count: int) -> float:
    """Messages per second, one ``requests.post`` after the other, each on a new connection."""
    started = time.perf_counter()
    for n in range(count):
        answer = requests.post(
            f"{base_url}/send-whatsapp", data=json.dumps(body(n)), headers=headers(), timeout=10
        )
        answer.raise_for_status()
    return count / (time.perf_counter() - started)


def bare(base_url: str, count: int, concurrency: int) -> tuple[float, float]:
    """Messages per second and CPU seconds: ``concurrency`` threads over one pooled session,
    no database."""
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=concurrency))
    url = f"{base_url}/send-whatsapp"
    sent = iter(range(count))
    lock = threading.Lock()
    answers: list[int] = []
    fixed = headers()

    def work() -> None:
        while True:
            with lock:
                n = next(sent, None)
            if n is None:
                return
            answer = session.post(url, data=json.dumps(body(n)), headers=fixed, timeout=30)
            answer.raise_for_status()
            answers.append(answer.json()["message_id"])

    cpu_before, started = cpu(), time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds, used = time.perf_counter() - started, cpu() - cpu_before
    session.close()
    assert len(answers) == count, len(answers)
    return count / seconds, used


def run() -> list[Figure]:
    from django_whatsapp import bulk
    from django_whatsapp.models import Message, StatusEvent

    figures: list[Figure] = []
    with gateway(LATENCY) as base_url:
        settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "BASE_URL": base_url}
        baseline = naive(base_url, BASELINE_COUNT)
        print(f"bulk: naive sequential requests.post {baseline:.1f}/s")
        figures.append(
            Figure("bulk", "naive sequential requests.post, msg/s", baseline, "msg/s", "", None)
        )
        for concurrency in CONCURRENCIES:
            bare(base_url, 200, concurrency)  # warm-up: the gateway's threads and sockets
            bare_rate, bare_cpu = bare(base_url, COUNT, concurrency)
            StatusEvent.objects.all().delete()
            Message.objects.all().delete()
            recipients = [f"+{380500000000 + n}" for n in range(COUNT)]
            cpu_before, started = cpu(), time.perf_counter()
            result = bulk.send_bulk(recipients, text=TEXT, concurrency=concurrency)
            elapsed, used = time.perf_counter() - started, cpu() - cpu_before
            assert result.counts == {"accepted": COUNT}, result.counts
            assert Message.objects.filter(status="accepted").count() == COUNT
            rate = COUNT / elapsed
            ratio = rate / bare_rate
            bulk_ms, bare_ms = used * 1000 / COUNT, bare_cpu * 1000 / COUNT
            print(
                f"bulk: {COUNT} messages, concurrency {concurrency}: {rate:.0f}/s against the "
                f"bare sender's {bare_rate:.0f}/s ({ratio:.2f}); CPU per message {bulk_ms:.2f} ms "
                f"against {bare_ms:.2f} ms"
            )
            name = f"concurrency {concurrency}"
            figures += [
                Figure("bulk", f"{name}: bare pooled sender, msg/s", bare_rate, "msg/s", "", None),
                Figure("bulk", f"{name}: bulk send, msg/s", rate, "msg/s", "", None),
                Figure("bulk", f"{name}: bulk / bare sender", ratio, "", ">= 0.8", ratio >= 0.8),
                Figure("bulk", f"{name}: CPU per message, bare", bare_ms, "ms", "", None),
                Figure("bulk", f"{name}: CPU per message, bulk", bulk_ms, "ms", "", None),
                Figure("bulk", f"{name}: bulk / naive", rate / baseline, "x", "", None),
            ]
    return figures
