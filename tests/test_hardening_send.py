"""Issue #10, item 4: a 2xx answer the database cannot record never leaves a message in
``sending``. An id out of the 64-bit range (or not positive) is not the documented answer: the
message ends ``unknown`` with the error kept; an answer holding what a JSON column refuses is
kept escaped; any other database error while recording the send ends ``unknown`` too. Over real
TCP (the fake gateway), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from django_whatsapp import services
from django_whatsapp.models import Message, StatusEvent

from .conftest import FakeGateway

pytestmark = pytest.mark.django_db

Status = Message.Status
TO = "380501234567"


def sent_with(gateway: FakeGateway, raw: bytes | str | dict[str, Any]) -> Message:
    gateway.answer(raw)
    message = services.send_text(TO, "hello")
    return Message.objects.get(pk=message.pk)


def assert_unknown_with_the_error(message: Message, says: str) -> None:
    assert message.status == Status.UNKNOWN
    assert message.provider_message_id is None
    assert says in message.error_message
    assert message.error_name
    event = StatusEvent.objects.filter(message=message).latest("pk")
    assert event.status == Status.UNKNOWN


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ('{"message_id": 100000000000000000000}', "is not a whole number from 1 to"),
        ('{"message_id": "100000000000000000000"}', "is not a whole number from 1 to"),
        ('{"message_id": 9223372036854775808}', "is not a whole number from 1 to"),
        ('{"message_id": "' + "9" * 5000 + '"}', "is not a whole number from 1 to"),
        ('{"message_id": ' + "9" * 5000 + "}", "is not a JSON object"),
        ('{"message_id": 0}', "is not a whole number from 1 to"),
        ('{"message_id": -7}', "is not a whole number from 1 to"),
    ],
    ids=["1e20", "1e20-string", "2**63", "5000-digit-string", "5000-digits", "zero", "negative"],
)
def test_an_id_the_database_cannot_hold_ends_unknown(
    gateway: FakeGateway, admin_client: Client, raw: str, says: str
) -> None:
    message = sent_with(gateway, raw)
    assert_unknown_with_the_error(message, says)
    page = admin_client.get(reverse("admin:django_whatsapp_message_change", args=[message.pk]))
    assert page.status_code == 200
    assert admin_client.get(reverse("admin:django_whatsapp_message_changelist")).status_code == 200


def test_the_largest_id_the_database_holds_is_accepted(gateway: FakeGateway) -> None:
    message = sent_with(gateway, {"message_id": 2**63 - 1})
    assert (message.status, message.provider_message_id) == (Status.ACCEPTED, 2**63 - 1)


def test_an_answer_holding_what_a_json_column_refuses_is_kept_escaped(
    gateway: FakeGateway,
) -> None:
    raw = '{"message_id": 5001, "note": "a\\u0000b\\ud800", "\\u0000": [Infinity, NaN]}'
    message = sent_with(gateway, raw)
    assert (message.status, message.provider_message_id) == (Status.ACCEPTED, 5001)
    event = StatusEvent.objects.get(message=message, status=Status.ACCEPTED)
    assert event.payload == {
        "message_id": 5001,
        "note": "a\\x00b\\ud800",
        "\\x00": ["inf", "nan"],
    }


@pytest.fixture
def accepted_events_refused() -> Iterator[None]:
    """A trigger in the database refuses the ``accepted`` event: a real database error while
    the send is recorded (SQLite raises IntegrityError, PostgreSQL InternalError)."""
    table = StatusEvent._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION dw_security_refuse() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'refused by the test'; END; $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                f"CREATE TRIGGER dw_security_refuse BEFORE INSERT ON {table} FOR EACH ROW "
                "WHEN (NEW.status = 'accepted') EXECUTE FUNCTION dw_security_refuse()"
            )
        else:
            cursor.execute(
                f"CREATE TRIGGER dw_security_refuse BEFORE INSERT ON {table} "
                "WHEN NEW.status = 'accepted' BEGIN SELECT RAISE(ABORT, 'refused by the test'); "
                "END"
            )
    yield
    with connection.cursor() as cursor:
        cursor.execute(
            f"DROP TRIGGER dw_security_refuse ON {table}"
            if connection.vendor == "postgresql"
            else "DROP TRIGGER dw_security_refuse"
        )
        if connection.vendor == "postgresql":
            cursor.execute("DROP FUNCTION dw_security_refuse()")


def test_a_database_error_while_recording_the_send_ends_unknown(
    gateway: FakeGateway, accepted_events_refused: None
) -> None:
    message = sent_with(gateway, {"message_id": 5002})
    assert_unknown_with_the_error(message, "refused by the test")
    assert message.error_name == "Answer not stored"
    assert not StatusEvent.objects.filter(message=message, status=Status.ACCEPTED).exists()
