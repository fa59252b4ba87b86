"""Every page of the app's admin answers 200 or 400 whatever its query string holds: a NUL byte
(which PostgreSQL cannot store or compare) is refused with a 400 that says why, a lone surrogate
(``%ED%A0%80``, not UTF-8) is read as the replacement character, a huge value and an unknown
parameter are answered like any other value; a list refuses, with a 400 that says why, a filter
it does not have and a filter value of the wrong kind (where Django would redirect to its
"Database error" page). Runs on SQLite and on PostgreSQL. Every list with hostile values of every
filter it offers: tests/test_admin_hostile_filters.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from django_whatsapp.models import InboundReport, Message, StatusEvent, Template

from .factories import make_draft

pytestmark = pytest.mark.django_db

NUMBER = "380671234567"


def pages(template: Template) -> dict[str, str]:
    """Every admin URL of the app, with the objects its change pages need."""
    message = make_draft(Message.Status.NOT_SENT, error_name="Internal server error")
    event = StatusEvent.objects.create(message=message, status=Message.Status.NOT_SENT)
    report = InboundReport.objects.create(method="POST", body="{}", sender=NUMBER)

    def url(name: str, *args: object) -> str:
        return reverse(f"admin:django_whatsapp_{name}", args=args)

    return {
        "message list": url("message_changelist"),
        "compose": url("message_add"),
        "message page": url("message_change", message.pk),
        "message history": url("message_history", message.pk),
        "send to many": url("message_bulk"),
        "status events": url("statusevent_changelist"),
        "status event": url("statusevent_change", event.pk),
        "templates": url("template_changelist"),
        "template": url("template_change", template.pk),
        "template add": url("template_add"),
        "conversations": url("conversation_changelist"),
        "conversation": url("conversation_thread", NUMBER),
        "inbound reports": url("inboundreport_changelist"),
        "inbound report": url("inboundreport_change", report.pk),
    }


PAGES = [
    "message list",
    "compose",
    "message page",
    "message history",
    "send to many",
    "status events",
    "status event",
    "templates",
    "template",
    "template add",
    "conversations",
    "conversation",
    "inbound reports",
    "inbound report",
]
#: Every parameter a page of the app reads, and every filter its lists offer.
PARAMS = [
    "q",
    "p",
    "o",
    "e",
    "all",
    "waiting",
    "status__exact",
    "direction__exact",
    "message_type__exact",
    "template__id__exact",
    "source__exact",
    "outcome__exact",
    "method__exact",
    "is_active__exact",
    "language_code__exact",
    "header_type__exact",
    "created_at__year",
    "created_at__month",
    "received_at__year",
    "message_type",
    "template",
    "destination_addr",
    "_changelist_filters",
    "_popup",
    "_to_field",
]


@pytest.fixture
def admin_urls(template: Template) -> dict[str, str]:
    return pages(template)


def get(client: Client, url: str) -> tuple[int, str]:
    response = client.get(url, follow=True)
    return response.status_code, response.content.decode(errors="replace")


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("param", PARAMS)
def test_a_nul_byte_in_any_parameter_is_a_400_that_says_why(
    admin_client: Client, admin_urls: dict[str, str], page: str, param: str
) -> None:
    status, body = get(admin_client, f"{admin_urls[page]}?{param}=a%00b")

    assert status == 400
    assert "NUL" in body


@pytest.mark.parametrize("page", PAGES)
def test_a_nul_byte_in_a_parameter_name_is_a_400(
    admin_client: Client, admin_urls: dict[str, str], page: str
) -> None:
    status, body = get(admin_client, f"{admin_urls[page]}?a%00b=1")

    assert status == 400
    assert "NUL" in body


#: The pages Django's admin builds itself, which refuse a ``_to_field`` that no popup may ask for
#: (Django's ``DisallowedModelAdminToField``, a 400).
MODEL_PAGES = {
    "message list",
    "compose",
    "message page",
    "status events",
    "status event",
    "templates",
    "template",
    "template add",
    "inbound reports",
    "inbound report",
}
DATE_PARAMS = {"created_at__year", "created_at__month", "received_at__year"}
#: What each list's filters among PARAMS compare (any other filter is not the list's: a 400).
LIST_FILTERS: dict[str, dict[str, str]] = {
    "message list": {
        "status__exact": "text",
        "direction__exact": "text",
        "message_type__exact": "number",
        "message_type": "number",
        "template__id__exact": "number",
        "template": "number",
        "destination_addr": "text",
    },
    "status events": {"status__exact": "text", "source__exact": "text"},
    "templates": {
        "is_active__exact": "yes or no",
        "language_code__exact": "text",
        "header_type__exact": "text",
    },
    "inbound reports": {"outcome__exact": "text", "method__exact": "text"},
}
#: The parameters a list reads itself (search, page, ordering, ...), not filters (a change
#: form's ``_changelist_filters`` is not one of them).
LIST_OWN = {"q", "p", "o", "e", "all", "_popup", "_to_field"}


def expected(page: str, param: str, kind: str) -> int:
    """The right answer to ``param`` holding a value of ``kind`` on ``page``."""
    if param == "_to_field" and page in MODEL_PAGES:
        return 400
    if param in DATE_PARAMS:
        return 400  # not a year or a month: said so, not a failed drill-down
    if param == "q" and kind.startswith("huge"):
        return 400  # longer than any search worth running (and than SQLite's LIKE takes)
    if page in LIST_FILTERS and param not in LIST_OWN:
        compared = LIST_FILTERS[page].get(param)
        if compared is None:
            return 400  # not a filter of this list
        if compared == "number" and kind != "negative":
            return 400  # not a whole number, or beyond any column
        if compared == "yes or no":
            return 400
    return 200


QUERIES: dict[str, Callable[[str], str]] = {
    "lone surrogate": lambda param: f"{param}=%ED%A0%80",
    "invalid UTF-8": lambda param: f"{param}=%FF%FE",
    "huge number": lambda param: f"{param}={'9' * 5000}",
    "huge text": lambda param: f"{param}={'x' * 100_000}",
    "negative": lambda param: f"{param}=-1",
}


#: The lists whose date drill-down is on another field than ``created_at``.
DRILL_DOWN = {"status events": "received_at", "inbound reports": "received_at"}


@pytest.mark.parametrize("page", PAGES)
def test_a_valid_date_drill_down_is_shown(
    admin_client: Client, admin_urls: dict[str, str], page: str
) -> None:
    field = DRILL_DOWN.get(page, "created_at")
    status, _ = get(admin_client, f"{admin_urls[page]}?{field}__year=2026&{field}__month=1")

    assert status == 200


def test_a_search_of_the_longest_accepted_length_runs(admin_client: Client) -> None:
    url = reverse("admin:django_whatsapp_message_changelist")

    assert admin_client.get(f"{url}?q={'x' * 200}").status_code == 200
    assert admin_client.get(f"{url}?q={'x' * 201}").status_code == 400


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("kind", QUERIES)
def test_odd_values_in_every_parameter_are_answered(
    admin_client: Client, admin_urls: dict[str, str], page: str, kind: str
) -> None:
    # One request with every parameter a page takes at once, then one per parameter.
    fine = [param for param in PARAMS if expected(page, param, kind) == 200]
    status, _ = get(admin_client, f"{admin_urls[page]}?{'&'.join(QUERIES[kind](p) for p in fine)}")
    assert status == 200
    answers = {
        param: get(admin_client, f"{admin_urls[page]}?{QUERIES[kind](param)}")[0]
        for param in PARAMS
    }
    assert answers == {param: expected(page, param, kind) for param in PARAMS}


@pytest.mark.parametrize("page", PAGES)
def test_unknown_parameters_are_ignored_or_reported(
    admin_client: Client, admin_urls: dict[str, str], page: str
) -> None:
    status, body = get(admin_client, f"{admin_urls[page]}?nonsense=1&status__in=a,b&id__gt=x")

    if page in LIST_FILTERS:  # a list reads every parameter as a filter: these are not its
        assert (status, "not valid" in body) == (400, True)
    else:
        assert status == 200


def test_the_conversation_search_with_a_nul_byte_keeps_the_list_reachable(
    admin_client: Client,
) -> None:
    make_draft(Message.Status.DELIVERED, destination_addr=NUMBER, text="Hi there")
    url = reverse("admin:django_whatsapp_conversation_changelist")

    refused = admin_client.get(f"{url}?q=%00")
    found = admin_client.get(f"{url}?q=there")

    assert refused.status_code == 400
    assert found.status_code == 200
    assert "+380671234567" in found.content.decode()
