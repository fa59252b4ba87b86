"""Template filters of the operator's console."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import django
from django import template
from django.utils.safestring import SafeString

from ..admin.dates import time_tag, time_zone_note
from ..admin.display import highlight_placeholders, status_badge

register = template.Library()


@register.filter
def wa_badge(status: str) -> SafeString:
    """A coloured badge for a message status."""
    return status_badge(status)


@register.filter
def wa_placeholders(body: str | None) -> SafeString:
    """A template body with its ``{{n}}`` placeholders marked."""
    return highlight_placeholders(body)


@register.filter
def wa_json(value: Any) -> str:
    """A report's payload, indented for reading (escaped by the template)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


@register.filter
def wa_when(value: datetime | None, seconds: str = "") -> SafeString | str:
    """A moment the console's one way (:mod:`django_whatsapp.admin.dates`), in a ``<time>``;
    ``|wa_when:"seconds"`` with seconds."""
    return time_tag(value, seconds=seconds == "seconds")


@register.simple_tag
def wa_time_zone() -> SafeString:
    """ "Times are in UTC.", once per page."""
    return time_zone_note()


@register.simple_tag
def wa_list_breadcrumbs() -> bool:
    """Whether this Django's admin writes its breadcrumbs as an ``ol.breadcrumbs`` list (6.1 and
    later) rather than a ``div.breadcrumbs`` line: the app's own pages follow its markup."""
    return django.VERSION >= (6, 1)
