"""The message list's own filters (direction, campaign, error, tag) and its search in template
parameters."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db import connections, router
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.http import HttpRequest
from django.utils.translation import gettext_lazy

from ..metadata import has_tag
from ..models import Campaign, Message
from . import display


class TagFilter(admin.SimpleListFilter):
    """The messages carrying one tag; offers the tags of the latest messages that have any."""

    title = gettext_lazy("tag")
    parameter_name = "tag"
    #: How many of the latest tagged messages the offered tags come from (one query).
    SAMPLE = 1000

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        recent = (
            Message.objects.exclude(tags=[])
            .order_by("-pk")
            .values_list("tags", flat=True)[: self.SAMPLE]
        )
        tags = {str(tag) for listed in recent if isinstance(listed, list) for tag in listed}
        return [(tag, tag) for tag in sorted(tags)[:100]]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Message]) -> QuerySet[Message]:
        tag = self.value()
        if not tag:
            return queryset
        features = connections[router.db_for_read(Message)].features
        return queryset.filter(
            has_tag(tag, supports_contains=features.supports_json_field_contains)
        )


OUTBOUND = Message.Direction.OUTBOUND


class CampaignFilter(admin.SimpleListFilter):
    """The messages of one campaign; offers the latest campaigns (and the one chosen)."""

    title = gettext_lazy("campaign")
    parameter_name = "campaign__id__exact"
    #: How many of the latest campaigns are offered.
    OFFERED = 20

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        newest = Campaign.objects.order_by("-created_at", "-pk").values_list("pk", "name")
        latest = list(newest[: self.OFFERED])
        chosen = self.value()
        known = chosen is not None and chosen.isascii() and chosen.isdigit() and len(chosen) <= 18
        if chosen is not None and known and all(str(pk) != chosen for pk, _name in latest):
            latest += list(Campaign.objects.filter(pk=int(chosen)).values_list("pk", "name"))
        return [(str(pk), name) for pk, name in latest]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Message]) -> QuerySet[Message]:
        value = self.value()
        if not value:
            return queryset
        if not (value.isascii() and value.isdigit() and len(value) <= 18):
            return queryset.none()  # no campaign has such an id
        return queryset.filter(campaign_id=int(value))


class ErrorFilter(admin.SimpleListFilter):
    """The messages that failed with one error (as the gateway or this app named it), or with
    any; offers the errors of the latest failed messages."""

    title = gettext_lazy("error")
    parameter_name = "error"
    ANY = "*"
    #: How many of the latest failed messages the offered errors come from (one query).
    SAMPLE = 1000

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        recent = (
            Message.objects.exclude(error_name="")
            .order_by("-pk")
            .values_list("error_name", flat=True)[: self.SAMPLE]
        )
        names = sorted(set(recent))[:30]
        return [
            (self.ANY, gettext_lazy("Any error")),
            *((name, self.label(name)) for name in names),
        ]

    @staticmethod
    def label(name: str) -> str:
        """An error's name as the console says it (in the reader's language) where it knows it,
        else as the gateway or the app named it."""
        refused = Message(status=Message.Status.NOT_SENT, error_name=name, attempts=1)
        why = display.explain_error(refused, look_up=False)
        if why is None or why.advice == name:  # not recognised: the name itself
            return name
        return str(why.title)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Message]) -> QuerySet[Message]:
        value = self.value()
        if value == self.ANY:
            return queryset.exclude(error_name="")
        return queryset.filter(error_name=value) if value else queryset


class DirectionFilter(admin.SimpleListFilter):
    """Outgoing or incoming (the model's labels, "Sent" and "Received", read as statuses)."""

    title = gettext_lazy("direction")
    parameter_name = "direction__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(display.DIRECTION_LABELS.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet[Message]) -> QuerySet[Message]:
        value = self.value()
        if value in display.DIRECTION_LABELS:
            return queryset.filter(direction=value)
        return queryset


def template_params_match(queryset: QuerySet[Message], search_term: str) -> QuerySet[Any] | None:
    """The primary keys of the messages whose template parameters (or header) hold every word
    of ``search_term``: the values a template message's preview shows. ``None`` for no term."""
    words = search_term.split()
    if not words:
        return None
    params = queryset.annotate(_wa_params=Cast("template_params", TextField())).exclude(
        template_params={}
    )
    for word in words:
        # A JSON text may hold a non-ASCII value escaped (\u0410): either form matches.
        escaped = json.dumps(word)[1:-1]
        params = params.filter(Q(_wa_params__icontains=word) | Q(_wa_params__contains=escaped))
    return params.values("pk")
