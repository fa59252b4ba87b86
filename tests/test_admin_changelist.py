"""The message list: columns, filters, search, the summary and funnel, the actions."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_whatsapp.models import Message, Template

from .factories import make_draft as make

pytestmark = pytest.mark.django_db

LIST_URL = reverse("admin:django_whatsapp_message_changelist")
Status = Message.Status


def summary(response: Any) -> Any:
    return response.context["wa_summary"]


def funnel(response: Any) -> dict[str, tuple[int, int]]:
    return {step.key: (step.count, step.percent) for step in summary(response).funnel}


def act(client: Client, action: str, messages: list[Message]) -> str:
    """Run a list action, answering "Yes" where it asks first (the actions that send)."""
    response = client.post(
        LIST_URL,
        {
            "action": action,
            "index": 0,
            "_selected_action": [m.pk for m in messages],
            "post": "yes",
        },
        follow=True,
    )
    assert response.status_code == 200
    return " | ".join(str(m) for m in response.context["messages"])


def test_columns_show_recipient_type_preview_badge_and_times(
    admin_client: Client, template: Template
) -> None:
    make(Status.SEEN, text="Your parcel is on its way,\ntrack it at the link below, thank you")
    make(
        Status.ACCEPTED,
        message_type=Message.MessageType.TEMPLATE,
        template=template,
        text="",
        template_params={"body": ["Ann", "A-42"], "header": "https://x.io/h.jpg"},
    )
    make(message_type=Message.MessageType.MEDIA, file_url="https://x.io/cat.png", text="Cat")
    html = admin_client.get(LIST_URL).content.decode()
    assert "+380671234567" in html
    assert "Your parcel is on its way, track it at the link below, than…" in html
    assert "order_ready: Hello Ann, your order A-42 is ready." in html
    assert "Image cat.png - Cat" in html
    assert 'data-status="seen">Seen</span>' in html
    assert "column-created_at_when" in html
    # The type is in the preview (and a filter), the submitted time on the message's page:
    # the list fits a 1280 px screen beside the navigation and the filters.
    assert "column-message_type" not in html
    assert "column-submitted_at" not in html


def test_summary_counts_by_status_and_funnel_by_rank(admin_client: Client) -> None:
    for status, count in [
        (Status.DRAFT, 2),
        (Status.NOT_SENT, 1),
        (Status.ACCEPTED, 1),
        (Status.SENT, 1),
        (Status.DELIVERED, 2),
        (Status.SEEN, 4),
        (Status.FAILED, 1),
    ]:
        for _ in range(count):
            # Each sent message was asked of the gateway once: the refused one too.
            make(status, attempts=0 if status == Status.DRAFT else 1)
    # Refused here before any request (a customer who opted out): no part of the funnel.
    make(Status.NOT_SENT, attempts=0, error_name="Opted out")
    response = admin_client.get(LIST_URL)
    result = summary(response)
    assert result.total == 13
    assert (result.submitted, result.refused) == (10, 1)
    counts = {item.status: item.count for item in result.statuses}
    assert counts == {
        "draft": 2,
        "not_sent": 2,
        "accepted": 1,
        "sent": 1,
        "delivered": 2,
        "seen": 4,
        "failed": 1,
    }
    # A seen message was delivered and accepted too; a failed one was accepted, not delivered.
    assert funnel(response) == {"accepted": (9, 90), "delivered": (6, 60), "seen": (4, 40)}
    html = response.content.decode()
    assert 'data-step="delivered" data-count="6" data-percent="60"' in html
    assert "?status__exact=seen" in html


def test_summary_follows_the_filters_and_search(admin_client: Client) -> None:
    make(Status.SEEN, destination_addr="111")
    make(Status.SEEN, destination_addr="222")
    make(Status.DELIVERED, destination_addr="222")
    response = admin_client.get(LIST_URL, {"status__exact": "seen"})
    assert summary(response).total == 2
    response = admin_client.get(LIST_URL, {"q": "+222"})
    assert summary(response).total == 2
    assert funnel(response)["seen"] == (1, 50)


def test_search_by_provider_id_and_text(admin_client: Client) -> None:
    make(Status.ACCEPTED, provider_message_id=987654, text="alpha")
    make(Status.ACCEPTED, provider_message_id=123, text="beta")
    assert summary(admin_client.get(LIST_URL, {"q": "987654"})).total == 1
    assert summary(admin_client.get(LIST_URL, {"q": "beta"})).total == 1


def test_filters_and_date_hierarchy_are_offered(admin_client: Client, template: Template) -> None:
    make(Status.SEEN)
    html = admin_client.get(LIST_URL).content.decode()
    assert "?status__exact=seen" in html
    assert "?message_type__exact=4" in html
    assert f"?template__id__exact={template.pk}" in html
    assert "?created_at__year=" in html


def count_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(LIST_URL)
    assert response.status_code == 200
    return len(queries)


def test_the_list_makes_as_many_queries_for_50_rows_as_for_5(
    admin_client: Client, template: Template
) -> None:
    def add(n: int) -> None:
        for i in range(n):
            kind = i % 3
            if kind == 0:
                make(Status.SEEN, text=f"text {i}")
            elif kind == 1:
                make(Status.DELIVERED, message_type=2, file_url=f"https://x.io/{i}.jpg")
            else:
                make(
                    Status.ACCEPTED,
                    message_type=4,
                    template=template,
                    template_params={"body": [str(i), "x"], "header": "https://x.io/h.jpg"},
                )

    add(5)
    small = count_queries(admin_client)
    add(45)
    assert Message.objects.count() == 50
    assert count_queries(admin_client) == small


def test_send_selected_drafts_reports_counts(admin_client: Client, gateway: Any) -> None:
    gateway.accept()
    drafts = [make(), make()]
    invalid = make(text="  ")
    done = make(Status.SEEN)
    report = act(admin_client, "send_drafts", [*drafts, invalid, done])
    assert report == ("2 drafts sent. 1 message not sent. 1 message skipped: not a draft.")
    assert len(gateway.sent_bodies()) == 2
    assert {m.status for m in Message.objects.filter(pk__in=[d.pk for d in drafts])} == {
        Status.ACCEPTED
    }


def test_refresh_status_action_polls_the_open_messages(admin_client: Client, gateway: Any) -> None:
    open_one = make(Status.ACCEPTED, provider_message_id=501)
    final = make(Status.FAILED, provider_message_id=502)
    never = make(Status.NOT_SENT)
    gateway.status(501, 1)
    report = act(admin_client, "refresh_statuses", [open_one, final, never])
    assert report == (
        "1 status refreshed. 0 refreshes failed. 2 messages skipped: final or never accepted."
    )
    open_one.refresh_from_db()
    assert open_one.status == Status.DELIVERED


def test_retry_not_sent_action(admin_client: Client, gateway: Any) -> None:
    gateway.accept()
    failed = make(Status.NOT_SENT, error_code=2)
    other = make(Status.SEEN)
    report = act(admin_client, "retry_not_sent", [failed, other])
    assert report == (
        "1 message sent again. 0 messages not sent again. "
        "1 message skipped: not “not sent”, or a retry cannot help."
    )
    failed.refresh_from_db()
    assert failed.status == Status.ACCEPTED


def test_actions_report_failures(admin_client: Client, gateway: Any) -> None:
    open_one = make(Status.ACCEPTED, provider_message_id=601)
    gateway.answer(
        {"name": "Unauthorized", "message": "no", "code": 401, "status": 401},
        401,
        path="/v1/api/receive-whatsapp",
    )
    report = act(admin_client, "refresh_statuses", [open_one])
    assert report == (
        "0 statuses refreshed. 1 refresh failed. 0 messages skipped: final or never accepted."
    )
    gateway.answer(
        {"name": "Topup balance is required", "message": "empty", "code": 3, "status": 402}, 402
    )
    again = make(Status.NOT_SENT, error_code=3)
    report = act(admin_client, "retry_not_sent", [again])
    assert report == (
        "0 messages sent again. 1 message not sent again. "
        "0 messages skipped: not “not sent”, or a retry cannot help."
    )


@pytest.mark.parametrize("action", ["send_drafts", "refresh_statuses", "retry_not_sent"])
def test_actions_without_an_api_key_send_nothing_and_say_so(
    admin_client: Client, gateway: Any, settings: Any, action: str
) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "API_KEY": None}
    messages = [make(), make(Status.ACCEPTED, provider_message_id=77), make(Status.NOT_SENT)]
    report = act(admin_client, action, messages)
    assert report.startswith("Nothing was sent: the gateway is not configured.")
    assert gateway.requests == []


# -- the summary counts what the list shows; search; direction; one date-time format -----------


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"direction__exact": "inbound"},
        {"direction__exact": "outbound"},
        {"status__exact": "delivered"},
        {"message_type__exact": "1"},
        {"q": "Hello"},
        {"q": "Ann"},
        {"direction__exact": "inbound", "status__exact": "delivered"},
    ],
)
def test_the_summary_and_the_list_count_the_same_rows(
    admin_client: Client, template: Template, query: dict[str, str]
) -> None:
    make(Status.DELIVERED)
    make(Status.SEEN, text="Hello again")
    make(Status.NOT_SENT)
    make(Status.DELIVERED, direction=Message.Direction.INBOUND, text="Hello from a customer")
    make(
        Status.ACCEPTED,
        message_type=Message.MessageType.TEMPLATE,
        template=template,
        text="",
        template_params={"body": ["Ann", "A-42"]},
    )

    response = admin_client.get(LIST_URL, query)

    assert response.status_code == 200
    result = summary(response)
    assert result.total == response.context["cl"].result_count
    assert result.total - result.incoming == sum(item.count for item in result.statuses)


def test_search_finds_the_template_parameters_the_preview_shows(
    admin_client: Client, template: Template
) -> None:
    found = make(
        Status.ACCEPTED,
        message_type=Message.MessageType.TEMPLATE,
        template=template,
        text="",
        template_params={"body": ["Олена", "A-42"], "header": "https://x.io/h.jpg"},
    )
    make(Status.ACCEPTED, text="nothing to see")

    for term in ("A-42", "a-42", "Олена", "Олена A-42"):
        response = admin_client.get(LIST_URL, {"q": term})
        assert [m.pk for m in response.context["cl"].result_list] == [found.pk], term
        assert summary(response).total == 1
    assert admin_client.get(LIST_URL, {"q": "A-43"}).context["cl"].result_count == 0


def test_the_direction_filter_reads_outgoing_and_incoming(admin_client: Client) -> None:
    make(Status.SEEN)

    html = admin_client.get(LIST_URL).content.decode()

    assert '<a href="?direction__exact=outbound">Outgoing</a>' in html
    assert '<a href="?direction__exact=inbound">Incoming</a>' in html
    assert ">Sent</a>" in html  # the status filter's "Sent" is the only one left


@pytest.mark.parametrize(
    ("language", "minute", "expected", "to_the_second"),
    [
        ("en", 7, "Jan. 5, 2026, 2:07 p.m.", "Jan. 5, 2026, 2:07:09 p.m."),
        # On the hour Django's English format drops the minutes ("2 p.m."); the console not.
        ("en", 0, "Jan. 5, 2026, 2:00 p.m.", "Jan. 5, 2026, 2:00:09 p.m."),
        ("uk", 7, "05 січня 2026 р. 14:07", "05 січня 2026 р. 14:07:09"),  # noqa: RUF001
    ],
)
def test_one_date_time_format_across_the_console_in_the_users_language(
    admin_client: Client,
    settings: Any,
    language: str,
    minute: int,
    expected: str,
    to_the_second: str,
) -> None:
    from datetime import UTC, datetime

    from django.utils import formats, translation

    from django_whatsapp.models import StatusEvent

    moment = datetime(2026, 1, 5, 14, minute, 9, tzinfo=UTC)
    message = make(Status.DELIVERED, destination_addr="380671234567")
    Message.objects.filter(pk=message.pk).update(
        created_at=moment, submitted_at=moment, status_changed_at=moment
    )
    StatusEvent.objects.create(message=message, status=Status.DELIVERED)
    StatusEvent.objects.filter(message=message).update(received_at=moment)
    with translation.override(language):
        django_shown = formats.date_format(moment, "DATETIME_FORMAT")
    # Django's own format, where it keeps the minutes.
    assert (django_shown == expected) is (minute != 0 or language != "en")
    shown = expected
    settings.LANGUAGE_CODE = language  # the user's language (no LocaleMiddleware here)
    pages = {
        "list": LIST_URL,
        "message page": reverse("admin:django_whatsapp_message_change", args=[message.pk]),
        "conversations": reverse("admin:django_whatsapp_conversation_changelist"),
        "conversation": reverse("admin:django_whatsapp_conversation_thread", args=["380671234567"]),
    }

    for name, url in pages.items():
        html = admin_client.get(url).content.decode()
        assert shown in html, name
        # Each page names the time zone of its times, once.
        assert html.count('id="wa-time-zone"') == 1, name
        assert "UTC" in html.split('id="wa-time-zone"')[1].split("</p>")[0], name
    timeline = admin_client.get(pages["message page"])
    events = timeline.content.decode().split('class="wa-timeline"')[1]
    assert to_the_second in events  # a timeline to the second
    bubble = timeline.content.decode().split('class="wa-bubble-meta"')[1]
    assert shown in bubble.split("</div>")[0]
