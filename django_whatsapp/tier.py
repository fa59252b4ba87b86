"""The daily messaging tier: at most ``DAILY_LIMIT`` unique recipients per moving 24 hours that an
account starts conversations with, counted across every process and machine.

Meta limits how many *unique customers* a business may start conversations with in a moving 24
hours (250, 2,000, 10,000, 100,000, unlimited). A send beyond it fails, and every failure lowers
the number's quality. So the app counts the recipients itself, before any request, in the cache
``RATE_LIMIT_CACHE`` (the rate limit's: a Redis cache in production), with Django's cache API:

- one key per recipient counted, holding when (by :func:`django_whatsapp.clock.now`) it was
  counted: a recipient counted in the last 24 hours takes no new place;
- one counter per 10-minute bucket of that clock: a recipient counts in its bucket until 24
  hours after the bucket's end (the moving 24 hours, to the bucket), so the places in use are
  the sum of the last day's buckets.

A new recipient increments the current bucket first and reads the others' sum: over the limit,
it decrements again and is refused. Processes that race for the last place may both be refused
(one goes at the next try), never both admitted. Recipients whose own 24-hour conversation is
open (they wrote to us: ``Contact.last_inbound_at``, see :mod:`django_whatsapp.window`) take no
place, as Meta counts only the conversations the business starts.

A refused recipient's error, :class:`~django_whatsapp.exceptions.DailyLimitReached`, says when a
place frees (``retry_at``): queued and campaign sends wait until then (a campaign never fails
its tail for it), and a single inline send ends ``not_sent`` with it. A cache that cannot be
reached fails closed, as the rate limit does
(:class:`~django_whatsapp.exceptions.RateLimitUnavailable`: nothing is sent).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.core.cache import BaseCache, caches
from django.utils.translation import gettext as _

from .conf import DEFAULT_ACCOUNT, WhatsAppSettings
from .exceptions import DailyLimitReached, RateLimitUnavailable

logger = logging.getLogger("django_whatsapp")

__all__ = [
    "BUCKET",
    "DAY",
    "Admission",
    "TierState",
    "admit",
    "bucket_of",
    "frees_at",
    "state",
]

#: The moving window Meta counts in.
DAY = timedelta(hours=24)
#: Seconds per counter: a recipient counts until 24 hours after its bucket's end.
BUCKET = 600
#: The cache keys' prefix of the default account's tier.
PREFIX = "django_whatsapp:tier"
#: How long the cache keeps a key (real seconds): the day and two buckets more.
KEEP = int(DAY.total_seconds()) + 2 * BUCKET


def prefix_for(conf: WhatsAppSettings) -> str:
    """The cache keys' prefix of ``conf``'s account's tier (each account has its own)."""
    if conf.account == DEFAULT_ACCOUNT:
        return PREFIX
    return f"{PREFIX}:account:{conf.account}"


def bucket_of(moment: datetime) -> int:
    """The number of the bucket ``moment`` falls in."""
    return math.floor(moment.timestamp() / BUCKET)


def frees_at(bucket: int) -> datetime:
    """When the places counted in ``bucket`` are free again: 24 hours after its end."""
    return datetime.fromtimestamp((bucket + 1) * BUCKET, tz=UTC) + DAY


def counting(moment: datetime) -> range:
    """The buckets whose places are still taken at ``moment``."""
    return range(math.floor((moment - DAY).timestamp() / BUCKET), bucket_of(moment) + 1)


@dataclass
class Admission:
    """What :func:`admit` decided for a batch of recipients: those admitted (a new place each,
    or none needed), and those refused with the time a place frees."""

    admitted: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    retry_at: datetime | None = None

    def error(self) -> DailyLimitReached:
        """The error a refused recipient's message gets."""
        when = self.retry_at.isoformat(timespec="minutes") if self.retry_at else "?"
        return DailyLimitReached(
            _(
                "The account's daily limit of new recipients is reached: nothing was sent. A "
                "place frees at %(when)s."
            )
            % {"when": when},
            retry_at=self.retry_at,
            body={"retry_at": when},
        )


@dataclass(frozen=True)
class TierState:
    """An account's tier at one moment: places taken in the moving 24 hours (``used``) of
    ``limit``, and the buckets that hold them (``(bucket, count)``, oldest first)."""

    limit: int | None
    used: int
    buckets: tuple[tuple[int, int], ...] = ()

    @property
    def left(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.used, 0)

    @property
    def frees_at(self) -> datetime | None:
        """When the next place frees (``None`` when none is taken)."""
        return frees_at(self.buckets[0][0]) if self.buckets else None


