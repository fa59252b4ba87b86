"""Dates and times, one way on every screen of the console: the language's own date format
(Django's ``DATE_FORMAT``) and its time of day always with minutes (English's ``P`` drops them on
the hour: "3 a.m."), with seconds where the order of events matters (timelines), in the current
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


def _time_format(seconds: bool) -> str:
    """The language's ``TIME_FORMAT``, always with minutes, and with seconds when asked."""
    shape = str(formats.get_format("TIME_FORMAT"))
    if "P" in shape:  # "3 a.m.", "3:30 p.m.", "noon": minutes always, noon as 12:00 p.m.
        return shape.replace("P", "g:i:s a" if seconds else "g:i a")
    if seconds and "s" not in shape:
        return shape.replace("i", "i:s", 1)
    return shape


def when(value: datetime | None, *, seconds: bool = False) -> str:
    """``value`` in the current time zone: the language's date and time of day ("Dec. 7, 2026,
    3:00 a.m." in English, with the hour as "03:00" in Russian and Ukrainian); "-" for none."""
    if value is None:
        return "-"
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    date = formats.date_format(local, "DATE_FORMAT")
    return f"{date}, {formats.time_format(local, _time_format(seconds))}"


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
