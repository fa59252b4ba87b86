"""Template filters of the operator's console."""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.utils.safestring import SafeString

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
