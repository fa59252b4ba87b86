"""What every benchmark needs: a PostgreSQL database of its own, the fake gateway in another
process, the machine's description, honest CPU and peak-memory readings of a process, and a way
to report a figure against its goal."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The shared server ``BENCH_POSTGRES`` names when it is not set and no private server can be
#: made (see ``benchmarks/__main__.py``).
SHARED_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def postgres_url() -> str:
    """The server the benchmarks use (``BENCH_POSTGRES``; the runner sets it to its private
    server's)."""
    return os.environ.get("BENCH_POSTGRES", SHARED_POSTGRES)


@dataclass
class Figure:
    """One measured figure and its goal."""

    benchmark: str
    name: str
    value: float
    unit: str
    goal: str
    met: bool | None  # None: no goal, for information

    def line(self) -> str:
        verdict = {True: "met", False: "MISSED", None: ""}[self.met]
        return f"  {self.name:<52} {self.value:>10.2f} {self.unit:<8} {self.goal:<12} {verdict}"


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import django
    import psycopg

    with psycopg.connect(postgres_url()) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": str(os.cpu_count()),
        "load": " ".join(f"{n:.2f}" for n in os.getloadavg()),
        "cpu": model,
        "python": platform.python_version(),
        "django": django.get_version(),
        "postgresql": str(row[0]) if row else "?",
    }


def postgres_answers() -> bool:
    try:
        import psycopg

        psycopg.connect(postgres_url(), connect_timeout=3).close()
    except Exception:
        return False
    return True


@contextlib.contextmanager
def database(name: str) -> Iterator[str]:
    """A new PostgreSQL database, dropped afterwards."""
    import psycopg

    with psycopg.connect(postgres_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(postgres_url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def gateway(latency: float) -> Iterator[str]:
    """The fake gateway (benchmarks/gateway.py) in its own process; yields its BASE_URL."""
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "benchmarks.gateway", "--latency", str(latency)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}/v1/api"
    finally:
        process.terminate()
        process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DJANGO_SETTINGS_MODULE="benchmarks.settings", PYTHONPATH=str(ROOT), **extra)
    return env


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and all its descendants so far: the living
    ones read one by one from the kernel's account (``/proc/PID/stat``: the ``ru_utime`` and
    ``ru_stime`` that ``getrusage`` reports to the process itself, every thread), the ended
    ones as the kernel adds them to the process that waited for them (``cutime`` and
    ``cstime``). So a server's short-lived children (PostgreSQL's backends, gunicorn's
    replaced workers) are counted too. 0.0 when it is gone."""
    children = child_pids(pid)
    below = sum(tree_cpu(child) for child in children)
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return below
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return below + (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    """The process's children, from ``/proc/PID/task/*/children``."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as children:
                found.extend(int(child) for child in children.read().split())
    return found


def peak_rss_kib(pid: int | str = "self") -> int | None:
    """The peak resident memory of a process in KiB: the kernel's ``VmHWM`` in
    ``/proc/PID/status``, the high-water mark of the process's own address space (since its
    ``exec``). ``None`` when the process is gone (or is a zombie: its memory is released).

    Never ``ru_maxrss``: on Linux a process's ``ru_maxrss`` starts from the peak of the process
    that forked it (``exec`` carries it over, and Python's ``subprocess`` forks with ``vfork``,
    so the child inherits its parent's whole peak), and ``os.wait4`` reports that same value.
    A benchmark runner that had built a large table once made every child report its peak."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def own_usage() -> dict[str, float]:
    """This process's CPU seconds (``getrusage``: user + system, every thread) and its own peak
    resident memory in MB (:func:`peak_rss_kib`), for a child to print at its end."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak = peak_rss_kib()
    return {
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": (peak or 0) / 1024,
    }


def run_child(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 3600
) -> dict[str, float]:
    """Run ``python ARGS`` in a process of its own and return the JSON object it printed on its
    last line of output (a child ends with ``print(json.dumps({..., **own_usage()}))``, so its
    CPU and peak memory are its own readings). Raises ``CalledProcessError`` (with its
    output) when it fails."""
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
    )
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise ValueError(f"the child printed nothing; its errors: {done.stderr[-2000:]}")
    report: dict[str, float] = json.loads(lines[-1])
    return report


@dataclass
class MachineCPU:
    """The machine's CPU time by kind, in seconds summed over every CPU (``/proc/stat``)."""

    busy: float  # user, nice, system, irq, softirq: every process's work, ours and others'
    idle: float  # idle and iowait
    steal: float  # taken by the hypervisor for other machines

    def __sub__(self, other: MachineCPU) -> MachineCPU:
        return MachineCPU(self.busy - other.busy, self.idle - other.idle, self.steal - other.steal)


def machine_cpu() -> MachineCPU:
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    ticks = os.sysconf("SC_CLK_TCK")
    return MachineCPU(
        (user + nice + system + irq + softirq) / ticks, (idle + iowait) / ticks, steal / ticks
    )


def own_cpu() -> float:
    """CPU seconds this process (every thread) has used: ``resource.getrusage``."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def postgres_server_pid() -> int | None:
    """The PostgreSQL server's own process (the postmaster, parent of every backend) when it
    runs on this machine and ``/proc`` shows it; ``None`` when the server is elsewhere (its CPU
    cannot be counted here)."""
    import psycopg

    with psycopg.connect(postgres_url()) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    if row is None:
        return None
    try:
        with open(f"/proc/{int(row[0])}/stat", encoding="ascii") as stat:
            parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        with open(f"/proc/{parent}/comm", encoding="ascii") as comm:
            name = comm.read().strip()
    except OSError:
        return None
    return parent if name in ("postgres", "postmaster") else None


class CPUMeter:
    """CPU used between ``start()`` and ``stop()`` by the web server (a process and all its
    descendants, :func:`tree_cpu`), by the PostgreSQL server (the postmaster and all its
    descendants, the ended backends included, when it runs on this machine: the runner's
    private server holds nothing but the benchmark's work) and by this process (the load
    generator)."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.database_pid: int | None = None
        self.before: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def start(self) -> None:
        self.database_pid = postgres_server_pid()
        database = tree_cpu(self.database_pid) if self.database_pid is not None else 0.0
        self.before = (tree_cpu(self.server_pid), database, own_cpu())

    def stop(self) -> tuple[float, float | None, float]:
        """(the server's CPU seconds, PostgreSQL's or ``None``, the load generator's) since
        ``start()``."""
        server = tree_cpu(self.server_pid) - self.before[0]
        database = None
        if self.database_pid is not None:
            database = tree_cpu(self.database_pid) - self.before[1]
        return server, database, own_cpu() - self.before[2]
