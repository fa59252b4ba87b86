"""Simulated time for tests of rate limits: a clock that moves only when every participant waits.

Each of ``participants`` threads reads the time with :meth:`SimulatedTime.now` and waits with
:meth:`SimulatedTime.sleep`. The clock stands still while any participant is busy (sending a
request, reading the cache); once every participant that has not ended is asleep, it jumps to the
earliest wake-up and wakes those that are due. So a test of a rate limit counts what happened in
which (simulated) window, whatever the speed of the machine, and takes no wall-clock time to
"wait" seconds. A participant calls :meth:`SimulatedTime.done` when it ends (in a ``finally``),
or the clock would wait for it for ever.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .waiting import LIMIT, WaitTimeout

#: Where simulated time starts: a wall-clock-like number, so windows are numbered as in real use.
EPOCH = 1_700_000_000.0


@dataclass
class _Sleeper:
    until: float
    woken: bool = False


class SimulatedTime:
    def __init__(self, participants: int, *, start: float = EPOCH) -> None:
        self._now = start
        self._busy = participants
        self._sleepers: list[_Sleeper] = []
        self._cond = threading.Condition()
        #: Every sleep asked for, in seconds (for the tests' own checks).
        self.slept: list[float] = []

    def now(self) -> float:
        with self._cond:
            return self._now

    def sleep(self, seconds: float) -> None:
        """Block until the simulated time has moved ``seconds`` on."""
        with self._cond:
            sleeper = _Sleeper(self._now + max(seconds, 0.0))
            self.slept.append(seconds)
            self._sleepers.append(sleeper)
            self._busy -= 1
            self._advance()
            if not self._cond.wait_for(lambda: sleeper.woken, timeout=LIMIT):
                raise WaitTimeout(
                    f"gave up after {LIMIT:g}s waiting for the simulated time to reach "
                    f"{sleeper.until}: {self._busy} participant(s) never went to sleep"
                )

    def done(self) -> None:
        """A participant has ended: the clock no longer waits for it."""
        with self._cond:
            self._busy -= 1
            self._advance()

    def _advance(self) -> None:
        if self._busy > 0 or not self._sleepers:
            return
        self._now = max(self._now, min(sleeper.until for sleeper in self._sleepers))
        due = [sleeper for sleeper in self._sleepers if sleeper.until <= self._now]
        self._sleepers = [sleeper for sleeper in self._sleepers if sleeper.until > self._now]
        for sleeper in due:
            sleeper.woken = True
        # The woken are busy from now on, before any of them runs: none can find the others
        # "asleep" and move the clock while they have not yet woken.
        self._busy += len(due)
        self._cond.notify_all()
