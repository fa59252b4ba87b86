"""The callback reads a message whole only for a ``status_changed`` receiver: with none
connected, PostgreSQL's one statement returns three of the message's columns; with one, the
receiver is handed the whole message, as the ORM would load it, and nothing more is queried."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from django_whatsapp import signals
from django_whatsapp.models import Message, StatusEvent

from .test_callback import make_message, post_callback

pytestmark = pytest.mark.django_db

Status = Message.Status


def postgresql_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the one statement is PostgreSQL's")


@pytest.fixture
def received() -> Iterator[list[Message]]:
    """The messages ``status_changed`` receivers are handed while the test runs."""
    messages: list[Message] = []

    def receiver(sender: Any, message: Message, **kwargs: Any) -> None:
        messages.append(message)

    signals.status_changed.connect(receiver, dispatch_uid="test_callback_lean")
    yield messages
    signals.status_changed.disconnect(dispatch_uid="test_callback_lean")


def read_columns(sql: str) -> list[str]:
    """The message's columns the callback's statement reads from the function's row."""
    return re.findall(r'\(r\.message\)\."?(\w+)"?', sql)


def test_without_receivers_the_statement_reads_three_columns(client: Client) -> None:
    postgresql_only()
    assert not signals.status_changed.has_listeners(Message)
    message = make_message()

    with CaptureQueriesContext(connection) as queries:
        response = post_callback(client, message, {"message_id": 554, "status": "delivered"})

    assert response.json() == {"ok": True, "status": "delivered", "applied": 1, "duplicates": 0}
    assert len(queries) == 1
    assert sorted(read_columns(queries[0]["sql"])) == ["id", "provider_message_id", "status"]
    fresh = Message.objects.get(pk=message.pk)
    assert fresh.status == Status.DELIVERED
    assert fresh.status_changed_at is not None
    assert StatusEvent.objects.get(message=message).payload == {
        "message_id": 554,
        "status": "delivered",
    }


def test_a_receiver_is_handed_the_whole_message_in_one_statement(
    client: Client, received: list[Message]
) -> None:
    postgresql_only()
    message = make_message()

    with CaptureQueriesContext(connection) as queries:
        response = post_callback(client, message, {"status": "seen"})

    assert response.status_code == 200
    assert len(queries) == 1
    assert len(read_columns(queries[0]["sql"])) == len(Message._meta.concrete_fields)
    (handed,) = received
    assert handed.get_deferred_fields() == set()
    stored = Message.objects.get(pk=message.pk)
    for field in Message._meta.concrete_fields:
        if field.name != "status_changed_at":  # the receiver's copy has the new instant too
            assert getattr(handed, field.attname) == getattr(stored, field.attname), field.name
    assert handed.status == Status.SEEN
    assert handed.status_changed_at == stored.status_changed_at


def test_a_lean_message_still_adopts_or_refuses_a_provider_id(client: Client) -> None:
    """The reports that go the long way after the statement (a provider id to adopt, or
    another message's) need only the three columns read."""
    postgresql_only()
    waiting = make_message(status=Status.UNKNOWN, provider_message_id=None)
    answer = post_callback(client, waiting, {"message_id": 777, "status": "delivered"})
    assert answer.status_code == 200
    assert Message.objects.get(pk=waiting.pk).provider_message_id == 777

    other = make_message(provider_message_id=888)
    refused = post_callback(client, other, {"message_id": 999, "status": "delivered"})
    assert refused.status_code == 400
    assert Message.objects.get(pk=other.pk).status == Status.ACCEPTED


def test_a_lean_message_takes_several_statuses_in_one_body(client: Client) -> None:
    postgresql_only()
    message = make_message()
    body = {"statuses": [{"id": "wamid.1", "status": "sent"}, {"id": "wamid.1", "status": "read"}]}

    response = post_callback(client, message, body)

    assert response.json() == {"ok": True, "status": "seen", "applied": 2, "duplicates": 0}
    assert sorted(StatusEvent.objects.filter(message=message).values_list("status", flat=True)) == [
        "seen",
        "sent",
    ]
