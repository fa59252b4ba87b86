"""A PostgreSQL server of the benchmark's own: a new cluster in a temporary directory, on a free
port of 127.0.0.1, with ``pg_stat_statements`` loaded, removed afterwards.

The lifecycle benchmark counts everything PostgreSQL does for the app: the CPU of the whole
server (the postmaster, every backend and background process, the ones that ended included) and
every statement it ran (``pg_stat_statements``). On a server shared with other work neither can
be told apart, and ``pg_stat_statements`` can only be loaded by restarting the server. The
cluster is made by the machine's own PostgreSQL (``initdb`` from ``pg_config --bindir``, or
``BENCH_PG_BIN``) with its default configuration (durability included: ``fsync`` and
``synchronous_commit`` on), as the shared server's.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .harness import free_port, tree_cpu

#: Transaction control: statements the app never writes, that its driver and Django's
#: transactions send (counted apart from the queries).
CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "START TRANSACTION")


def bindir() -> Path | None:
    """The directory of ``initdb`` and ``postgres``: ``BENCH_PG_BIN``, ``pg_config --bindir``,
    or the newest ``/usr/lib/postgresql/*/bin`` (Debian keeps them off the ``PATH``)."""
    candidates: list[str] = []
    if os.environ.get("BENCH_PG_BIN"):
        candidates.append(os.environ["BENCH_PG_BIN"])
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        found = subprocess.run(
            ["pg_config", "--bindir"],  # noqa: S607 - the machine's own pg_config
            capture_output=True,
            text=True,
            check=True,
        )
        candidates.append(found.stdout.strip())
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(versions, key=lambda p: int(Path(p).parent.name), reverse=True)
    for candidate in candidates:
        if (Path(candidate) / "initdb").is_file() and (Path(candidate) / "postgres").is_file():
            return Path(candidate)
    return None


def _as_postgres() -> tuple[Callable[[], None] | None, int | None]:
    """``initdb`` and ``postgres`` refuse to run as root: as root they run as the ``postgres``
    user (a ``preexec_fn`` and the uid that must own the directory)."""
    if os.geteuid() != 0:
        return None, None
    user = pwd.getpwnam(os.environ.get("BENCH_PG_USER", "postgres"))

    def demote() -> None:
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    return demote, user.pw_uid


@dataclass
class Server:
    """A running private server."""

    port: int
    pid: int
    directory: Path

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str, user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def cpu(self) -> float:
        """CPU seconds the whole server has used: the postmaster, its ended children (as the
        kernel counts them for the process that waited for them) and the living ones."""
        return tree_cpu(self.pid)


@contextlib.contextmanager
def private_server(settings: dict[str, str] | None = None) -> Iterator[Server]:
    """A new cluster, started; stopped and removed afterwards. ``settings``: more ``-c``
    options for the server."""
    binaries = bindir()
    if binaries is None:
        raise RuntimeError(
            "the lifecycle benchmark needs PostgreSQL's initdb and postgres on this machine "
            "(pg_config --bindir, /usr/lib/postgresql/*/bin, or BENCH_PG_BIN)"
        )
    demote, uid = _as_postgres()
    directory = Path(tempfile.mkdtemp(prefix="bench_pg_"))
    data, sockets = directory / "data", directory / "sockets"
    sockets.mkdir()
    if uid is not None:
        for path in (directory, sockets):
            os.chown(path, uid, -1)
    process: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(  # noqa: S603 - the machine's own initdb
            [
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            preexec_fn=demote,  # as root: run as the postgres user
            check=True,
            capture_output=True,
        )
        port = free_port()
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(port),
            "unix_socket_directories": str(sockets),
            "shared_preload_libraries": "pg_stat_statements",
            "pg_stat_statements.track": "top",
            "pg_stat_statements.track_utility": "on",
            "pg_stat_statements.max": "5000",
            **(settings or {}),
        }
        args = [str(binaries / "postgres"), "-D", str(data)]
        for name, value in options.items():
            args += ["-c", f"{name}={value}"]
        log = open(directory / "server.log", "wb")  # noqa: SIM115 - closed below
        process = subprocess.Popen(  # noqa: S603 - the machine's own postgres
            args, stdout=log, stderr=subprocess.STDOUT, preexec_fn=demote
        )
        log.close()
        server = Server(port, process.pid, directory)
        _wait_ready(server, process)
        yield server
    finally:
        if process is not None:
            process.send_signal(2)  # SIGINT: PostgreSQL's fast shutdown
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        shutil.rmtree(directory, ignore_errors=True)


def _wait_ready(server: Server, process: subprocess.Popen[bytes]) -> None:
    import psycopg

    started = time.monotonic()
    while True:
        if process.poll() is not None:
            log = (server.directory / "server.log").read_text(errors="replace")
            raise RuntimeError(f"the private PostgreSQL did not start:\n{log[-3000:]}")
        try:
            psycopg.connect(server.url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() - started > 60:
                raise
            time.sleep(0.1)


def statements(url: str, database: str) -> dict[str, dict[str, int]]:
    """What ``pg_stat_statements`` counted in ``database`` (``url`` connects to it; the
    extension is created there) since its last reset: by role, the statements (``calls``) split
    into ``queries`` and transaction ``control``."""
    import psycopg

    sql = """
        SELECT r.rolname, s.query, s.calls
        FROM pg_stat_statements s
        JOIN pg_roles r ON r.oid = s.userid
        JOIN pg_database d ON d.oid = s.dbid
        WHERE d.datname = %s
    """
    counts: dict[str, dict[str, int]] = {}
    with psycopg.connect(url) as conn:
        for role, query, calls in conn.execute(sql, [database]):
            kind = "control" if query.lstrip().upper().startswith(CONTROL) else "queries"
            counts.setdefault(role, {"queries": 0, "control": 0})[kind] += int(calls)
    return counts


def top_statements(url: str, database: str, role: str, limit: int = 12) -> list[tuple[int, str]]:
    """The statements ``role`` ran most often in ``database`` (``url`` connects to it):
    calls and text, for the report."""
    import psycopg

    sql = """
        SELECT s.calls, s.query FROM pg_stat_statements s
        JOIN pg_roles r ON r.oid = s.userid JOIN pg_database d ON d.oid = s.dbid
        WHERE d.datname = %s AND r.rolname = %s ORDER BY s.calls DESC LIMIT %s
    """
    with psycopg.connect(url) as conn:
        return [(int(c), str(q)) for c, q in conn.execute(sql, [database, role, limit])]
