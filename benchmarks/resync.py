"""``whatsapp_resync`` over 10,000 non-final messages against a gateway that adds 10 ms per
request, beside a bare poller in the same run: threads over one pooled ``requests.Session``
(the same concurrency) asking the same gateway for the same 10,000 statuses, with no database
and no Django. Time against the bare poller's, CPU per poll of each, and peak memory at 10,000
and at 100,000 messages (``BENCH_RESYNC_LARGE`` sets the second count).

Each runs in a process of its own (``python -m benchmarks.resync resync|bare ...``), which
reports its own wall time, CPU (``resource.getrusage``: user + system, every thread) and peak
resident memory (``ru_maxrss``).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time

from .harness import ROOT, Figure, child_env, gateway

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
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "benchmarks.resync", "resync", str(CONCURRENCY)],
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


def measure_bare(base_url: str, count: int) -> dict[str, float]:
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "benchmarks.resync",
            "bare",
            str(CONCURRENCY),
            str(count),
            base_url,
        ],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return figures


def run() -> list[Figure]:
    with gateway(LATENCY) as base_url:
        bare = measure_bare(base_url, COUNT)
        normal = measure(base_url, COUNT)
        large = measure(base_url, LARGE)
    ratio = bare["seconds"] / normal["seconds"]
    resync_ms = normal["cpu"] * 1000 / COUNT
    bare_ms = bare["cpu"] * 1000 / COUNT
    growth = large["max_rss_mb"] / normal["max_rss_mb"]
    print(
        f"resync: {COUNT} in {normal['seconds']:.2f}s, the bare poller {bare['seconds']:.2f}s; "
        f"CPU per poll {resync_ms:.2f} ms against {bare_ms:.2f} ms; peak RSS "
        f"{normal['max_rss_mb']:.0f} MB ({LARGE}: {large['seconds']:.2f}s, "
        f"{large['max_rss_mb']:.0f} MB)"
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
            normal["max_rss_mb"],
            "MB",
            "< 200",
            normal["max_rss_mb"] < 200,
        ),
        Figure(
            "resync",
            f"peak RSS, {LARGE:,} messages",
            large["max_rss_mb"],
            "MB",
            "< 200",
            large["max_rss_mb"] < 200,
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


def usage() -> dict[str, float]:
    """This process's CPU seconds (``getrusage``) and peak resident memory. The peak is the
    kernel's ``VmHWM`` for this program: ``ru_maxrss`` keeps the peak of the process that
    forked it (on Linux it survives ``exec``), which is the benchmark runner's, hundreds of MB
    after the admin's tables were built."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    peak_kb = float(own.ru_maxrss)
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    peak_kb = float(line.split()[1])
    except OSError:
        pass
    return {"cpu": own.ru_utime + own.ru_stime, "max_rss_mb": peak_kb / 1024}


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
    print(json.dumps({"seconds": seconds, **usage()}))


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
    print(json.dumps({"seconds": seconds, **usage()}))


if __name__ == "__main__":
    if sys.argv[1] == "bare":
        bare_child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        child(int(sys.argv[2]))
