"""What time it is for WhatsApp's limits: a message's expiry, the daily tier's moving 24 hours,
and a campaign's sending hours in the recipient's own time.

:func:`now` is ``django.utils.timezone.now()`` unless the ``CLOCK`` setting names another
callable (a dotted path). That is a testing hook: a test that must see a campaign wait for the
morning in Kyiv, or the daily tier move on after 24 hours, points ``CLOCK`` at a clock that every
process of the test reads (a file, a database row) and moves it, instead of waiting. Leases,
status timestamps and the circuit breaker keep the real time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime

from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from django.utils.module_loading import import_string

from .conf import DEFAULTS, SETTING_NAME, get_settings

__all__ = ["now"]


def now() -> datetime:
    """The limits' time now: an aware datetime from ``CLOCK`` (``timezone.now`` by default)."""
    path = get_settings().CLOCK
    if path == DEFAULTS["CLOCK"]:
        return timezone.now()
    moment = _callable(path)()
    if not isinstance(moment, datetime) or timezone.is_naive(moment):
        raise ImproperlyConfigured(
            f"{SETTING_NAME}['CLOCK'] ({path}) must return an aware datetime, not {moment!r}."
        )
    return moment


@functools.lru_cache(maxsize=8)
def _callable(path: str) -> Callable[[], datetime]:
    try:
        found = import_string(path)
    except ImportError as error:
        raise ImproperlyConfigured(
            f"{SETTING_NAME}['CLOCK'] is {path!r}, which cannot be imported: {error}"
        ) from error
    if not callable(found):
        raise ImproperlyConfigured(f"{SETTING_NAME}['CLOCK'] ({path}) is not callable.")
    return found  # type: ignore[no-any-return]
