"""Faults: a campaign sent by real ``db_worker`` processes meets each fault of SPEC 13 in its
middle, lasting ``OUTAGE`` seconds, and the figures say what became of it.

The fake gateway is ``tests/fault_gateway.py`` (real TCP, 50 ms per request); 2 worker processes
share ``RATE_LIMIT = 50`` in a Redis of the benchmark's own (a ``redis-server`` on a free port,
which the Redis fault stops and starts again). ``RECIPIENTS`` recipients; the fault strikes when
the gateway has accepted ``FAULT_AT`` of them:

- **balance**: the gateway answers 402 / code 3 from then on; ``OUTAGE`` seconds later it is
  topped up and the campaign resumed (``resume_campaign``: the operator's one action);
- **gateway**: its port is closed (connections refused) for ``OUTAGE`` seconds;
- **redis**: the rate limit's Redis is stopped for ``OUTAGE`` seconds.

For each: recipients burned (``not_sent`` or ``unknown``; goal 0) and sent twice (goal 0);
requests wasted on the fault (every request the messages made, less one per message accepted:
refused answers and refused connections; goal: at most the requests in flight per worker,
``CONCURRENCY``, for each worker); and the seconds from the fault clearing to full speed again
(the end of the first second in which the gateway accepts at least 90% of the rate it had before
the fault; goal <= 5 s for the gateway and Redis).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db.models import Count

from .harness import ROOT, Figure

RECIPIENTS = 600
FAULT_AT = 200
OUTAGE = 10.0
LIMIT = 50.0
WORKERS = 2
CONCURRENCY = 8  # engine.CONCURRENCY: requests in flight per worker
CHUNK_SIZE = 50
LATENCY = 0.050


def _workers(env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "django", "db_worker", "--interval", "0.05"]
    command += ["--no-startup-delay", "--no-reload"]
    return [
        subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [*command, "--worker-id", f"bench-faults-{n}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(WORKERS)
    ]


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=60)


def _full_speed_after(times: list[float], cleared: float, before: float) -> float | None:
    """Seconds from ``cleared`` to the end of the first one-second window (sliding by 0.1 s)
    in which the gateway accepted at least 90% of ``before`` messages per second."""
    later = sorted(t for t in times if t >= cleared)
    if not later:
        return None
    start = cleared
    while start <= later[-1]:
        count = sum(1 for t in later if start <= t < start + 1.0)
        if count >= 0.9 * before:
            return start + 1.0 - cleared
        start += 0.1
    return None


def one(fault: str) -> list[Figure]:
    from django_whatsapp import services
    from django_whatsapp.models import AccountState, Campaign, Message, StatusEvent
    from tests.fault_gateway import FaultGateway

    StatusEvent.objects.all().delete()
    Message.objects.all().delete()
    Campaign.objects.all().delete()
    AccountState.objects.all().delete()
    gateway = FaultGateway(latency=LATENCY)
    from tests.redis_server import OwnRedis

    redis_dir = tempfile.mkdtemp(prefix="dw-bench-redis-")
    redis = OwnRedis(Path(redis_dir))
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        DJANGO_SETTINGS_MODULE="benchmarks.settings_campaign",
        PYTHONPATH=str(ROOT),
        BENCH_GATEWAY_URL=gateway.base_url,
        BENCH_RATE_LIMIT=str(LIMIT),
        BENCH_REDIS_URL=redis.url,
        BENCH_REDIS_PREFIX=f"dw-faults-bench-{uuid.uuid4().hex[:8]}",
    )
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "BASE_URL": gateway.base_url}
    numbers = (f"+{380500000000 + n}" for n in range(RECIPIENTS))
    campaign = services.create_campaign(
        "Faults", numbers, text="Spring sale: 20% off", chunk_size=CHUNK_SIZE
    )
    marks: dict[str, float] = {}
    done = threading.Event()

    def clear(action: Callable[[], None]) -> None:
        time.sleep(OUTAGE)
        marks["cleared"] = time.monotonic()
        action()
        done.set()

    def strike() -> None:
        marks["fault"] = time.monotonic()
        if fault == "balance":
            gateway.balance = 0

            def resume() -> None:
                gateway.top_up()
                services.resume_campaign(Campaign.objects.get(pk=campaign.pk))

            clear(resume)
        elif fault == "gateway":
            gateway.stop()
            clear(gateway.start)
        else:
            redis.stop()
            clear(redis.start)

    gateway.when_accepted(FAULT_AT, lambda: threading.Thread(target=strike).start())
    processes = _workers(env)
    try:
        time.sleep(3.0)  # the workers start up before the clock starts
        started = time.monotonic()
        services.start_campaign(campaign)
        while not done.is_set() or Campaign.objects.get(pk=campaign.pk).status not in (
            Campaign.Status.DONE,
            Campaign.Status.CANCELLED,
        ):
            time.sleep(0.1)
            if time.monotonic() - started > 600:
                raise RuntimeError(f"the {fault} campaign did not finish in 10 minutes")
    finally:
        _stop(processes)
        gateway.close()
        redis.stop()
        shutil.rmtree(redis_dir, ignore_errors=True)
    times = gateway.accepted_times()
    before_window = [t for t in times if marks["fault"] - 3.0 <= t < marks["fault"]]
    rate_before = len(before_window) / 3.0
    recovery = _full_speed_after(times, marks["cleared"], rate_before)
    statuses = dict(Message.objects.values_list("status").annotate(n=Count("pk")))
    burned = sum(n for s, n in statuses.items() if s in ("not_sent", "unknown"))
    accepted = statuses.get("accepted", 0)
    requests = sum(Message.objects.values_list("attempts", flat=True))
    wasted = requests - accepted
    twice = sum(1 for n in gateway.accepted().values() if n > 1)
    print(
        f"faults: {fault}: {accepted} accepted, {burned} burned, {twice} sent twice, "
        f"{wasted} requests wasted, {rate_before:.0f}/s before, back to full speed "
        f"{'never' if recovery is None else f'{recovery:.1f}s'} after the fault cleared"
    )
    limit = WORKERS * CONCURRENCY
    figures = [
        Figure("faults", f"{fault}: recipients burned", burned, "msgs", "0", burned == 0),
        Figure("faults", f"{fault}: sent twice", twice, "msgs", "0", twice == 0),
        Figure(
            "faults",
            f"{fault}: requests wasted on the fault",
            wasted,
            "reqs",
            f"<= {limit}",
            wasted <= limit,
        ),
    ]
    goal = fault != "balance"
    figures.append(
        Figure(
            "faults",
            f"{fault}: seconds from clearing to full speed",
            -1.0 if recovery is None else recovery,
            "s",
            "<= 5" if goal else "",
            (recovery is not None and recovery <= 5.0) if goal else None,
        )
    )
    return figures


def run() -> list[Figure]:
    return [figure for fault in ("balance", "gateway", "redis") for figure in one(fault)]
