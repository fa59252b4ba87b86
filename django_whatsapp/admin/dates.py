"""Dates and times, one way on every screen of the console: the language's own date and time
format (Django's ``DATETIME_FORMAT``) always to the minute (English's ``P`` drops the minutes on
the hour: "3 a.m."), to the second where the order of events matters (timelines), in the current
time zone, which each page names once (:func:`time_zone_note`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.contrib import admin
from django.db import models
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _


def with_minutes(shape: str, seconds: bool = False) -> str:
    """A Django date format with the time of day always to the minute (English's ``P`` reads
    "3 a.m." on the hour, "noon" at noon), and to the second when asked."""
    if "P" in shape:
        return shape.replace("P", "g:i:s a" if seconds else "g:i a")
    if seconds and "s" not in shape:
        return shape.replace("i", "i:s", 1)
    return shape


def time_of_day_format(seconds: bool = False) -> str:
    """The language's ``TIME_FORMAT`` with minutes (and seconds when asked)."""
    return with_minutes(str(formats.get_format("TIME_FORMAT")), seconds)


def when(value: datetime | None, *, seconds: bool = False) -> str:
    """``value`` in the current time zone, as the language writes a date and time (Django's
    ``DATETIME_FORMAT``) with minutes: "Jan. 5, 2026, 3:00 p.m." in English, where Django
    writes "3 p.m."; "-" for none."""
    if value is None:
        return "-"
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    shape = with_minutes(str(formats.get_format("DATETIME_FORMAT")), seconds)
    return formats.date_format(local, shape)


def short_when(value: datetime | None) -> str:
    """:func:`when`, or only the time of day when ``value`` is today (in the current time zone):
    "since 10:42"."""
    if value is None:
        return "-"
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    if local.date() == timezone.localdate():
        return formats.time_format(local, time_of_day_format(False))
    return when(value)


def time_tag(value: datetime | None, *, seconds: bool = False) -> SafeString | str:
    """:func:`when` in a ``<time>`` element carrying the ISO moment."""
    if value is None:
        return "-"
    shown = when(value, seconds=seconds)
    return format_html('<time datetime="{}">{}</time>', value.isoformat(), shown)


def time_zone_name() -> str:
    return timezone.get_current_timezone_name()


def time_zone_note() -> SafeString:
    """ "Times are in UTC.": said once on each page that shows times."""
    return format_html(
        '<p class="wa-time-zone" id="wa-time-zone">{}</p>',
        _("Times are in %(zone)s.") % {"zone": time_zone_name()},
    )


def when_column(model: type[models.Model], name: str) -> Callable[[Any, Any], SafeString | str]:
    """A ``list_display`` / ``readonly_fields`` entry showing the date field ``name`` of
    ``model`` with :func:`when`, ordered by the field and labelled by its verbose name."""
    label = getattr(model._meta.get_field(name), "verbose_name", name)

    @admin.display(description=label, ordering=name)
    def column(model_admin: Any, obj: Any) -> SafeString | str:
        return time_tag(getattr(obj, name))

    column.__name__ = f"{name}_when"
    return column
