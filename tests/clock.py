"""A clock every process of a test reads, for WhatsApp's limits (``CLOCK = "tests.clock.now"``).

The time is a file, named by the environment variable ``DJANGO_WHATSAPP_TEST_CLOCK``, holding one
ISO 8601 moment; the test moves it (:meth:`SharedClock.set`, :meth:`SharedClock.advance`) and
every process that reads it (the test's own, and real ``db_worker`` processes given the same
environment) sees the new time at once: the morning in Kyiv, or the daily limit's 24 hours, come
without waiting. It stands still between moves. Without the variable or the file, it is the real
time. Leases, status timestamps and the circuit breaker keep the real time.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

ENV = "DJANGO_WHATSAPP_TEST_CLOCK"
#: The ``CLOCK`` setting that reads it.
SETTING = "tests.clock.now"


def now() -> datetime:
    """The time in the file ``$DJANGO_WHATSAPP_TEST_CLOCK`` names, else the real time."""
    path = os.environ.get(ENV)
    if path:
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            text = ""
        if text.strip():
            return datetime.fromisoformat(text.strip())
    return timezone.now()


class SharedClock:
    """The file a test moves (written whole, then renamed into place: a reader never sees half
    of it)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def set(self, moment: datetime) -> datetime:
        if timezone.is_naive(moment):
            raise ValueError("the shared clock needs an aware datetime")
        part = self.path.with_suffix(".part")
        part.write_text(moment.isoformat())
        os.replace(part, self.path)
        return moment

    def advance(self, delta: timedelta) -> datetime:
        return self.set(self.now() + delta)

    def now(self) -> datetime:
        return datetime.fromisoformat(self.path.read_text().strip())


def install(path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch) -> SharedClock:
    """Point this process's ``CLOCK`` at a shared clock kept in ``path`` (for a test's
    fixture: ``settings`` and ``monkeypatch`` are pytest-django's and pytest's)."""
    monkeypatch.setenv(ENV, str(path))
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CLOCK": SETTING}
    return SharedClock(path)
