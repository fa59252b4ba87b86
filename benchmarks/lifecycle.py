"""A message's whole life at volume: a campaign sent by ``db_worker`` processes to a gateway that
calls back ``sent``, ``delivered`` and ``seen`` for every message over real HTTP to the app under
gunicorn, and answers for one message in 20 with the customer's reply to the inbound endpoint;
PostgreSQL; everything on this machine.

- **The app.** ``RECIPIENTS`` recipients (``BENCH_LIFECYCLE_RECIPIENTS``, or ``python -m
  benchmarks lifecycle --recipients N``) in one campaign (``create_campaign``, chunks of its
  default size), sent by ``WORKERS`` ``db_worker`` processes (django-tasks-db); gunicorn
  (``WEB_WORKERS`` sync workers) serves the callbacks and replies; a PostgreSQL server of the
  benchmark's own (:mod:`benchmarks.postgres`) holds it all.
- **The gateway** (:mod:`benchmarks.lifecycle_gateway`, its own process): each send answered
  after ``LATENCY``; ``sent``, ``delivered`` and ``seen`` called back 0.5, 1 and 2 s later to
  the send's ``callback_url``; a reply posted 3 s later for every 20th send.
- **The bare baseline**, in the same run: the same gateway and the same network work with no
  database and no app: ``WORKERS`` processes of 8 threads over a pooled ``requests`` session
  post the same sends, and gunicorn answers the callbacks and replies with a Django view that
  reads the body and answers (the same middleware).

Measured over the run (from the first send to the last callback answered): messages per second
with every callback applied, the backlog of callbacks at the end (the last one answered after
it fell due), CPU per message of each process (the kernel's account of each process and its
children, ``/proc/PID/stat``: the workers, gunicorn's master and workers, the whole
PostgreSQL server; the gateway apart), and PostgreSQL's statements per message
(``pg_stat_statements``, by role: the web and the workers connect as roles of their own).
Every message must end ``seen`` with its four events and every reply be stored, or the run
fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .harness import (
    ROOT,
    Figure,
    MachineCPU,
    child_env,
    child_pids,
    free_port,
    peak_rss_kib,
)
from .lifecycle_processes import (
    REPLY_EVERY,
    WEB_WORKERS,
    Meter,
    Progress,
    fleet,
    profile,
    start_gateway,
    start_web,
    wait_for_the_end,
    warm_up,
)

RECIPIENTS = int(os.environ.get("BENCH_LIFECYCLE_RECIPIENTS", "20000"))
WORKERS = 2
SENDER_THREADS = 8  # the campaign engine's requests in flight per worker
DATABASE = "bench_lifecycle"
ROLES = {"web": "bench_web", "workers": "bench_worker", "observer": "bench_observer"}
TEXT = "Spring sale: 20% off, reply YES for the blue one"
#: The module the child processes run (the campaign's preparation, its start, a bare sender).
CHILDREN = "benchmarks.lifecycle_children"

# -- the app's round -------------------------------------------------------------------------


@dataclass
class Round:
    """What one round measured."""

    count: int
    progress: Progress
    cpu: dict[str, float]  # CPU seconds by group over the round
    machine: MachineCPU
    statements: dict[str, dict[str, int]] = field(default_factory=dict)
    top: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    peaks_mb: dict[str, float] = field(default_factory=dict)

    def ms(self, *groups: str) -> float:
        return 1000 * sum(self.cpu[g] for g in groups) / self.count


def observer(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True)


def prepare_database(server: Any) -> dict[str, str]:
    """The database, its roles and ``pg_stat_statements``; the app's environment."""
    with observer(server.url) as conn:
        for role in ROLES.values():
            conn.execute(f'CREATE ROLE "{role}" LOGIN SUPERUSER')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    with observer(server.url_for(DATABASE)) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
    return child_env(
        BENCH_DB_NAME=DATABASE,
        BENCH_DB_HOST="127.0.0.1",
        BENCH_DB_PORT=str(server.port),
        BENCH_DB_USER="postgres",
    )


