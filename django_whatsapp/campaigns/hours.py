"""A campaign's sending hours, in each recipient's own time.

A marketing message at 03:00 in the customer's time zone is the surest way to a block or a
report. A campaign may carry sending hours (``create_campaign(..., sending_hours=("09:00",
"20:00"))``): each recipient is sent only while it is between those hours where they are; the
others wait for their next opening while the campaign sends the rest. Hours that cross midnight
(``("20:00", "02:00")``) are allowed; the start is included, the end is not.

The recipient's zone comes from the number (libphonenumber's ``phonenumbers.timezone``): one
zone for most numbers (every Ukrainian and Polish one, a US number by its area code). Where the
number's country has several and the number does not say which (a Russian mobile, a US toll-free
number), ``RECIPIENT_TIME_ZONES`` chooses by country (``{"RU": "Europe/Moscow"}``); a number
whose zone is still not known gets ``RECIPIENT_DEFAULT_TIME_ZONE`` (by default the project's
``TIME_ZONE``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from phonenumbers import timezone as number_zones

from ..conf import WhatsAppSettings

__all__ = ["SendingHours", "clean", "of_campaign", "opens_at", "zone_for"]

#: What libphonenumber answers for a number whose zone it does not know.
UNKNOWN_ZONE = "Etc/Unknown"


@dataclass(frozen=True)
class SendingHours:
    """Local hours from ``start`` (included) to ``end`` (not included); ``start > end`` crosses
    midnight."""

    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def open_fraction(self) -> float:
        """The part of a day the hours cover."""
        start = self.start.hour * 60 + self.start.minute
        end = self.end.hour * 60 + self.end.minute
        return ((end - start) % (24 * 60)) / (24 * 60)

    def next_opening(self, moment: datetime, zone: ZoneInfo) -> datetime | None:
        """``None`` when ``moment`` is within the hours in ``zone``; else the next moment they
        open there (aware, in ``zone``)."""
        local = moment.astimezone(zone)
        if self.contains(local.time().replace(tzinfo=None)):
            return None
        day = local.date()
        for offset in range(3):
            opening = datetime.combine(day + timedelta(days=offset), self.start, tzinfo=zone)
            if opening > local:
                return opening
        raise AssertionError("unreachable: the hours open within two days")  # pragma: no cover

    def next_closing(self, moment: datetime, zone: ZoneInfo) -> datetime:
        """The next moment after ``moment`` the hours close in ``zone`` (aware, in ``zone``)."""
        local = moment.astimezone(zone)
        day = local.date()
        for offset in range(-1, 3):
            closing = datetime.combine(day + timedelta(days=offset), self.end, tzinfo=zone)
            if closing > local:
                return closing
        raise AssertionError("unreachable: the hours close within two days")  # pragma: no cover


def _time(value: Any) -> time:
    if isinstance(value, time):
        return value.replace(second=0, microsecond=0, tzinfo=None)
    if isinstance(value, str):
        hours, sep, minutes = value.strip().partition(":")
        if (
            sep
            and hours.isascii()
            and hours.isdigit()
            and minutes.isascii()
            and minutes.isdigit()
            and len(minutes) == 2
            and int(hours) < 24
            and int(minutes) < 60
        ):
            return time(int(hours), int(minutes))
    raise ValidationError(
        {
            "sending_hours": _(
                "%(value)r is not a time of day: write it as HH:MM (09:00) or give a datetime.time."
            )
            % {"value": value}
        },
        code="invalid",
    )


def clean(value: Any) -> SendingHours | None:
    """``sending_hours`` as a caller gives it: ``None``, or a ``(start, end)`` pair of
    ``datetime.time`` or ``"HH:MM"`` strings. Raises ``ValidationError`` (key
    ``sending_hours``) for anything else, or hours that start where they end."""
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, tuple | list) or len(value) != 2:
        raise ValidationError(
            {"sending_hours": _('Give the sending hours as a pair: ("09:00", "20:00").')},
            code="invalid",
        )
    hours = SendingHours(_time(value[0]), _time(value[1]))
    if hours.start == hours.end:
        raise ValidationError(
            {"sending_hours": _("The sending hours must not start where they end.")},
            code="empty",
        )
    return hours


def of_campaign(campaign: Any) -> SendingHours | None:
    """The campaign's sending hours, or ``None`` when it has none."""
    start, end = campaign.sending_hours_start, campaign.sending_hours_end
    if start is None or end is None:
        return None
    return SendingHours(start, end)


@functools.lru_cache(maxsize=65_536)
def _candidates(number: str) -> tuple[str | None, tuple[str, ...]]:
    """The number's country and the zones libphonenumber gives it (none when unknown)."""
    try:
        parsed = phonenumbers.parse("+" + number, None)
    except phonenumbers.NumberParseException:
        return None, ()
    zones = tuple(z for z in number_zones.time_zones_for_number(parsed) if z != UNKNOWN_ZONE)
    return phonenumbers.region_code_for_number(parsed), zones


@functools.lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def zone_name(number: str, conf: WhatsAppSettings) -> str:
    """The zone of the recipient ``number`` (normalised digits): the number's own, else the
    country's in ``RECIPIENT_TIME_ZONES``, else ``RECIPIENT_DEFAULT_TIME_ZONE`` (by default
    ``settings.TIME_ZONE``)."""
    country, zones = _candidates(number)
    if len(zones) == 1:
        return zones[0]
    chosen = conf.RECIPIENT_TIME_ZONES.get(country or "")
    if chosen:
        return chosen
    return conf.RECIPIENT_DEFAULT_TIME_ZONE or settings.TIME_ZONE or "UTC"


def zone_for(number: str, conf: WhatsAppSettings) -> ZoneInfo:
    """:func:`zone_name` as a ``ZoneInfo``."""
    return _zone(zone_name(number, conf))


def opens_at(
    number: str, hours: SendingHours, moment: datetime, conf: WhatsAppSettings
) -> datetime | None:
    """``None`` when ``moment`` is within the recipient's sending hours; else when they next
    open (aware, in the recipient's zone)."""
    return hours.next_opening(moment, zone_for(number, conf))
