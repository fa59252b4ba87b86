"""Waiting in tests without wall-clock races: on an event, or on a condition polled with a
generous limit that fails loudly.

A test never sleeps to order events and never gives a step a tight deadline: on a busy machine
any fixed pause is too short some day. It waits for the thing it needs (a row, a line, a port,
a thread) and gives up only after ``LIMIT`` seconds, far beyond what a loaded machine needs, with
an error naming what never happened. ``scripts/check-no-sleeps`` (run by ``make lint``) keeps
sleeps and clock-read deadlines out of ``tests/``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")

# Seconds before a wait gives up: long enough for a machine with every core busy, short enough
# that a test that would wait for ever still ends with a clear message.
LIMIT = 120.0
# Seconds between two looks at a polled condition.
INTERVAL = 0.05


class WaitTimeout(AssertionError):
    """What a wait raises when its condition never held within its limit."""


def pause(seconds: float) -> None:
    """Let ``seconds`` pass without reading the clock twice: for pacing a poll loop or a fake
    server that answers slowly on purpose, never for ordering events."""
    threading.Event().wait(seconds)


def wait_until(
    predicate: Callable[[], T | None],
    *,
    what: str,
    timeout: float = LIMIT,
    interval: float = INTERVAL,
    describe: Callable[[], str] | None = None,
) -> T:
    """Look at ``predicate`` until it returns something truthy, and return that.

    Fails with ``WaitTimeout`` naming ``what`` (and ``describe()``, for the state it last saw)
    when ``timeout`` seconds pass first. The limit is a ``threading.Timer`` that sets an event;
    between two looks the loop waits on that event for ``interval`` seconds, so it ends as soon
    as the limit is reached.
    """
    expired = threading.Event()
    timer = threading.Timer(timeout, expired.set)
    timer.daemon = True
    timer.start()
    try:
        while True:
            result = predicate()
            if result:
                return result
            if expired.is_set():
                detail = f": {describe()}" if describe is not None else ""
                raise WaitTimeout(f"gave up after {timeout:g}s waiting for {what}{detail}")
            expired.wait(interval)
    finally:
        timer.cancel()


def wait_for_event(event: threading.Event, *, what: str, timeout: float = LIMIT) -> None:
    """Wait until ``event`` is set; fail loudly naming ``what`` after ``timeout`` seconds."""
    if not event.wait(timeout):
        raise WaitTimeout(f"gave up after {timeout:g}s waiting for {what}")


def join_all(threads: Iterable[threading.Thread], *, what: str, timeout: float = LIMIT) -> None:
    """Wait until every thread has ended; fail naming ``what`` if one is still running after
    ``timeout`` seconds in all."""
    pending = list(threads)
    wait_until(
        lambda: not any(thread.is_alive() for thread in pending),
        what=what,
        timeout=timeout,
        describe=lambda: f"{sum(t.is_alive() for t in pending)} of {len(pending)} still running",
    )
    for thread in pending:
        thread.join()


def accepts(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at ``host:port`` right now."""
    try:
        with socket.create_connection((host, port), timeout=5):
            return True
    except OSError:
        return False


def clock_passes(milliseconds: int) -> bool:
    """Whether the wall clock, in whole milliseconds since the epoch, is past ``milliseconds``."""
    return time.time_ns() // 1_000_000 > milliseconds
