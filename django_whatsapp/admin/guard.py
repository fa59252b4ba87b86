"""The query strings the app's admin pages refuse before any of them reaches the database: one
guard for every ``ModelAdmin`` of the app (:class:`GuardedAdmin`, and :func:`guard_urls` for
screens of their own).

Every page of the app answers 200 or 400, whatever its query string holds:

- a NUL byte in a parameter's name or value is a 400 (PostgreSQL can neither store nor compare
  one, so a search or a filter holding it would fail as a 500);
- a search (``q``) longer than :data:`MAX_SEARCH` characters is a 400 (SQLite refuses a LIKE
  pattern that long, and no phone number, id or text worth finding is);
- a date filter (``created_at__year=...``) that is not a year, month or day is a 400 (the date
  drill-down above a list would fail on it);
- a filter on a number (an id, a campaign, a type) whose value is a whole number too large for
  any database column is a 400 (SQLite and PostgreSQL would fail on it as a 500);
- a list whose filters Django cannot apply (a filter the list does not have, a date that is not
  one, a page past the last, a value of the wrong kind) is a 400 saying so, instead of Django's
  redirect to ``?e=1`` and its "Database error" page.

Bytes that are not UTF-8 (a lone surrogate sent as ``%ED%A0%80``) are already read as U+FFFD by
Django, and filters the admin does not allow are Django's own 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from django.contrib.admin.views.main import ERROR_FLAG
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.urls import URLPattern, URLResolver
from django.utils.text import capfirst
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
#: What every database's largest integer column holds.
INTEGER_RANGE = (-(2**63), 2**63 - 1)
#: The admin's own parameters (search, ordering, page, ...), not filters.
RESERVED = frozenset({"q", "o", "p", "all", "_to_field", "_popup", "_changelist_filters"})
#: The page Django shows for filters it cannot apply.
INVALID_SETUP = "admin/invalid_setup.html"
#: Lookups whose values are compared as the field's own (``__in``: several, by commas).
NUMBER_LOOKUPS = frozenset({"exact", "in", "gt", "gte", "lt", "lte"})


def _bad_request(reason: str) -> HttpResponseBadRequest:
    return HttpResponseBadRequest(reason, content_type="text/plain; charset=utf-8")


def _compared_field(model: type[models.Model], name: str) -> tuple[models.Field[Any, Any], str]:
    """The field a filter parameter such as ``campaign__id__exact`` compares, and its lookup;
    raises ``LookupError`` when the name is no field of ``model``."""
    current: type[models.Model] = model
    field: Any = None
    parts = name.split(LOOKUP_SEP)
    for index, part in enumerate(parts):
        try:
            field = current._meta.get_field(part)
        except FieldDoesNotExist:
            if field is None or index != len(parts) - 1:
                raise LookupError(name) from None
            return field, part
        if field.is_relation and field.related_model is not None:
            if index == len(parts) - 1:
                return field.target_field, "exact"
            current = field.related_model
    if field is None:
        raise LookupError(name)
    return field, "exact"


def number_problem(model: type[models.Model], name: str, values: list[str]) -> str | None:
    """Why a filter on a number of ``model`` is refused: a whole number beyond any column."""
    try:
        field, lookup = _compared_field(model, name)
    except LookupError:
        return None
    numeric = isinstance(field, models.IntegerField | models.AutoField)
    if lookup not in NUMBER_LOOKUPS or not numeric:
        return None
    low, high = INTEGER_RANGE
    for value in values:
        for item in value.split(",") if lookup == "in" else [value]:
            digits = item.strip().removeprefix("-")
            # More than 19 digits is beyond any column (and is never converted: a long digit
            # string costs time to read as a number).
            if not (digits.isascii() and digits.isdigit()):
                continue  # not a number at all: Django says so (see changelist_view)
            if len(digits) > 19 or not low <= int(item) <= high:
                return _("%(param)s is not a number this list holds.") % {"param": name}
    return None


def filter_problem(request: HttpRequest, model: type[models.Model]) -> str | None:
    """Why a list of ``model`` refuses the request's filters on its numbers, or ``None``."""
    for name, values in request.GET.lists():
        if name not in RESERVED and not DATE_PARAM.search(name):
            problem = number_problem(model, name, values)
            if problem is not None:
                return problem
    return None


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
            return _bad_request(problem)
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
    :func:`query_problem` finds wrong, a list whose filters Django cannot apply answers 400, and
    the list is titled by its plural name ("Campaigns", in every language, rather than Django's
    "Select campaign to change", which Russian and Ukrainian cannot decline) and names the time
    zone of its times."""

    #: The app's lists name the time zone of their times (admin/dates.py).
    change_list_template = "django_whatsapp/admin/change_list.html"

    def get_urls(self) -> list[Any]:
        return guard_urls(super().get_urls())

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        problem = filter_problem(request, self.model)
        if problem is not None:
            return _bad_request(problem)
        context = {"title": capfirst(str(self.opts.verbose_name_plural)), **(extra_context or {})}
        response = super().changelist_view(request, context)
        # Django's answer to filters it cannot apply: a redirect to ?e=1, then a page saying
        # "Database error". Said plainly instead.
        redirected = isinstance(response, HttpResponseRedirect) and response.url.endswith(
            f"?{ERROR_FLAG}=1"
        )
        if redirected or getattr(response, "template_name", None) == INVALID_SETUP:
            return _bad_request(
                _(
                    "The filters of this list are not valid (a filter this list does not have, "
                    "a date that is not one, a page past the last, a value of the wrong kind)."
                )
            )
        return response