def _cache(conf: WhatsAppSettings) -> BaseCache:
    return caches[conf.RATE_LIMIT_CACHE]


def _unavailable(exc: BaseException) -> RateLimitUnavailable:
    # Only the failure's type is kept: its text may name the cache's address.
    return RateLimitUnavailable(
        _(
            "The cache that counts the daily limit could not be reached (%(error)s): nothing "
            "was sent."
        )
        % {"error": type(exc).__name__}
    )


def _buckets(cache: BaseCache, prefix: str, numbers: Iterable[int]) -> list[tuple[int, int]]:
    keys = {f"{prefix}:b:{number}": number for number in numbers}
    found = cache.get_many(list(keys))
    counts = [(keys[key], int(value)) for key, value in found.items() if value]
    return sorted((bucket, count) for bucket, count in counts if count > 0)


def state(conf: WhatsAppSettings, now: datetime) -> TierState:
    """``conf``'s account's tier at ``now`` (one read of the cache). Raises
    :class:`~django_whatsapp.exceptions.RateLimitUnavailable` when the cache cannot be read."""
    if conf.DAILY_LIMIT is None:
        return TierState(None, 0)
    try:
        taken = _buckets(_cache(conf), prefix_for(conf), counting(now))
    except Exception as exc:
        raise _unavailable(exc) from exc
    return TierState(conf.DAILY_LIMIT, sum(count for _b, count in taken), tuple(taken))


def admit(
    conf: WhatsAppSettings, numbers: Sequence[str], now: datetime, *, free: Iterable[str] = ()
) -> Admission:
    """Admit the recipients ``numbers`` (normalised digits) under ``conf``'s ``DAILY_LIMIT`` at
    ``now``: each admitted new recipient takes a place in the moving 24 hours; those counted in
    the last 24 hours already, and those in ``free`` (their own conversation is open), take
    none. Raises :class:`~django_whatsapp.exceptions.RateLimitUnavailable` (nothing admitted,
    nothing counted) when the cache cannot be reached."""
    result = Admission()
    limit = conf.DAILY_LIMIT
    if limit is None:
        result.admitted = set(numbers)
        return result
    free = set(free)
    prefix = prefix_for(conf)
    current = bucket_of(now)
    current_key = f"{prefix}:b:{current}"
    since = (now - DAY).timestamp()
    counted: list[str] = []
    try:
        cache = _cache(conf)  # an alias that names no cache fails closed too
        wanted = [n for n in dict.fromkeys(numbers) if n not in free]
        keys = {n: f"{prefix}:r:{n}" for n in wanted}
        seen = cache.get_many(list(keys.values())) if keys else {}
        earlier = _buckets(cache, prefix, [b for b in counting(now) if b != current])
        taken_before = sum(count for _b, count in earlier)
        for number in dict.fromkeys(numbers):
            first = seen.get(keys.get(number, ""))
            if number in free or (isinstance(first, int | float) and first > since):
                result.admitted.add(number)
                continue
            if result.refused:  # no place left in this batch
                result.refused.add(number)
                continue
            if _increment(cache, current_key) + taken_before > limit:
                _decrement(cache, current_key)
                result.refused.add(number)
                continue
            result.admitted.add(number)
            counted.append(number)
        if counted:
            cache.set_many({keys[n]: now.timestamp() for n in counted}, timeout=KEEP)
    except Exception as exc:
        if counted:
            _give_back(_cache(conf), current_key, len(counted))
        raise _unavailable(exc) from exc
    if result.refused:
        oldest = earlier[0][0] if earlier else current
        result.retry_at = frees_at(oldest)
    return result


def _increment(cache: BaseCache, key: str) -> int:
    """The bucket's count after adding one (an atomic increment; the bucket's first)."""
    try:
        return int(cache.incr(key))
    except ValueError:  # the bucket's first recipient
        if cache.add(key, 1, timeout=KEEP):
            return 1
        return int(cache.incr(key))


def _decrement(cache: BaseCache, key: str) -> None:
    with contextlib.suppress(ValueError):  # the bucket's key is gone: nothing to give back
        cache.decr(key)


def _give_back(cache: BaseCache, key: str, count: int) -> None:
    """Give places back after the cache failed half-way (best effort: the cache is what
    failed, and the places it keeps expire with the bucket)."""
    try:
        cache.decr(key, count)
    except Exception as exc:
        logger.warning(
            "WhatsApp daily limit: %d place(s) not given back (%s)", count, type(exc).__name__
        )
