"""The gateway's rate limit, shared by every process and machine through the Django cache.

``RATE_LIMIT`` is the most requests per second that all senders together may make to the
gateway; ``RATE_LIMIT_CACHE`` names the cache that holds the shared budget (a Redis cache in
production: ``django.core.cache.backends.redis.RedisCache`` or django-redis).

The budget is counted in short windows: time is cut into windows of ``w`` seconds, each with
``per_window`` requests, where ``per_window / w == RATE_LIMIT`` (5 requests per 100 ms for 50/s).
Before each request a sender increments the counter of the current window (one atomic ``INCR``
on Redis); a number within the window's budget lets the request go, a larger one waits for the
next window. So N senders on M machines together never start more than ``RATE_LIMIT`` requests
in any window-aligned second, and never more than one window's budget at once. Windows are
named by wall-clock time: machines sharing a budget must keep their clocks synchronised (NTP).

A ``429`` answer stores "paused until" in the same cache (``Retry-After`` seconds from now):
every sender that shares the cache waits until then before its next request, so one process's
429 pauses them all. A rate-limited request is retried without using up ``MAX_RETRIES`` for as
long as the gate's ``keep_trying`` says so (a campaign: while it runs), since waiting for budget
is what it is for.

:class:`SharedRateLimit` is a :class:`~django_whatsapp.client.SharedBackoff`, the gate the
client already knows: the client stays free of Django's cache and models.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from django.core.cache import BaseCache, caches

from .client import SharedBackoff
from .conf import DEFAULT_ACCOUNT, WhatsAppSettings, get_settings

logger = logging.getLogger("django_whatsapp.ratelimit")

#: The shortest window, in seconds, for limits of 10 requests per second and more.
MIN_WINDOW = 0.1
#: Retries of a rate-limited request when no ``keep_trying`` is given (single sends, polls).
DEFAULT_RATE_LIMIT_RETRIES = 10
_FOREVER = 2**31
#: The cache keys' prefix of the default account's budget.
PREFIX = "django_whatsapp:ratelimit"


def windows(rate: float) -> tuple[int, float]:
    """The budget per window and the window's length in seconds for ``rate`` requests per
    second: the most requests per window that keeps windows at least ``MIN_WINDOW`` long."""
    if not rate > 0 or math.isinf(rate):
        raise ValueError("rate must be a positive number")
    per_window = max(1, math.floor(rate * MIN_WINDOW))
    return per_window, per_window / rate


class SharedRateLimit(SharedBackoff):
    """A gate that keeps every process sharing ``cache`` under ``rate`` requests per second,
    and pauses them all after a 429 (see the module's docstring).

    ``max_in_flight`` limits this process's requests in flight, as for
    :class:`~django_whatsapp.client.SharedBackoff`. ``keep_trying`` says whether a
    rate-limited request should wait and try again rather than fail (a campaign passes "while
    the campaign runs"); without it a rate-limited request is retried
    ``DEFAULT_RATE_LIMIT_RETRIES`` times. ``prefix`` names the cache keys.
    """

    def __init__(
        self,
        rate: float,
        cache: BaseCache,
        *,
        prefix: str = PREFIX,
        max_in_flight: int | None = None,
        keep_trying: Callable[[], bool] | None = None,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        stop_on_outage: bool = False,
    ) -> None:
        super().__init__(
            max_retries=DEFAULT_RATE_LIMIT_RETRIES,
            max_in_flight=max_in_flight,
            clock=clock,
            stop_on_outage=stop_on_outage,
        )
        self.rate = rate
        self.per_window, self.window = windows(rate)
        self.cache = cache
        self.prefix = prefix
        self.keep_trying = keep_trying
        self._wall = wall_clock
        #: Requests that had to wait for the next window, and for a pause stored in the cache by
        #: any process (for reports and tests).
        self.waits = 0
        self.pause_waits = 0

    def __repr__(self) -> str:
        return (
            f"SharedRateLimit(rate={self.rate}, per_window={self.per_window}, "
            f"window={self.window:.3f}s, pauses={self.pauses})"
        )

    @property
    def pause_key(self) -> str:
        return f"{self.prefix}:paused-until"

    def rate_limit_retries(self) -> int:
        """Retries allowed to a rate-limited request: unbounded while ``keep_trying`` says so."""
        if self.keep_trying is None:
            return self.max_retries
        return _FOREVER if self.keep_trying() else 0

    def _pass(self, sleep: Callable[[float], None]) -> int:
        ticket = super()._pass(sleep)  # this process's own pause, if any
        self._take(sleep)
        return ticket

    def _take(self, sleep: Callable[[float], None]) -> None:
        """Wait until no shared pause is in force and the current window has budget left."""
        while True:
            now = self._wall()
            paused_until = self.cache.get(self.pause_key)
            if isinstance(paused_until, int | float) and paused_until > now:
                self.pause_waits += 1
                sleep(paused_until - now)
                continue
            window = math.floor(now / self.window)
            if self._count(window) <= self.per_window:
                return
            self.waits += 1
            sleep(max((window + 1) * self.window - now, 0.001))

    def _count(self, window: int) -> int:
        """This request's number in ``window`` (an atomic increment of the window's key)."""
        key = f"{self.prefix}:w:{window}"
        timeout = max(int(self.window * 4) + 2, 3)
        try:
            return int(self.cache.incr(key))
        except ValueError:  # the window's first request
            if self.cache.add(key, 1, timeout=timeout):
                return 1
            return int(self.cache.incr(key))

    def pause(self, seconds: float, ticket: int) -> bool:
        """Pause this process (as :class:`SharedBackoff` does) and every process that shares the
        cache: "paused until" is stored there, never moved earlier by a shorter pause."""
        until = self._wall() + max(seconds, 0.0)
        current = self.cache.get(self.pause_key)
        if not (isinstance(current, int | float) and current >= until):
            self.cache.set(self.pause_key, until, timeout=math.ceil(seconds) + 1)
        return super().pause(seconds, ticket)


class PatientBackoff(SharedBackoff):
    """A :class:`~django_whatsapp.client.SharedBackoff` (one process, no shared budget) whose
    rate-limited requests wait and try again for as long as ``keep_trying`` says so: a
    campaign's messages are never failed for a 429 while the campaign runs, with or without
    ``RATE_LIMIT``."""

    def __init__(
        self,
        *,
        keep_trying: Callable[[], bool],
        max_in_flight: int | None = None,
        stop_on_outage: bool = False,
    ):
        super().__init__(
            max_retries=DEFAULT_RATE_LIMIT_RETRIES,
            max_in_flight=max_in_flight,
            stop_on_outage=stop_on_outage,
        )
        self.keep_trying = keep_trying

    def rate_limit_retries(self) -> int:
        return _FOREVER if self.keep_trying() else 0


def budget_prefix(conf: WhatsAppSettings) -> str:
    """The cache keys' prefix of ``conf``'s account's rate budget: each account of ``ACCOUNTS``
    has its own budget and its own 429 pause (the gateway limits each access key apart)."""
    if conf.account == DEFAULT_ACCOUNT:
        return PREFIX
    return f"{PREFIX}:account:{conf.account}"


def gate_for(
    conf: WhatsAppSettings | None = None,
    *,
    max_in_flight: int | None = None,
    keep_trying: Callable[[], bool] | None = None,
    stop_on_outage: bool = False,
) -> SharedBackoff | None:
    """The gate for a client under the current settings: a :class:`SharedRateLimit` when
    ``RATE_LIMIT`` is set; else, with ``keep_trying``, a :class:`PatientBackoff`; else a
    :class:`SharedBackoff` for ``max_in_flight`` concurrent requests, or ``None`` (one request at
    a time needs no gate). ``stop_on_outage``: see :class:`~django_whatsapp.client.SharedBackoff`
    (a campaign's engine)."""
    conf = conf or get_settings()
    if conf.RATE_LIMIT is not None:
        return SharedRateLimit(
            conf.RATE_LIMIT,
            caches[conf.RATE_LIMIT_CACHE],
            prefix=budget_prefix(conf),
            max_in_flight=max_in_flight,
            keep_trying=keep_trying,
            stop_on_outage=stop_on_outage,
        )
    if keep_trying is not None:
        return PatientBackoff(
            keep_trying=keep_trying, max_in_flight=max_in_flight, stop_on_outage=stop_on_outage
        )
    if max_in_flight is None:
        return None
    return SharedBackoff(max_in_flight=max_in_flight, stop_on_outage=stop_on_outage)
