"""Every opt-out and opt-in is kept with what asked for it (the customer's message and the inbound
report it came in, or the operator), and the contact's admin page shows that history."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.urls import reverse

from django_whatsapp import inbound, optout, retention
from django_whatsapp.models import ConsentChange, Contact, InboundReport, Message

pytestmark = pytest.mark.django_db

CUSTOMER = "380501234567"
Kind = ConsentChange.Kind


def deliver(client: Client, text: str, sender: str = CUSTOMER, message_id: int = 1) -> Any:
    url = inbound.inbound_url()
    assert url is not None
    body = {"message_id": message_id, "source_addr": sender, "destination_addr": "TestCo"}
    response = client.post(
        urlsplit(url).path, json.dumps({**body, "text": text}), content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return response


def test_a_keyword_is_kept_with_its_message_and_report(client: Client) -> None:
    deliver(client, "S\u200bTOP", message_id=1)
    deliver(client, "Start", sender="+380 (50) 123-45-67", message_id=2)
    deliver(client, "STOP", sender="00380501234567", message_id=3)
    contact = Contact.objects.get()
    history = list(contact.consent_changes.order_by("at", "pk"))
    assert [c.kind for c in history] == [Kind.OPTED_OUT, Kind.OPTED_IN, Kind.OPTED_OUT]
    for change, said in zip(history, ["S\u200bTOP", "Start", "STOP"], strict=True):
        assert change.said == said
        assert change.message is not None
        assert change.message.text == said
        assert change.report is not None
        assert list(change.report.messages.all()) == [change.message]
        assert change.user is None
    assert history[0].reason == "keyword: S\u200bTOP"


def test_a_repeated_stop_changes_nothing_and_adds_nothing(client: Client) -> None:
    deliver(client, "STOP", message_id=1)
    deliver(client, "stop", message_id=2)
    assert ConsentChange.objects.count() == 1


def test_an_operator_and_the_projects_code_are_kept_too(
    admin_client: Client, admin_user: Any
) -> None:
    url = reverse("admin:django_whatsapp_conversation_opt_out", args=[CUSTOMER])
    admin_client.post(url, {"opt": "out", "reason": "asked by phone"})
    optout.opt_in("+380 50 123 45 67")
    [by_code, by_operator] = ConsentChange.objects.all()  # newest first
    assert (by_operator.kind, by_operator.user, by_operator.message) == (
        Kind.OPTED_OUT,
        admin_user,
        None,
    )
    assert by_operator.reason.endswith("asked by phone")
    assert (by_code.kind, by_code.user, by_code.report) == (Kind.OPTED_IN, None, None)


def test_the_history_outlives_the_retention_of_its_message_and_report(client: Client) -> None:
    deliver(client, "STOP")
    retention.purge(Message.objects.all(), "messages")
    retention.purge(InboundReport.objects.all(), "inbound reports")
    change = ConsentChange.objects.get()
    assert (change.message, change.report, change.said) == (None, None, "STOP")


def test_the_contact_page_shows_the_history(client: Client, admin_client: Client) -> None:
    deliver(client, "STOP", message_id=1)
    deliver(client, "START", message_id=2)
    contact = Contact.objects.get()
    report = ConsentChange.objects.filter(kind=Kind.OPTED_OUT).get().report
    assert report is not None
    page = admin_client.get(reverse("admin:django_whatsapp_contact_change", args=[contact.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Opt-out history" in html
    assert "keyword: STOP" in html
    assert "Opted out" in html
    assert "Opted in" in html
    assert reverse("admin:django_whatsapp_inboundreport_change", args=[report.pk]) in html
    # Read-only: both changes listed, no form to add, change or delete them or the contact.
    assert html.count('data-change="') == 2
    assert 'name="_save"' not in html
    assert "consent_changes-TOTAL_FORMS" not in html


def test_the_contact_list_finds_a_number_written_any_way(admin_client: Client) -> None:
    optout.opt_out(CUSTOMER)
    Contact.objects.create(number="380671112233")
    listing = admin_client.get(
        reverse("admin:django_whatsapp_contact_changelist"), {"q": "+380 (50) 123-45-67"}
    )
    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 1
