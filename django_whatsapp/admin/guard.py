"""The query strings the app's admin pages refuse before any of them reaches the database.

Every page of the app answers 200 or 400, whatever its query string holds:

- a NUL byte in a parameter's name or value is a 400 (PostgreSQL can neither store nor compare
  one, so a search or a filter holding it would fail as a 500);
- a search (``q``) longer than :data:`MAX_SEARCH` characters is a 400 (SQLite refuses a LIKE
  pattern that long, and no phone number, id or text worth finding is);
- a date filter (``created_at__year=...``) that is not a year, month or day is a 400 (the date
  drill-down above a list would fail on it).

Bytes that are not UTF-8 (a lone surrogate sent as ``%ED%A0%80``) are already read as U+FFFD by
Django, and unknown filters are Django's own business (it shows the list with "?e=1").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.urls import URLPattern, URLResolver
from django.utils.translation import gettext as _

if TYPE_CHECKING:
    from django.contrib import admin

    GuardedAdminBase = admin.ModelAdmin[Any]
else:
    GuardedAdminBase = object

#: The longest search a list accepts.
MAX_SEARCH = 200
#: The ranges of the date drill-down's parameters.
DATE_PARTS = {"year": (1, 9999), "month": (1, 12), "day": (1, 31)}
DATE_PARAM = re.compile(r"__(year|month|day)$")


def query_problem(request: HttpRequest) -> str | None:
    """Why the request's query string is refused, or ``None`` when it is not."""
    for name, values in request.GET.lists():
        if "\x00" in name or any("\x00" in value for value in values):
            return _("The query string contains a NUL byte, which no page accepts.")
        date_part = DATE_PARAM.search(name)
        if date_part:
            low, high = DATE_PARTS[date_part.group(1)]
            for value in values:
                number = int(value) if value.isascii() and value.isdigit() and len(value) < 6 else 0
                if not low <= number <= high:
                    return _("%(param)s must be a number from %(low)d to %(high)d.") % {
                        "param": name,
                        "low": low,
                        "high": high,
                    }
    if any(len(value) > MAX_SEARCH for value in request.GET.getlist("q")):
        return _("The search is too long: at most %(max)d characters.") % {"max": MAX_SEARCH}
    return None


def refuse_bad_query(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """``view``, answering 400 with the reason when :func:`query_problem` finds one."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        problem = query_problem(request)
        if problem is not None:
            return HttpResponseBadRequest(problem, content_type="text/plain; charset=utf-8")
        return view(request, *args, **kwargs)

    return guarded


def guard_urls(urls: list[Any]) -> list[Any]:
    """Every view of ``urls`` (and of the URLconfs they include) behind :func:`refuse_bad_query`."""
    for entry in urls:
        if isinstance(entry, URLPattern):
            entry.callback = refuse_bad_query(entry.callback)
        elif isinstance(entry, URLResolver) and isinstance(entry.urlconf_name, list):
            guard_urls(entry.urlconf_name)
    return urls


class GuardedAdmin(GuardedAdminBase):
    """A ``ModelAdmin`` mixin: every page of the admin refuses a query string
    :func:`query_problem` finds wrong."""

    def get_urls(self) -> list[Any]:
        return guard_urls(super().get_urls())
