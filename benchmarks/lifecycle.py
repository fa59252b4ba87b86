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

import http.client
import json
import os
import shutil
import signal
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

from .harness import (
    ROOT,
    Figure,
    MachineCPU,
    child_env,
    child_pids,
    free_port,
    machine_cpu,
    peak_rss_kib,
    tree_cpu,
    wait_for_port,
)

RECIPIENTS = int(os.environ.get("BENCH_LIFECYCLE_RECIPIENTS", "20000"))
WORKERS = 2
WEB_WORKERS = 5  # gunicorn's advice: 2 x cores + 1
LATENCY = 0.050
REPLY_EVERY = 20  # 5% of the messages are answered
SENDER_THREADS = 8  # the campaign engine's requests in flight per worker
DATABASE = "bench_lifecycle"
ROLES = {"web": "bench_web", "workers": "bench_worker", "observer": "bench_observer"}
TEXT = "Spring sale: 20% off, reply YES for the blue one"
#: Seconds without any progress after which a run is given up.
STALLED = 120.0


def expected_callbacks(count: int) -> int:
    return 3 * count + count // REPLY_EVERY


# -- processes -------------------------------------------------------------------------------


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
                [sys.executable, "-m", "benchmarks.lifecycle", "prepare", str(count)],
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
            [sys.executable, "-m", "benchmarks.lifecycle", "start", str(prepared["campaign"])],
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
                        "benchmarks.lifecycle",
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
    return [
        Figure(
            "lifecycle",
            f"{label}: msg/s, every callback applied",
            rate,
            "msg/s",
            f">= {GOAL_RATE:.0f}",
            rate >= GOAL_RATE,
        ),
        Figure("lifecycle", "msg/s sent (first send to last)", sending, "msg/s", "", None),
        Figure(
            "lifecycle",
            "bare baseline (no database): msg/s",
            bare.progress.sustained,
            "msg/s",
            "",
            None,
        ),
        Figure(
            "lifecycle",
            "msg/s against the bare baseline",
            rate / bare.progress.sustained,
            "",
            "",
            None,
        ),
        Figure(
            "lifecycle",
            "callback backlog at the end",
            backlog,
            "s",
            f"<= {GOAL_BACKLOG:.0f}",
            backlog <= GOAL_BACKLOG,
        ),
        Figure(
            "lifecycle",
            "callbacks refused (answered other than 200)",
            refused,
            "",
            "0",
            refused == 0,
        ),
        Figure("lifecycle", "CPU per message: workers", app.ms("workers"), "ms", "", None),
        Figure("lifecycle", "CPU per message: gunicorn", app.ms("web"), "ms", "", None),
        Figure("lifecycle", "CPU per message: PostgreSQL", app.ms("database"), "ms", "", None),
        Figure(
            "lifecycle",
            "CPU per message: app and database",
            cpu_ms,
            "ms",
            f"<= {GOAL_CPU_MS:.0f}",
            cpu_ms <= GOAL_CPU_MS,
        ),
        Figure(
            "lifecycle",
            "CPU per message: the fake gateway (apart)",
            app.ms("gateway"),
            "ms",
            "",
            None,
        ),
        Figure(
            "lifecycle",
            "bare baseline CPU per message: senders + gunicorn",
            bare_ms,
            "ms",
            "",
            None,
        ),
        Figure(
            "lifecycle",
            "CPU per message against the bare baseline's",
            cpu_ms / bare_ms,
            "x",
            "",
            None,
        ),
        Figure(
            "lifecycle",
            "PostgreSQL statements per message",
            total,
            "stmts",
            f"<= {GOAL_STATEMENTS:.0f}",
            total <= GOAL_STATEMENTS,
        ),
        Figure(
            "lifecycle",
            "  of which queries (no BEGIN/COMMIT/SAVEPOINT)",
            queries,
            "stmts",
            "",
            None,
        ),
        Figure("lifecycle", "  of which gunicorn's (callbacks, replies)", web, "stmts", "", None),
        Figure("lifecycle", "  of which the workers'", workers, "stmts", "", None),
        Figure(
            "lifecycle", "cores for 80 msg/s at this cost", 80 * cpu_ms / 1000, "cores", "", None
        ),
        Figure(
            "lifecycle",
            "cores for 1,000 msg/s at this cost",
            1000 * cpu_ms / 1000,
            "cores",
            "",
            None,
        ),
    ]


def run() -> list[Figure]:
    count = int(os.environ.get("BENCH_LIFECYCLE_RECIPIENTS", str(RECIPIENTS)))
    bare = bare_round(count)
    app = app_round(count)
    describe(app, bare)
    return figures(app, bare)


# -- the children ------------------------------------------------------------------------------


def prepare(count: int) -> None:
    """The campaign (``draft``), and what the runner needs: its id and the inbound URL."""
    import django

    django.setup()
    from django_whatsapp import services
    from django_whatsapp.inbound import inbound_url

    numbers = (f"+{380500000000 + n}" for n in range(count))
    campaign = services.create_campaign("Lifecycle", numbers, text=TEXT)
    assert campaign.recipients_count == count, campaign.recipients_count
    print(json.dumps({"campaign": campaign.pk, "inbound_url": inbound_url()}))


def start(campaign_id: int) -> None:
    import django

    django.setup()
    from django_whatsapp import services
    from django_whatsapp.models import Campaign

    services.start_campaign(Campaign.objects.get(pk=campaign_id))


def bare_sender(count: int, offset: int, base_url: str, callback_base: str) -> None:
    """Post ``count`` sends from ``SENDER_THREADS`` threads over one pooled session, each with
    a callback URL of the bare receiver: the least a sender does (no database, no Django).
    Prints ``ready``, sends on ``go``, prints ``done``, exits when its input closes."""
    import base64
    from concurrent.futures import ThreadPoolExecutor

    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=SENDER_THREADS))
    session.trust_env = False
    headers = {
        "Authorization": "Basic " + base64.b64encode(b"test-api-key-9f8e7d").decode(),
        "Content-Type": "application/json",
    }

    def send(n: int) -> None:
        body = {
            "source_addr": "TestCo",
            "destination_addr": 380500000000 + n,
            "message_type": 1,
            "text": TEXT,
            "callback_url": f"{callback_base}/bare/callback/{n}/",
        }
        answer = session.post(
            f"{base_url}/send-whatsapp", data=json.dumps(body), headers=headers, timeout=30
        )
        answer.raise_for_status()
        answer.json()

    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    with ThreadPoolExecutor(max_workers=SENDER_THREADS) as pool:
        list(pool.map(send, range(offset, offset + count)))
    print("done", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "prepare":
        prepare(int(args[0]))
    elif command == "start":
        start(int(args[0]))
    elif command == "bare-sender":
        bare_sender(int(args[0]), int(args[1]), args[2], args[3])
    else:
        raise SystemExit(f"unknown command {command!r}")
