"""A Redis server of the test run's own: ``redis-server`` on a Unix socket in a temporary
directory, started once per pytest process (each xdist worker has its own) and stopped at the
end. Nothing the suite does in Redis (the shared rate limit, RQ's queues and workers) can touch
another run's keys, or a benchmark's, or be touched by them; the suite never uses the machine's
shared Redis at 127.0.0.1:6379.
"""

from __future__ import annotations

import os
import shutil
import socket as stdlib_socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .waiting import wait_until


def redis_server_binary() -> str | None:
    """``redis-server`` on PATH or where Debian installs it."""
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )


def answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except (redis.RedisError, OSError):
        return False


@contextmanager
def own_redis(directory: Path, binary: str) -> Iterator[str]:
    """Start ``redis-server`` listening only on a socket in ``directory`` (no TCP port, nothing
    kept on disk); yield its URL; stop it."""
    socket = directory / "redis.sock"
    log = directory / "redis.log"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - the machine's redis-server
            [
                binary,
                "--port", "0",
                "--unixsocket", str(socket),
                "--unixsocketperm", "700",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(directory),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"unix://{socket}"
    try:
        wait_until(
            lambda: process.poll() is not None or answers(url),
            what="the test run's own redis-server to answer",
        )
        if process.poll() is not None:
            raise AssertionError(f"redis-server did not start: {log.read_text(errors='replace')}")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class OwnRedis:
    """A ``redis-server`` of its own on a free TCP port of 127.0.0.1, that a fault test (or the
    fault benchmark) stops with SIGKILL, as a crash would, and starts again on the same port."""

    def __init__(self, directory: Path) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise AssertionError("redis-server is needed for the rate-limit cache's fault tests")
        self.binary = binary
        self.dir = directory
        with stdlib_socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - redis-server with our own arguments
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self._answers, what=f"redis-server on port {self.port}")

    def _answers(self) -> bool:
        try:
            with stdlib_socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Kill it (SIGKILL: nothing is saved, as in a crash)."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait(timeout=60)
