"""Helper threads for tests: daemons, so that a stuck one never keeps pytest from exiting, whose
first failure fails the test at once instead of when the others are done (or never, when the
others wait for the one that died).

    def test_x(helper_threads: HelperThreads) -> None:
        for n in range(4):
            helper_threads.start(sender, n)
        helper_threads.join(what="the senders")   # raises the first thread's exception

``join`` waits on a condition that every thread signals when it ends, giving up after
``waiting.LIMIT`` seconds with an error naming what never finished.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .waiting import LIMIT, WaitTimeout


class HelperThreadFailed(AssertionError):
    """A helper thread raised: the test fails with its exception as the cause."""


class HelperThreads:
    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.errors: list[tuple[str, BaseException]] = []
        self._changed = threading.Condition()
        self._reported = False
        #: How many threads have run their target to the end (counted under ``_changed``: a
        #: thread is still alive for a moment after it notifies, so ``is_alive`` cannot say).
        self._finished = 0

    def start(self, target: Callable[..., Any], *args: Any, name: str | None = None) -> None:
        """Run ``target(*args)`` in a new daemon thread."""

        def run() -> None:
            try:
                target(*args)
            except BaseException as error:  # handed to the test by join()
                with self._changed:
                    self.errors.append((threading.current_thread().name, error))
            finally:
                with self._changed:
                    self._finished += 1
                    self._changed.notify_all()

        thread = threading.Thread(
            target=run, daemon=True, name=name or f"helper-{len(self.threads) + 1}"
        )
        self.threads.append(thread)
        thread.start()

    def join(self, *, what: str, timeout: float = LIMIT) -> None:
        """Wait until every thread has ended; raise the first failure as soon as it happens, and
        fail naming ``what`` when some are still running after ``timeout`` seconds."""
        with self._changed:
            ended = self._changed.wait_for(
                lambda: bool(self.errors) or self._finished == len(self.threads),
                timeout=timeout,
            )
            if self.errors:
                self._reported = True
                name, error = self.errors[0]
                raise HelperThreadFailed(f"{what}: thread {name} failed: {error!r}") from error
        if not ended:
            raise WaitTimeout(
                f"gave up after {timeout:g}s waiting for {what}: "
                f"{len(self.threads) - self._finished} of {len(self.threads)} still running"
            )
        for thread in self.threads:
            thread.join()

    def stop(self) -> None:
        """After the test: a failure no ``join`` reported still fails it."""
        if self.errors and not self._reported:
            name, error = self.errors[0]
            raise HelperThreadFailed(f"thread {name} failed: {error!r}") from error
