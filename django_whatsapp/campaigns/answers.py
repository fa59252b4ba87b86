"""The answers to a campaign chunk's requests, collected as they come (:class:`Answers`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from ..client import SendResult

#: The least time the requests still out are waited for once half a batch is answered.
GRACE = 0.05


class Answers:
    """The answers to a chunk's requests as they come, for the engine to record in batches.

    The thread that answers a request adds it here; the engine is woken twice a batch at most,
    not once an answer (each answer waking the engine's ``wait`` was a lock hand-off between
    nine threads, and with ``submit`` a fifth of a worker's CPU): when half of the requests out
    are answered, and when all are. :meth:`take` waits for all, so that the next claim takes a
    whole batch; but a slow request holds up only its own slot: once half are answered, the
    others are waited for at most as long again as the slowest answered one took (at least
    :data:`GRACE`, so that a thread the machine was slow to run is not taken for a slow
    request)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answered: list[tuple[Future[SendResult], float]] = []  # and the seconds it took
        self._out = 0
        self._half = threading.Event()
        self._all = threading.Event()

    def hand_out(
        self,
        pool: ThreadPoolExecutor,
        send: Callable[[dict[str, object]], SendResult],
        payload: dict[str, object],
    ) -> Future[SendResult]:
        """Submit ``send(payload)`` to ``pool``; its answer comes here."""
        started = time.monotonic()
        with self._lock:
            self._out += 1
            self._signal()
        future = pool.submit(send, payload)
        future.add_done_callback(lambda done: self._answer(done, time.monotonic() - started))
        return future

    def _answer(self, future: Future[SendResult], took: float) -> None:
        with self._lock:
            self._answered.append((future, took))
            self._signal()

    def _signal(self) -> None:
        """Set or clear the two events for the answers now in (under the lock)."""
        count, out = len(self._answered), self._out
        for event, due in ((self._half, 2 * count >= out), (self._all, count >= out)):
            if due and count:
                event.set()
            else:
                event.clear()

    def take(self, timeout: float) -> list[Future[SendResult]]:
        """The requests answered once all out are (or half are, and the others are late), or
        when ``timeout`` seconds have passed: possibly none."""
        deadline = time.monotonic() + timeout
        if self._half.wait(timeout):
            with self._lock:
                slowest = max((took for _f, took in self._answered), default=0.0)
            self._all.wait(max(0.0, min(deadline - time.monotonic(), max(slowest, GRACE))))
        with self._lock:
            taken = [future for future, _took in self._answered]
            self._answered = []
            self._out -= len(taken)
            self._signal()
        return taken