def wait_for_workers(url: str, count: int) -> None:
    """Until every worker has connected (each polls the task table as it starts)."""
    pause = threading.Event()
    started = time.monotonic()
    while True:
        with observer(url) as conn:
            row = conn.execute(
                "SELECT count(DISTINCT pid) FROM pg_stat_activity WHERE usename = %s",
                [ROLES["workers"]],
            ).fetchone()
        if row and row[0] >= count:
            return
        if time.monotonic() - started > 60:
            raise RuntimeError("the workers did not connect in 60 s")
        pause.wait(0.2)


def app_round(count: int) -> Round:
    from .postgres import private_server, statements, top_statements

    with private_server() as server, fleet() as processes:
        env = prepare_database(server)
        subprocess.run(
            [sys.executable, "-m", "django", "migrate", "--verbosity", "0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        port = free_port()
        env["BENCH_CALLBACK_BASE_URL"] = f"http://127.0.0.1:{port}"
        prepared = json.loads(
            subprocess.run(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", CHILDREN, "prepare", str(count)],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.splitlines()[-1]
        )
        gateway, gateway_url = start_gateway(processes, prepared["inbound_url"])
        env["BENCH_GATEWAY_URL"] = f"{gateway_url}/v1/api"
        web = start_web(processes, {**env, "BENCH_DB_USER": ROLES["web"]}, port)
        workers = [
            processes.start(
                [
                    "-m",
                    "django",
                    "db_worker",
                    "--no-startup-delay",
                    "--no-reload",
                    "--verbosity",
                    "0",  # no line per task; a failed task's traceback is in its row
                    "--worker-id",
                    f"lifecycle-{n}",
                ],
                {**env, "BENCH_DB_USER": ROLES["workers"]},
                stdout=subprocess.DEVNULL,
            )
            for n in range(WORKERS)
        ]
        database_url = server.url_for(DATABASE, ROLES["observer"])
        warm_up(port, urlsplit(prepared["inbound_url"]).path)
        wait_for_workers(database_url, WORKERS)
        meter = Meter(
            {
                "workers": [w.pid for w in workers],
                "web": [web.pid],
                "database": [server.pid],
                "gateway": [gateway.pid],
            }
        )
        with observer(database_url) as conn:
            conn.execute("SELECT pg_stat_statements_reset()")
        meter.start()
        profilers = profile(web.pid, [w.pid for w in workers])
        subprocess.run(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                "-m",
                "benchmarks.lifecycle_children",
                "start",
                str(prepared["campaign"]),
            ],
            cwd=ROOT,
            env=env,
            check=True,
        )
        progress = wait_for_the_end(gateway_url, count, "app")
        cpu, machine = meter.stop()
        for profiler in profilers:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its samples and exits
        for profiler in profilers:
            profiler.wait(timeout=120)
        counted = statements(database_url, DATABASE)
        top = {role: top_statements(database_url, DATABASE, role, limit=25) for role in counted}
        peaks = {
            "a worker": max(peak_rss_kib(w.pid) or 0 for w in workers) / 1024,
            "a gunicorn worker": max(peak_rss_kib(p) or 0 for p in child_pids(web.pid)) / 1024,
        }
        check_database(database_url, count, prepared["campaign"])
    return Round(count, progress, cpu, machine, counted, top, peaks)


def check_database(url: str, count: int, campaign: int) -> None:
    """Every message ended ``seen`` with its four events, every reply is stored, the campaign
    is done: else the run measured something else and fails."""
    with observer(url) as conn:
        statuses = dict(
            conn.execute(
                "SELECT status, count(*) FROM django_whatsapp_message "
                "WHERE direction = 'outbound' GROUP BY status"
            ).fetchall()
        )
        events = conn.execute("SELECT count(*) FROM django_whatsapp_statusevent").fetchone()
        replies = conn.execute(
            "SELECT count(*) FROM django_whatsapp_message WHERE direction = 'inbound'"
        ).fetchone()
        state = conn.execute(
            "SELECT status FROM django_whatsapp_campaign WHERE id = %s", [campaign]
        ).fetchone()
        failed = conn.execute(
            "SELECT task_path, traceback FROM django_tasks_database_dbtaskresult "
            "WHERE status = 'FAILED' LIMIT 3"
        ).fetchall()
    problems = []
    if statuses != {"seen": count}:
        problems.append(f"outbound messages by status {statuses}, expected {count} seen")
    if not events or events[0] != 4 * count:
        problems.append(f"{events} status events, expected {4 * count}")
    if not replies or replies[0] != count // REPLY_EVERY:
        problems.append(f"{replies} replies stored, expected {count // REPLY_EVERY}")
    if not state or state[0] != "done":
        problems.append(f"the campaign is {state}")
    for path, traceback in failed:
        problems.append(f"the task {path} failed: {traceback}")
    if problems:
        raise RuntimeError("lifecycle: " + "; ".join(problems))


# -- the bare round --------------------------------------------------------------------------


def bare_round(count: int) -> Round:
    """The same network work with no database: bare senders, a gunicorn that only answers."""
    with fleet() as processes:
        port = free_port()
        env = child_env()
        gateway, gateway_url = start_gateway(processes, f"http://127.0.0.1:{port}/bare/inbound/")
        web = start_web(processes, env, port)
        warm_up(port, "/bare/callback/warm/")
        senders = []
        share = -(-count // WORKERS)
        for n in range(WORKERS):
            senders.append(
                processes.start(
                    [
                        "-m",
                        CHILDREN,
                        "bare-sender",
                        str(min(share, count - n * share)),
                        str(n * share),
                        f"{gateway_url}/v1/api",
                        f"http://127.0.0.1:{port}",
                    ],
                    env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for sender in senders:
            assert sender.stdout is not None
            assert sender.stdout.readline().strip() == "ready"
        meter = Meter(
            {"workers": [s.pid for s in senders], "web": [web.pid], "gateway": [gateway.pid]}
        )
        meter.start()
        for sender in senders:
            assert sender.stdin is not None
            sender.stdin.write("go\n")
            sender.stdin.flush()
        progress = wait_for_the_end(gateway_url, count, "bare")
        for sender in senders:
            assert sender.stdout is not None
            assert sender.stdout.readline().strip() == "done"
        cpu, machine = meter.stop()
        for sender in senders:
            assert sender.stdin is not None
            sender.stdin.close()
    return Round(count, progress, cpu, machine)


# -- the figures -------------------------------------------------------------------------------

#: The goals (issue 22): on 2 cores, twice WhatsApp's default 80 messages per second.
GOAL_RATE = 160.0
GOAL_BACKLOG = 2.0
GOAL_CPU_MS = 6.0
GOAL_STATEMENTS = 4.0
APP = ("workers", "web", "database")


def describe(app: Round, bare: Round) -> None:
    stats = app.progress.stats
    print(
        f"lifecycle: {app.count} messages, {WORKERS} workers, gunicorn x {WEB_WORKERS}: "
        f"{app.progress.sustained:.1f} msg/s with every callback applied "
        f"({app.progress.seconds:.1f} s), bare {bare.progress.sustained:.1f} msg/s; callback "
        f"lag median {stats['lag_median']:.3f} s, p99 {stats['lag_p99']:.3f} s, max "
        f"{stats['lag_max']:.3f} s; refused {stats['refused'] or 'none'}"
    )
    for name, rnd in (("app", app), ("bare", bare)):
        per = {g: f"{1000 * s / rnd.count:.2f}" for g, s in rnd.cpu.items()}
        seconds = rnd.progress.seconds
        others = rnd.machine.busy - sum(rnd.cpu.values())
        print(
            f"lifecycle ({name}): CPU ms per message {per}; the machine over the round: "
            f"{rnd.machine.busy / seconds:.2f} cores busy, of which other work "
            f"{others / seconds:.2f}, steal {rnd.machine.steal / seconds:.2f}"
        )
    for role, counts in sorted(app.statements.items()):
        print(f"lifecycle: statements by {role}: {counts}")
    for role, top in app.top.items():
        print(f"lifecycle: the statements {role} ran most often:")
        for calls, sql in top:
            print(f"  {calls / app.count:7.3f}/msg  {' '.join(sql.split())[:110]}")
    print(f"lifecycle: peak memory (VmHWM) {app.peaks_mb}")


def figures(app: Round, bare: Round) -> list[Figure]:
    stats = app.progress.stats
    rate = app.progress.sustained
    backlog = max(0.0, stats["last_done"] - stats["last_due"])
    cpu_ms = app.ms(*APP)
    bare_ms = bare.ms("workers", "web")
    app_roles = (ROLES["web"], ROLES["workers"])
    counted = [app.statements.get(role, {"queries": 0, "control": 0}) for role in app_roles]
    total = sum(c["queries"] + c["control"] for c in counted) / app.count
    queries = sum(c["queries"] for c in counted) / app.count
    web, workers = ((c["queries"] + c["control"]) / app.count for c in counted)
    sending = stats["sends"] / max(1e-9, stats["last_send"] - stats["first_send"])
    refused = sum(stats["refused"].values())
    label = f"{app.count:,} messages"

    def info(name: str, value: float, unit: str = "") -> Figure:
        return Figure("lifecycle", name, value, unit, "", None)

    def goal(name: str, value: float, unit: str, text: str, met: bool) -> Figure:
        return Figure("lifecycle", name, value, unit, text, met)

    return [
        goal(f"{label}: msg/s, every callback applied", rate, "msg/s", ">= 160", rate >= GOAL_RATE),
        info("msg/s sent (first send to last)", sending, "msg/s"),
        info("bare baseline (no database): msg/s", bare.progress.sustained, "msg/s"),
        info("msg/s against the bare baseline", rate / bare.progress.sustained),
        goal("callback backlog at the end", backlog, "s", "<= 2", backlog <= GOAL_BACKLOG),
        goal("callbacks refused (answered other than 200)", refused, "", "0", refused == 0),
        info("CPU per message: workers", app.ms("workers"), "ms"),
        info("CPU per message: gunicorn", app.ms("web"), "ms"),
        info("CPU per message: PostgreSQL", app.ms("database"), "ms"),
        goal("CPU per message: app and database", cpu_ms, "ms", "<= 6", cpu_ms <= GOAL_CPU_MS),
        info("CPU per message: the fake gateway (apart)", app.ms("gateway"), "ms"),
        info("bare baseline CPU per message: senders + gunicorn", bare_ms, "ms"),
        info("CPU per message against the bare baseline's", cpu_ms / bare_ms, "x"),
        goal("PostgreSQL statements per message", total, "stmts", "<= 4", total <= GOAL_STATEMENTS),
        info("  of which queries (no BEGIN/COMMIT/SAVEPOINT)", queries, "stmts"),
        info("  of which gunicorn's (callbacks, replies)", web, "stmts"),
        info("  of which the workers'", workers, "stmts"),
        info("cores for 80 msg/s at this cost", 80 * cpu_ms / 1000, "cores"),
        info("cores for 1,000 msg/s at this cost", 1000 * cpu_ms / 1000, "cores"),
    ]


def run() -> list[Figure]:
    count = int(os.environ.get("BENCH_LIFECYCLE_RECIPIENTS", str(RECIPIENTS)))
    bare = bare_round(count)
    app = app_round(count)
    describe(app, bare)
    return figures(app, bare)
