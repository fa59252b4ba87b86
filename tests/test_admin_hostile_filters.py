"""Every list page of the app's admin, with hostile values in every filter it offers (read from
its own filters, its date drill-down, its search, ordering and page): a 400 that says why, or
the list (an empty result), never a 500 and never Django's "Database error" page. One guard for
every ``ModelAdmin`` of the app (:mod:`django_whatsapp.admin.guard`). Runs on SQLite and on
PostgreSQL, whose errors differ (an integer out of range, a NUL)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client, RequestFactory
from django.urls import reverse

from django_whatsapp import optout, services
from django_whatsapp.models import InboundReport, Message, StatusEvent, Template

from .factories import make_draft

pytestmark = pytest.mark.django_db

HOSTILE = [
    "\x00",
    "a\x00b",
    "\ud800",  # a lone surrogate: not UTF-8, sent as %ED%A0%80
    "99999999999",
    "99999999999999999999999999",
    "-99999999999999999999999999",
    "9223372036854775808",
    "1e309",
    "NaN",
    "-1",
    "0",
    "abc",
    "",
    "1,2,abc",
    "2026-13-45",
    "99999-01-01 00:00:00",
    "0000-00-00",
    "2026-12-07 25:61:00+99:00",
    "' OR 1=1 --",
    "%_%",
    "x" * 3000,
]


def own_models() -> list[tuple[type[Any], admin.ModelAdmin[Any]]]:
    return [
        (model, model_admin)
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label == "django_whatsapp"
    ]


def list_params(model_admin: admin.ModelAdmin[Any], user: User) -> set[str]:
    """Every parameter the list reads: its filters' own, its date drill-down's, search, order,
    page (a list of its own, like the conversations, says which in ``list_params``)."""
    params = {"q", "o", "p"}
    own = getattr(model_admin, "list_params", None)
    if own is not None:
        return params | set(own)
    request = RequestFactory().get("/")
    request.user = user
    changelist = model_admin.get_changelist_instance(request)
    for spec in changelist.filter_specs:
        params.update(spec.expected_parameters())
    if model_admin.date_hierarchy:
        params.update(f"{model_admin.date_hierarchy}__{part}" for part in ("year", "month", "day"))
    return params


@pytest.fixture
def filled(db: Any) -> None:
    """A row of every kind, so that every filter offers choices and every list has rows."""
    template = Template.objects.create(name="t", namespace="ns", body="Hi {{1}}")
    message = make_draft(Message.Status.NOT_SENT, error_name="Opted out", template=template)
    StatusEvent.objects.create(message=message, status=Message.Status.NOT_SENT)
    InboundReport.objects.create(method="POST", body="{}", sender="380671234567")
    campaign = services.create_campaign("Spring", ["+380671234567", "+380671234568"], text="Hi")
    Message.objects.filter(campaign=campaign).update(error_name="Internal server error")
    optout.opt_out("380671234569", reason="asked")


#: Every list of the app's admin, one test each (so that the lists spread over the workers).
LISTS = [
    "campaign",
    "contact",
    "conversation",
    "inboundreport",
    "message",
    "statusevent",
    "template",
]


def test_every_list_of_the_app_is_walked() -> None:
    """A new ``ModelAdmin`` of the app fails here until it joins ``LISTS``."""
    assert sorted(model._meta.model_name for model, _ in own_models()) == LISTS


@pytest.mark.parametrize("list_name", LISTS)
def test_every_list_answers_hostile_filter_values_without_a_server_error(
    admin_client: Client, admin_user: User, filled: None, list_name: str
) -> None:
    model, model_admin = next(
        (model, model_admin)
        for model, model_admin in own_models()
        if model._meta.model_name == list_name
    )
    url = reverse(f"admin:django_whatsapp_{list_name}_changelist")
    params = list_params(model_admin, admin_user)
    assert params >= {"q", "o", "p"}, model
    answered: set[int] = set()
    for param in sorted(params):
        for value in HOSTILE:
            query = f"{quote(param)}={quote(value, safe='', errors='surrogatepass')}"
            response = admin_client.get(f"{url}?{query}")
            body = response.content.decode(errors="replace")
            where = f"{url}?{param}={value[:40]!r}"
            assert response.status_code in (200, 400), f"{where}: {response.status_code}"
            if response.status_code == 400:
                assert body.strip(), f"{where}: a 400 without a reason"
            else:
                assert "Database error" not in body, where
            answered.add(response.status_code)
    # The list refused something and showed something.
    assert answered == {200, 400}
