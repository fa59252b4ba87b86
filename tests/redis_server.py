"""A Redis server of the test run's own: ``redis-server`` on a Unix socket in a temporary
directory, started once per pytest process (each xdist worker has its own) and stopped at the
end. Nothing the suite does in Redis (the shared rate limit, RQ's queues and workers) can touch
another run's keys, or a benchmark's, or be touched by them; the suite never uses the machine's
shared Redis at 127.0.0.1:6379.
"""

from __future__ import annotations

import os
import shutil
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
