"""The admin's message page and a conversation make as many SQL queries with a small table as
with a larger one, and with few status events as with many (the pages' cost is constant in the
table size; ``benchmarks/admin_changelist.py`` measures it at 100,000 messages)."""

from __future__ import annotations

import itertools

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_whatsapp.models import Message, StatusEvent, Template

pytestmark = pytest.mark.django_db

CUSTOMER = "380501234567"
STATUSES = ("accepted", "sent", "delivered", "seen", "not_sent", "failed")


def add_messages(count: int, number: str | None = None, template: Template | None = None) -> None:
    """``count`` messages (texts, media, templates, both directions) with a status event each;
    to ``number`` when given, else each to a number of its own."""
    start = Message.objects.count()
    kinds = itertools.cycle(["text", "media", "template", "inbound"])
    new = []
    for n in range(start, start + count):
        kind = next(kinds)
        message = Message(
            source_addr="Shop",
            destination_addr=number or str(380500000000 + n),
            status=STATUSES[n % len(STATUSES)],
            provider_message_id=9_000_000 + n,
            text=f"Message {n}",
        )
        if kind == "media":
            message.message_type = Message.MessageType.MEDIA
            message.file_url = "https://cdn.example.com/receipt.png"
        elif kind == "template" and template is not None:
            message.message_type = Message.MessageType.TEMPLATE
            message.template = template
            message.template_params = {"body": ["Ann", str(n)], "header": None}
        elif kind == "inbound":
            message.direction = Message.Direction.INBOUND
            message.provider_message_id = None
        new.append(message)
    created = Message.objects.bulk_create(new)
    StatusEvent.objects.bulk_create(
        StatusEvent(message=m, status=m.status, source="callback") for m in created
    )


def add_events(message: Message, count: int) -> None:
    """``count`` more status events for ``message`` (an operator's: callbacks and polls keep one
    per status)."""
    StatusEvent.objects.bulk_create(
        StatusEvent(message=message, status=STATUSES[n % len(STATUSES)], source="admin")
        for n in range(count)
    )


def queries_for(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.status_code
    return len(queries)


@pytest.fixture
def template() -> Template:
    return Template.objects.create(
        name="order_ready", language_code="en_US", namespace="ns", body="Hello {{1}}, {{2}}."
    )


@pytest.mark.parametrize("kind", ["text", "template"])
def test_a_messages_page_makes_as_many_queries_in_a_larger_table_with_more_events(
    admin_client: Client, template: Template, kind: str
) -> None:
    message = Message.objects.create(
        source_addr="Shop",
        destination_addr=CUSTOMER,
        text="Your order is ready",
        status="delivered",
        provider_message_id=555,
        **(
            {"message_type": Message.MessageType.TEMPLATE, "template": template}
            if kind == "template"
            else {}
        ),
    )
    add_events(message, 3)
    add_messages(10, template=template)
    add_messages(3, number=CUSTOMER, template=template)
    url = reverse("admin:django_whatsapp_message_change", args=[message.pk])
    queries_for(admin_client, url)  # the first page may fill caches
    small = queries_for(admin_client, url)

    add_events(message, 60)
    add_messages(200, template=template)
    add_messages(40, number=CUSTOMER, template=template)

    assert queries_for(admin_client, url) == small


def test_a_conversation_makes_as_many_queries_in_a_larger_table_and_a_longer_thread(
    admin_client: Client, template: Template
) -> None:
    add_messages(8, number=CUSTOMER, template=template)
    add_messages(10, template=template)
    url = reverse("admin:django_whatsapp_conversation_thread", args=[CUSTOMER])
    queries_for(admin_client, url)  # the first page may fill caches
    small = queries_for(admin_client, url)

    add_messages(120, number=CUSTOMER, template=template)
    add_messages(200, template=template)

    assert queries_for(admin_client, url) == small
