"""``whatsapp_resync`` over 10,000 non-final messages against a gateway that adds 10 ms per
request, beside a bare poller in the same run: threads over one pooled ``requests.Session``
(the same concurrency) asking the same gateway for the same 10,000 statuses, with no database
and no Django. Time against the bare poller's, CPU per poll of each, and peak memory at 10,000
and at 100,000 messages (``BENCH_RESYNC_LARGE`` sets the second count).

Each runs in a process of its own (``python -m benchmarks.resync resync|bare ...``), which
reports its own wall time, CPU (``resource.getrusage``: user + system, every thread) and peak
resident memory (its own ``VmHWM``, :func:`benchmarks.harness.peak_rss_kib`; never
``ru_maxrss``, which a child inherits from the process that forked it).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from .harness import Figure, child_env, gateway, own_usage, run_child

COUNT = 10_000
LARGE = int(os.environ.get("BENCH_RESYNC_LARGE", "100000"))
LATENCY = 0.010
CONCURRENCY = 8


def prepare(count: int) -> None:
    from django_whatsapp.models import Message, StatusEvent

    StatusEvent.objects.all().delete()
    Message.objects.all().delete()
    Message.objects.bulk_create(
        (
            Message(
                source_addr="TestCo",
                destination_addr="380501234567",
                text="hi",
                status="accepted",
                provider_message_id=7_000_000 + n,
            )
            for n in range(count)
        ),
        batch_size=2000,
    )


def measure(base_url: str, count: int) -> dict[str, float]:
    from django.db import connection

    prepare(count)
    figures = run_child(
        ["-m", "benchmarks.resync", "resync", str(CONCURRENCY)],
        env=child_env(BENCH_DB_NAME=connection.settings_dict["NAME"], BENCH_GATEWAY_URL=base_url),
        timeout=600,
    )
    from django_whatsapp.models import Message

    assert Message.objects.filter(status="delivered").count() == count
    return figures


def measure_bare(base_url: str, count: int) -> dict[str, float]:
    return run_child(
        ["-m", "benchmarks.resync", "bare", str(CONCURRENCY), str(count), base_url],
        env=child_env(),
        timeout=600,
    )


def run() -> list[Figure]:
    with gateway(LATENCY) as base_url:
        bare = measure_bare(base_url, COUNT)
        normal = measure(base_url, COUNT)
        large = measure(base_url, LARGE)
    ratio = bare["seconds"] / normal["seconds"]
    resync_ms = normal["cpu"] * 1000 / COUNT
    bare_ms = bare["cpu"] * 1000 / COUNT
    growth = large["peak_rss_mb"] / normal["peak_rss_mb"]
    print(
        f"resync: {COUNT} in {normal['seconds']:.2f}s, the bare poller {bare['seconds']:.2f}s; "
        f"CPU per poll {resync_ms:.2f} ms against {bare_ms:.2f} ms; peak RSS "
        f"{normal['peak_rss_mb']:.0f} MB ({LARGE}: {large['seconds']:.2f}s, "
        f"{large['peak_rss_mb']:.0f} MB)"
    )
    return [
        Figure(
            "resync", f"bare poller, {COUNT:,} statuses, seconds", bare["seconds"], "s", "", None
        ),
        Figure("resync", f"resync, {COUNT:,} messages, seconds", normal["seconds"], "s", "", None),
        Figure("resync", "bare poller's time / resync's", ratio, "", ">= 0.8", ratio >= 0.8),
        Figure("resync", "CPU per poll, bare poller", bare_ms, "ms", "", None),
        Figure("resync", "CPU per poll, resync", resync_ms, "ms", "", None),
        Figure(
            "resync",
            f"peak RSS, {COUNT:,} messages",
            normal["peak_rss_mb"],
            "MB",
            "< 200",
            normal["peak_rss_mb"] < 200,
        ),
        Figure(
            "resync",
            f"peak RSS, {LARGE:,} messages",
            large["peak_rss_mb"],
            "MB",
            "< 200",
            large["peak_rss_mb"] < 200,
        ),
        Figure(
            "resync",
            f"peak RSS at {LARGE:,} / at {COUNT:,}",
            growth,
            "",
            "<= 1.2",
            growth <= 1.2,
        ),
        Figure("resync", f"resync, {LARGE:,} messages, seconds", large["seconds"], "s", "", None),
    ]


def bare_child(concurrency: int, count: int, base_url: str) -> None:
    """Poll ``count`` statuses from ``concurrency`` threads over one pooled session: the least
    any poller does for the same answers (no database, no Django)."""
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=concurrency))
    url = f"{base_url}/receive-whatsapp"
    ids = iter(range(7_000_000, 7_000_000 + count))
    lock = threading.Lock()
    answers: list[int] = []

    def work() -> None:
        while True:
            with lock:
                message_id = next(ids, None)
            if message_id is None:
                return
            answer = session.post(url, json={"message_id": message_id}, timeout=30)
            answers.append(answer.json()["status"])

    started = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    assert len(answers) == count, len(answers)
    print(json.dumps({"seconds": seconds, **own_usage()}))


def child(concurrency: int) -> None:
    """Run the command (its line per message to /dev/null, as under cron) and report."""
    import os

    import django

    django.setup()
    from django.core.management import call_command

    with open(os.devnull, "w", encoding="utf-8") as devnull:
        started = time.perf_counter()
        call_command(
            "whatsapp_resync", "--concurrency", str(concurrency), stdout=devnull, stderr=devnull
        )
        seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, **own_usage()}))


if __name__ == "__main__":
    if sys.argv[1] == "bare":
        bare_child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        child(int(sys.argv[2]))
