"""A send's answer recorded after a callback already moved the message further on.

The gateway may call back (``sent``, ``delivered``, ``seen``) before its answer to the send
reaches the app: the answer is then recorded with the status rule like any other report, so
the message keeps the higher status and only learns its provider id and attempts. On PostgreSQL
the send's result is written by the one-statement rule (``fastpaths.report.apply_one``
with ``sent=``), elsewhere by the locked transaction: this runs on both (the PostgreSQL pass of
``make test`` and CI).

The ordering is not left to chance: the fake gateway, served over real TCP, delivers the
callback to the app's own callback URL (the one the send carried) and only then answers the
send.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from django.db import connections
from django.test import Client
from werkzeug import Request, Response

from django_whatsapp import services
from django_whatsapp.client import SendResult
from django_whatsapp.models import Message, StatusEvent
from django_whatsapp.sending import record_send
from tests.conftest import SEND_PATH, FakeGateway

pytestmark = pytest.mark.django_db(transaction=True)

Status = Message.Status
PROVIDER_ID = 4_242_001
CODES = {Status.SENT: 0, Status.DELIVERED: 1, Status.SEEN: 7}


class CallsBackFirst:
    """Answers a send only after posting ``status`` to the send's own ``callback_url``, so the
    app has applied the callback before it reads the answer."""

    def __init__(self, gateway: FakeGateway, status: str) -> None:
        self.status = status
        self.callback_answers: list[int] = []
        self.status_seen_before_answer: list[str] = []
        gateway.server.expect_request(SEND_PATH, method="POST").respond_with_handler(self.handle)

    def handle(self, request: Request) -> Response:
        payload = json.loads(request.get_data())
        path = urlsplit(payload["callback_url"]).path
        body = json.dumps({"message_id": PROVIDER_ID, "status": CODES[self.status]})
        try:
            answer = Client().post(path, body, content_type="application/json")
            self.callback_answers.append(answer.status_code)
            self.status_seen_before_answer.extend(Message.objects.values_list("status", flat=True))
        finally:
            # This thread's own connection: closed before the test's database is emptied.
            connections.close_all()
        return Response(json.dumps({"message_id": PROVIDER_ID}), 200, mimetype="application/json")


@pytest.mark.parametrize("status", [Status.SENT, Status.DELIVERED, Status.SEEN])
def test_a_send_answered_after_its_callback_keeps_the_callbacks_status(
    gateway: FakeGateway, status: str
) -> None:
    fake = CallsBackFirst(gateway, status)

    message = services.send_text("380501234567", "hello")

    # The callback was applied while the send was in flight.
    assert fake.callback_answers == [200]
    assert fake.status_seen_before_answer == [status]
    fresh = Message.objects.get(pk=message.pk)
    # The send's answer did not move the message back to accepted ...
    assert fresh.status == status
    assert message.status == status
    # ... but its result is stored: the provider id, the attempt, no error.
    assert fresh.provider_message_id == PROVIDER_ID
    assert fresh.attempts == 1
    assert (fresh.error_code, fresh.error_name, fresh.error_message) == (None, "", "")
    # Both reports are kept, in the order they arrived.
    assert list(fresh.events.order_by("pk").values_list("status", "source")) == [
        (status, StatusEvent.Source.CALLBACK),
        (Status.ACCEPTED, StatusEvent.Source.SEND),
    ]


def test_the_one_statement_rule_keeps_a_higher_status_when_recording_a_send(
    gateway: FakeGateway,
) -> None:
    """The same order on the rule itself, whatever the backend: a message already ``delivered``
    (its provider id adopted from the callback) records a send result without moving down."""
    message = Message.objects.create(
        source_addr="TestCo",
        destination_addr="380501234567",
        text="hello",
        status=Status.SENDING,
    )
    services.receive_report(
        message, Status.DELIVERED, source=StatusEvent.Source.CALLBACK, provider_message_id=77
    )
    stale = Message.objects.get(pk=message.pk)
    stale.status = Status.SENDING  # the sender's copy, read before the callback
    stale.provider_message_id = None
    result = SendResult(message_id=77, attempts=2, body={"message_id": 77})

    record_send(stale, result)

    fresh = Message.objects.get(pk=message.pk)
    assert (fresh.status, fresh.provider_message_id, fresh.attempts) == (
        Status.DELIVERED,
        77,
        2,
    )
    assert stale.status == Status.DELIVERED
