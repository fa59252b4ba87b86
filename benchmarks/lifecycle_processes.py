"""The processes of the lifecycle benchmark's rounds (:mod:`benchmarks.lifecycle`): starting
and stopping them, the gateway's counters, waiting for a round's end, the CPU of each group of
processes, and py-spy on them."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .harness import ROOT, MachineCPU, child_env, machine_cpu, tree_cpu, wait_for_port

WEB_WORKERS = 5  # gunicorn's advice: 2 x cores + 1
LATENCY = 0.050
REPLY_EVERY = 20  # 5% of the messages are answered
#: Seconds without any progress after which a run is given up.
STALLED = 120.0


def expected_callbacks(count: int) -> int:
    return 3 * count + count // REPLY_EVERY


class Fleet:
    """The processes a round starts; all stopped at its end."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[Any]] = []

    def start(self, args: list[str], env: dict[str, str], **kwargs: Any) -> subprocess.Popen[Any]:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
            [sys.executable, *args], cwd=ROOT, env=env, **kwargs
        )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


@contextmanager
def fleet() -> Iterator[Fleet]:
    processes = Fleet()
    try:
        yield processes
    finally:
        processes.stop()


def start_gateway(processes: Fleet, inbound_url: str) -> tuple[subprocess.Popen[str], str]:
    gateway = processes.start(
        [
            "-m",
            "benchmarks.lifecycle_gateway",
            "--latency",
            str(LATENCY),
            "--reply-every",
            str(REPLY_EVERY),
            "--inbound-url",
            inbound_url,
        ],
        child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert gateway.stdout is not None
    port = int(gateway.stdout.readline())
    return gateway, f"http://127.0.0.1:{port}"


def gateway_stats(base: str) -> dict[str, Any]:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        conn.request("GET", "/stats")
        stats: dict[str, Any] = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    return stats


def start_web(processes: Fleet, env: dict[str, str], port: int) -> subprocess.Popen[Any]:
    web = processes.start(
        [
            "-m",
            "gunicorn",
            "benchmarks.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(WEB_WORKERS),
            "--backlog",
            "512",
            "--log-level",
            "warning",
        ],
        env,
    )
    wait_for_port(port)
    return web


def get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        answer.read()
        return answer.status
    finally:
        conn.close()


def warm_up(port: int, path: str) -> None:
    """Each gunicorn worker loads the URLconf and the views (``path`` answers a GET with 200
    and changes nothing: the inbound URL's check, or the bare receiver)."""
    threads = [
        threading.Thread(target=get, args=(port, path), daemon=True) for _ in range(WEB_WORKERS * 4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)


@dataclass
class Progress:
    """The gateway's counters when every callback of the round was answered."""

    stats: dict[str, Any]
    seconds: float  # first send to the last callback answered

    @property
    def sustained(self) -> float:
        return float(self.stats["sends"]) / self.seconds


def wait_for_the_end(base: str, count: int, label: str) -> Progress:
    """Poll the gateway until every send of the round was answered and every callback it made
    was answered 200; print progress now and then."""
    expected = expected_callbacks(count)
    last_change, last_seen, last_print = time.monotonic(), (-1, -1), 0.0
    pause = threading.Event()
    while True:
        stats = gateway_stats(base)
        now = time.monotonic()
        seen = (stats["sends"], stats["done"])
        if seen != last_seen:
            last_change, last_seen = now, seen
        if stats["sends"] >= count and stats["done"] >= expected:
            seconds = stats["last_done"] - stats["first_send"]
            return Progress(stats, seconds)
        if now - last_change > STALLED:
            raise RuntimeError(f"{label}: no progress for {STALLED:.0f} s: {stats}")
        if now - last_print >= 15:
            last_print = now
            print(
                f"lifecycle ({label}): {stats['sends']}/{count} sent, "
                f"{stats['done']}/{expected} callbacks answered, refused {stats['refused']}",
                flush=True,
            )
        pause.wait(0.5)


@dataclass
class Meter:
    """CPU seconds of groups of processes (each with its descendants) over a window, and the
    machine's."""

    groups: dict[str, list[int]]
    before: dict[str, float] = field(default_factory=dict)
    machine_before: MachineCPU | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def read(self) -> dict[str, float]:
        return {name: sum(tree_cpu(pid) for pid in pids) for name, pids in self.groups.items()}

    def start(self) -> None:
        self.before = self.read()
        self.machine_before = machine_cpu()

    def stop(self) -> tuple[dict[str, float], MachineCPU]:
        after = self.read()
        assert self.machine_before is not None
        spent = {name: after[name] - self.before[name] for name in after}
        return spent, machine_cpu() - self.machine_before


def profile(web: int, workers: list[int]) -> list[subprocess.Popen[bytes]]:
    """With ``BENCH_PROFILE_DIR``: py-spy records gunicorn's workers (``web.txt``) and each
    worker (``worker-N.txt``) until it is interrupted, sampling the thread that holds the GIL
    (a thread waiting for the network or the database holds none). py-spy's own CPU competes
    with the app's: a profiled run's figures are not the benchmark's."""
    directory = os.environ.get("BENCH_PROFILE_DIR")
    if not directory:
        return []
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).is_file():
        raise RuntimeError("profiling needs py-spy: pip install py-spy")
    Path(directory).mkdir(parents=True, exist_ok=True)
    targets = [(web, "web.txt", ["--subprocesses"])]
    targets += [(pid, f"worker-{n}.txt", []) for n, pid in enumerate(workers)]
    return [
        subprocess.Popen(  # noqa: S603 - py-spy, on our own processes
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--format",
                "raw",
                "--nonblocking",
                "--gil",  # only the thread running Python: a wait for I/O is no CPU
                "--output",
                str(Path(directory) / name),
                *extra,
            ],
            stdout=subprocess.DEVNULL,
        )
        for pid, name, extra in targets
    ]
