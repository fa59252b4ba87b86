"""The inbound endpoint's reading of unusual bodies, through the signed URL: every body is
stored raw; what can be read is, and what cannot is answered 202 with the reason kept.

When the customer wrote (which opens the 24-hour window) comes from the body's timestamp when it
is a sensible one, else from the time of arrival.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from django_whatsapp import inbound
from django_whatsapp.models import Contact, InboundReport, Message

pytestmark = pytest.mark.django_db

CUSTOMER = "380501234567"
Outcome = InboundReport.Outcome


def path() -> str:
    url = inbound.inbound_url()
    assert url is not None
    return urlsplit(url).path


def post(client: Client, body: bytes | str, content_type: str) -> Any:
    return client.post(path(), body, content_type=content_type)


def only_report() -> InboundReport:
    (report,) = InboundReport.objects.all()
    return report


def test_too_many_form_fields_are_stored_raw_and_answered_202(client: Client) -> None:
    body = urlencode({"from": CUSTOMER, "text": "hi", **{f"f{i}": "x" for i in range(1_500)}})

    response = post(client, body, "application/x-www-form-urlencoded")

    assert response.status_code == 202, response.content
    report = only_report()
    assert (report.outcome, report.body) == (Outcome.NOT_UNDERSTOOD, body)
    assert report.detail.startswith("Malformed body")
    assert not Message.objects.exists()


def test_a_malformed_multipart_body_is_stored_raw_and_answered_202(client: Client) -> None:
    body = "--b\r\nContent-Disposition: form-data; name=from\r\n\r\n" + CUSTOMER  # never closed

    response = post(client, body, "multipart/form-data")  # and no boundary given

    assert response.status_code == 202, response.content
    report = only_report()
    assert report.outcome == Outcome.NOT_UNDERSTOOD
    assert report.detail.startswith("Malformed multipart body")
    assert not Message.objects.exists()


def test_form_fields_sent_as_plain_text_are_read(client: Client) -> None:
    response = post(client, f"from={CUSTOMER}&text=Hello+there", "text/plain")

    assert response.status_code == 200, response.content
    assert Message.objects.get().text == "Hello there"


def test_a_body_neither_json_nor_fields_is_stored_raw_and_answered_202(client: Client) -> None:
    response = post(client, "just some words", "text/plain")

    assert response.status_code == 202
    report = only_report()
    assert report.outcome == Outcome.NOT_UNDERSTOOD
    assert "'text/plain' is not understood" in report.detail


STATUSES = {"statuses": [{"id": "wamid.1", "status": "delivered"}]}


@pytest.mark.parametrize(
    "data",
    [{"messages": [], **STATUSES}, {"entry": [{"changes": [{"value": STATUSES}]}]}],
    ids=["at-the-top", "in-entry-changes"],
)
def test_a_status_report_sent_to_the_inbound_url_is_named_as_such(
    client: Client, data: dict[str, Any]
) -> None:
    body = json.dumps(data)

    response = post(client, body, "application/json")

    assert response.status_code == 202
    assert only_report().detail == "A status report, not a message."
    assert not Message.objects.exists()


def test_an_image_link_that_is_no_url_is_not_kept(client: Client) -> None:
    body = json.dumps({"from": CUSTOMER, "caption": "my receipt", "image": "http://[::1/r.jpg"})

    response = post(client, body, "application/json")

    assert response.status_code == 200, response.content
    message = Message.objects.get()
    assert (message.file_url, message.text) == ("", "my receipt")


def wrote_at(client: Client, timestamp: Any) -> tuple[datetime, datetime, datetime]:
    """Deliver a message with this timestamp; return (before, the contact's last message, after)."""
    before = timezone.now()
    body = json.dumps({"from": CUSTOMER, "text": "hi", "timestamp": timestamp})
    assert post(client, body, "application/json").status_code == 200
    after = timezone.now()
    last = Contact.objects.get(number=CUSTOMER).last_inbound_at
    assert last is not None
    return before, last, after


def test_an_iso_timestamp_without_a_zone_is_read_as_utc(client: Client) -> None:
    sent = (timezone.now() - timedelta(hours=2)).replace(microsecond=0, tzinfo=None)
    _, last, _ = wrote_at(client, sent.isoformat())
    assert last == sent.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    "timestamp",
    ["yesterday", "2026-02-30T10:00:00", "1e400", "2001-01-01T00:00:00Z", 4_102_444_800],
    ids=["words", "no-such-day", "overflow", "years-ago", "in-the-future"],
)
def test_a_timestamp_that_makes_no_sense_counts_as_the_arrival(
    client: Client, timestamp: Any
) -> None:
    before, last, after = wrote_at(client, timestamp)
    assert before <= last <= after
