"""``whatsapp_resync`` over 10,000 non-final messages against a gateway that adds 10 ms per
request: time against the limit (count x latency / concurrency), and peak memory.

The command runs in a process of its own (``python -m benchmarks.resync COUNT``), which reports
its own wall time and peak resident memory (``ru_maxrss``); it is run on 1,000 messages too, to
show that memory does not grow with the count.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

from .harness import ROOT, Figure, child_env, gateway

COUNT = 10_000
SMALL = 1_000
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
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "benchmarks.resync", str(CONCURRENCY)],
        cwd=ROOT,
        env=child_env(BENCH_DB_NAME=connection.settings_dict["NAME"], BENCH_GATEWAY_URL=base_url),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    from django_whatsapp.models import Message

    assert Message.objects.filter(status="delivered").count() == count
    return figures


def run() -> list[Figure]:
    with gateway(LATENCY) as base_url:
        small = measure(base_url, SMALL)
        large = measure(base_url, COUNT)
    limit = COUNT * LATENCY / CONCURRENCY
    ratio = limit / large["seconds"]
    print(
        f"resync: {COUNT} in {large['seconds']:.2f}s (limit {limit:.2f}s), peak RSS "
        f"{large['max_rss_mb']:.0f} MB ({SMALL}: {small['seconds']:.2f}s, "
        f"{small['max_rss_mb']:.0f} MB)"
    )
    return [
        Figure("resync", f"{COUNT} messages, seconds", large["seconds"], "s", "", None),
        Figure(
            "resync",
            "limit (count x latency / concurrency) / time",
            ratio,
            "",
            ">= 0.7",
            ratio >= 0.7,
        ),
        Figure(
            "resync",
            f"peak RSS, {COUNT} messages",
            large["max_rss_mb"],
            "MB",
            "< 200",
            large["max_rss_mb"] < 200,
        ),
        Figure("resync", f"peak RSS, {SMALL} messages", small["max_rss_mb"], "MB", "", None),
    ]


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
    max_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "max_rss_mb": max_rss_kb / 1024}))


if __name__ == "__main__":
    child(int(sys.argv[1]))
