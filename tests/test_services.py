"""The use cases of services.py against the fake gateway over real TCP; the tests that do not
check the wire (claims, retries, polls) use the in-process memory gateway of
django_whatsapp.testing (its ``whatsapp_gateway`` fixture)."""

from __future__ import annotations

import base64
import itertools
import json
import socket
import threading
from typing import Any

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.utils import timezone
from werkzeug import Request, Response

from django_whatsapp import services
from django_whatsapp.client import WhatsAppClient
from django_whatsapp.conf import get_settings
from django_whatsapp.exceptions import GatewayServerError, InsufficientBalance, InvalidParameter
from django_whatsapp.models import Message, Template
from django_whatsapp.signing import sign
from django_whatsapp.testing import MemoryGateway
from tests.conftest import (
    API_KEY,
    CALLBACK_SECRET,
    SEND_PATH,
    STATUS_PATH,
    FakeGateway,
    SleepRecorder,
)

from .factories import make_message

pytestmark = pytest.mark.django_db

TO = "380501234567"
IMAGE = "https://cdn.example.com/img/photo.jpg"
SERVER_ERROR = {
    "name": "Internal server error",
    "message": "The server encountered an unexpected condition",
    "code": 2,
    "status": 500,
}


def events(message: Message) -> list[tuple[str, str]]:
    return [(e.status, e.source) for e in message.events.order_by("pk")]


def set_conf(settings: Any, **changes: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, **changes}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- apply_status -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reports", list(itertools.permutations(["pending", "sent", "delivered", "seen"]))
)
def test_the_highest_ranked_report_wins_whatever_the_order(reports: tuple[str, ...]) -> None:
    message = make_message()
    for status in reports:
        assert services.apply_status(message, status, source="callback") is not None
    message.refresh_from_db()
    assert message.status == "seen"
    assert message.events.count() == 4


@pytest.mark.parametrize("final", ["seen", "failed", "rejected", "deleted"])
def test_a_late_delivered_never_undoes_a_higher_status(final: str) -> None:
    message = make_message()
    services.apply_status(message, final, source="callback")
    changed_at = Message.objects.get(pk=message.pk).status_changed_at
    event = services.apply_status(message, "delivered", source="poll", payload={"status": 1})
    assert event is not None
    assert (event.status, event.source, event.provider_status) == ("delivered", "poll", 1)
    assert event.payload == {"status": 1}
    message.refresh_from_db()
    assert message.status == final
    assert message.status_changed_at == changed_at
    assert events(message) == [(final, "callback"), ("delivered", "poll")]


@pytest.mark.parametrize("source", ["callback", "poll"])
def test_an_exact_duplicate_returns_none_and_writes_nothing(source: str) -> None:
    message = make_message()
    first = services.apply_status(message, "delivered", source=source, payload={"n": 1})
    assert first is not None
    before = Message.objects.get(pk=message.pk)
    assert services.apply_status(message, "delivered", source=source, payload={"n": 2}) is None
    assert services.apply_status(message, 1, source=source) is None
    after = Message.objects.get(pk=message.pk)
    assert (after.status, after.status_changed_at) == (before.status, before.status_changed_at)
    assert list(message.events.values_list("pk", "payload")) == [(first.pk, {"n": 1})]


def test_a_duplicate_brings_a_stale_copy_up_to_date() -> None:
    message = make_message()
    services.apply_status(message, "seen", source="callback")
    stale = Message.objects.get(pk=message.pk)
    stale.status = "accepted"
    assert services.apply_status(stale, "seen", source="callback") is None
    assert stale.status == "seen"


def test_the_event_is_kept_when_the_status_does_not_change() -> None:
    message = make_message(status="delivered")
    event = services.apply_status(message, "sent", source="callback", payload={"raw": "x"})
    assert event is not None
    assert message.status == "delivered"
    assert Message.objects.get(pk=message.pk).status == "delivered"
    assert events(message) == [("sent", "callback")]


def test_apply_status_records_the_change() -> None:
    message = make_message()
    before = timezone.now()
    event = services.apply_status(message, "7", source="poll")
    assert event is not None
    assert (event.status, event.provider_status, event.payload) == ("seen", 7, {})
    stored = Message.objects.get(pk=message.pk)
    assert stored.status == message.status == "seen"
    assert stored.status_changed_at is not None
    assert stored.status_changed_at >= before
    assert message.status_changed_at == stored.status_changed_at


def test_a_local_status_has_no_provider_code() -> None:
    message = make_message(status="sending", provider_message_id=None)
    event = services.apply_status(message, "unknown", source="send")
    assert event is not None
    assert event.provider_status is None


@pytest.mark.parametrize(
    ("status", "source"),
    [("bogus", "callback"), (9, "poll"), (True, "poll"), ("delivered", "webhook"), ("seen", "")],
)
def test_apply_status_refuses_a_bad_report_and_writes_nothing(status: Any, source: str) -> None:
    message = make_message()
    with pytest.raises(ValueError, match=r"status|source"):
        services.apply_status(message, status, source=source)
    assert message.events.count() == 0
    assert Message.objects.get(pk=message.pk).status == "accepted"


# -- receive_report ---------------------------------------------------------------------------


def test_a_report_with_an_id_is_adopted_by_a_message_in_unknown() -> None:
    message = make_message(status="unknown", provider_message_id=None)
    event = services.receive_report(
        message, "delivered", source="callback", provider_message_id=555
    )
    assert event is not None
    message.refresh_from_db()
    assert (message.provider_message_id, message.status) == (555, "delivered")


def test_a_report_naming_another_id_is_refused() -> None:
    message = make_message(provider_message_id=1001)
    with pytest.raises(services.ReportMismatch):
        services.receive_report(message, "seen", source="callback", provider_message_id=1002)
    message.refresh_from_db()
    assert (message.provider_message_id, message.status) == (1001, "accepted")
    assert message.events.count() == 0


def test_a_report_with_an_id_of_another_message_is_refused() -> None:
    make_message(provider_message_id=777)
    message = make_message(status="unknown", provider_message_id=None)
    with pytest.raises(services.ReportMismatch):
        services.receive_report(message, "seen", source="callback", provider_message_id=777)
    message.refresh_from_db()
    assert (message.provider_message_id, message.status) == (None, "unknown")
    assert message.events.count() == 0


def test_a_stale_copy_sees_the_id_adopted_meanwhile() -> None:
    message = make_message(status="unknown", provider_message_id=None)
    stale = Message.objects.get(pk=message.pk)
    services.receive_report(message, "sent", source="callback", provider_message_id=555)
    assert services.receive_report(stale, "seen", source="poll", provider_message_id=555)
    assert stale.provider_message_id == 555
    other = Message.objects.get(pk=message.pk)
    other.provider_message_id = None
    with pytest.raises(services.ReportMismatch):
        services.receive_report(other, "seen", source="callback", provider_message_id=556)
    assert Message.objects.get(pk=message.pk).status == "seen"


def test_a_report_without_an_id_is_applied() -> None:
    message = make_message()
    assert services.receive_report(message, "sent", source="callback") is not None
    assert message.status == "sent"


# -- send_message: the row, the claim ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_row_is_committed_as_sending_before_the_gateway_is_called(
    gateway: FakeGateway,
) -> None:
    seen_by_gateway: list[dict[str, Any]] = []

    def handler(request: Request) -> Response:
        # This runs in the server's thread, on its own database connection.
        try:
            seen_by_gateway.extend(
                Message.objects.values("uuid", "status", "submitted_at", "destination_addr")
            )
        finally:
            connection.close()
        return Response(json.dumps({"message_id": 4242}), 200, mimetype="application/json")

    gateway.server.expect_request(SEND_PATH, method="POST").respond_with_handler(handler)
    message = services.send_text("+380 50 123 45 67", "hello")
    assert len(seen_by_gateway) == 1
    row = seen_by_gateway[0]
    assert row["uuid"] == message.uuid
    assert row["status"] == "sending"
    assert row["submitted_at"] is not None
    assert row["destination_addr"] == TO
    assert (message.status, message.provider_message_id) == ("accepted", 4242)


def test_sending_twice_makes_one_request(whatsapp_gateway: MemoryGateway) -> None:
    message = services.send_text(TO, "hello")
    again = services.send_message(message)
    assert again is message
    assert len(whatsapp_gateway.requests) == 1
    assert message.status == "accepted"
    assert events(message) == [("accepted", "send")]


def test_a_stale_copy_is_not_sent_again(whatsapp_gateway: MemoryGateway) -> None:
    message = Message.objects.create(source_addr="TestCo", destination_addr=TO, text="hello")
    first, second = Message.objects.get(pk=message.pk), Message.objects.get(pk=message.pk)
    services.send_message(first)
    assert (first.status, second.status) == ("accepted", "draft")
    returned = services.send_message(second)
    assert returned is second
    assert len(whatsapp_gateway.requests) == 1
    assert (second.status, second.provider_message_id) == ("accepted", first.provider_message_id)


@pytest.mark.parametrize("db_status", ["sending", "accepted", "unknown", "not_sent", "delivered"])
def test_a_stale_queued_copy_of_a_claimed_message_is_not_sent(
    whatsapp_gateway: MemoryGateway, db_status: str
) -> None:
    message = make_message(status="queued", provider_message_id=None)
    Message.objects.filter(pk=message.pk).update(status=db_status)
    assert message.status == "queued"
    services.send_message(message)
    assert whatsapp_gateway.requests == []
    assert message.status == db_status
    assert message.events.count() == 0


@pytest.mark.parametrize("status", ["sending", "unknown", "accepted", "not_sent", "seen"])
def test_a_message_that_is_not_draft_or_queued_is_returned_as_it_is(
    whatsapp_gateway: MemoryGateway, status: str
) -> None:
    message = make_message(status=status, provider_message_id=None)
    assert services.send_message(message) is message
    assert whatsapp_gateway.requests == []
    assert Message.objects.get(pk=message.pk).status == status


def test_a_queued_message_is_sent(whatsapp_gateway: MemoryGateway) -> None:
    message = make_message(status="queued", provider_message_id=None)
    services.send_message(message)
    assert message.status == "accepted"
    assert len(whatsapp_gateway.requests) == 1


def test_a_configuration_error_writes_no_row(gateway: FakeGateway, settings: Any) -> None:
    set_conf(settings, API_KEY=None)
    with pytest.raises(ImproperlyConfigured, match="API_KEY"):
        services.send_text(TO, "hello")
    set_conf(settings, API_KEY=API_KEY, CALLBACK_SECRET=None)
    with pytest.raises(ImproperlyConfigured, match="CALLBACK_SECRET"):
        services.send_text(TO, "hello")
    assert Message.objects.count() == 0
    assert gateway.requests == []


# -- send_message: what goes to the gateway ----------------------------------------------------


def test_a_text_send_is_accepted(gateway: FakeGateway) -> None:
    gateway.accept()
    user = get_user_model().objects.create_user("op", password="x")
    before = timezone.now()
    message = services.send_text("+380 50 123-45-67", "Hi there", created_by=user)
    message.refresh_from_db()
    assert message.status == "accepted"
    assert message.provider_message_id == 1001
    assert message.attempts == 1
    assert message.created_by == user
    assert message.submitted_at is not None
    assert message.submitted_at >= before
    assert (message.error_code, message.error_name, message.error_message) == (None, "", "")
    [event] = message.events.all()
    assert (event.status, event.source, event.payload) == ("accepted", "send", {"message_id": 1001})
    [request] = gateway.requests
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(API_KEY.encode()).decode(
        "ascii"
    )
    body = gateway.sent_bodies()[0]
    callback = body.pop("callback_url")
    assert body == {
        "source_addr": "TestCo",
        "destination_addr": 380501234567,
        "message_type": 1,
        "text": "Hi there",
    }
    signature = sign(message.uuid, CALLBACK_SECRET)
    assert callback == f"https://app.example.com/whatsapp/callback/{message.uuid}/{signature}/"


def test_no_callback_url_without_a_callback_base_url(gateway: FakeGateway, settings: Any) -> None:
    set_conf(settings, CALLBACK_BASE_URL=None)
    gateway.accept()
    services.send_media(TO, IMAGE, "A caption", source_addr="Shop")
    [body] = gateway.sent_bodies()
    assert body == {
        "source_addr": "Shop",
        "destination_addr": 380501234567,
        "message_type": 2,
        "file_url": IMAGE,
        "text": "A caption",
    }


def test_a_template_send_carries_the_template_object(
    gateway: FakeGateway, template: Template
) -> None:
    gateway.accept()
    message = services.send_template(TO, "order_ready", ["Ann", "42"], IMAGE)
    assert message.status == "accepted"
    [body] = gateway.sent_bodies()
    assert (body["message_type"], body["template_name"]) == (4, "order_ready")
    obj = json.loads(body["template_params"])
    assert obj["to"] == TO
    assert obj["type"] == "template"
    assert obj["template"]["name"] == "order_ready"
    assert obj["template"]["namespace"] == "ns_1234"
    assert obj["template"]["language"] == {"policy": "deterministic", "code": "en_US"}
    assert obj["template"]["components"] == [
        {"type": "header", "parameters": [{"type": "image", "image": {"link": IMAGE}}]},
        {
            "type": "body",
            "parameters": [{"type": "text", "text": "Ann"}, {"type": "text", "text": "42"}],
        },
    ]


def test_a_numeric_string_message_id_is_accepted(gateway: FakeGateway) -> None:
    gateway.answer({"message_id": "987"})
    message = services.send_text(TO, "hello")
    assert (message.status, message.provider_message_id) == ("accepted", 987)


# -- send_message: gateway failures ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "http_status", "exception", "code", "name"),
    [
        (
            {
                "name": "Invalid Parameter: [destination_addr]",
                "message": "Empty parameter or parameter validation error",
                "code": 1,
                "status": 400,
            },
            400,
            "InvalidParameter",
            1,
            "Invalid Parameter: [destination_addr]",
        ),
        (
            {
                "name": "Topup balance is required",
                "message": "User balance is empty",
                "code": 3,
                "status": 402,
            },
            402,
            "InsufficientBalance",
            3,
            "Topup balance is required",
        ),
        (
            {"name": "Unauthorized", "message": "Your request was made with invalid credentials."},
            401,
            "AuthenticationFailed",
            None,
            "Unauthorized",
        ),
        ("", 403, "AuthenticationFailed", None, "Authentication failed"),
        (
            {
                "name": "Service Unavailable",
                "message": "Message failed to send because more than 24 hours have passed since "
                "the customer last replied to this number. In this case, you can only send a "
                "template message",
                "code": 0,
                "status": 503,
            },
            503,
            "ServiceWindowClosed",
            0,
            "Service Unavailable",
        ),
    ],
)
def test_a_refusal_leaves_the_message_not_sent_with_the_error(
    gateway: FakeGateway,
    wa_client: WhatsAppClient,
    sleeps: SleepRecorder,
    body: Any,
    http_status: int,
    exception: str,
    code: int | None,
    name: str,
) -> None:
    gateway.answer(body, http_status)
    message = services.send_text(TO, "hello", client=wa_client)
    assert message.status == "not_sent"
    stored = Message.objects.get(pk=message.pk)
    assert stored.status == "not_sent"
    assert (stored.error_code, stored.error_name) == (code, name)
    assert stored.error_message
    assert stored.provider_message_id is None
    assert stored.attempts == 1
    assert len(gateway.requests) == 1
    assert sleeps.calls == []
    [event] = stored.events.all()
    assert (event.status, event.source) == ("not_sent", "send")
    assert event.payload["exception"] == exception
    assert event.payload["name"] == name
    assert event.payload["http_status"] == http_status
    assert event.payload["maybe_delivered"] is False


def test_retries_exhausted_on_500_leave_it_not_sent(
    gateway: FakeGateway, wa_client: WhatsAppClient, sleeps: SleepRecorder
) -> None:
    gateway.answer(SERVER_ERROR, 500)
    message = services.send_text(TO, "hello", client=wa_client)
    assert message.status == "not_sent"
    assert message.attempts == 4
    assert len(gateway.requests) == 4
    assert len(sleeps.calls) == 3
    assert (message.error_code, message.error_name) == (2, "Internal server error")
    assert message.events.get().payload["exception"] == "GatewayServerError"


def test_a_retried_rate_limit_then_success_counts_the_attempts(
    gateway: FakeGateway, wa_client: WhatsAppClient, sleeps: SleepRecorder
) -> None:
    limited = {"name": "Too Many Requests", "message": "Rate limit exceeded", "code": 0}
    gateway.answer(limited, 429, {"Retry-After": "2"}, ordered=True)
    gateway.accept(times=1)
    message = services.send_text(TO, "hello", client=wa_client)
    assert (message.status, message.attempts) == ("accepted", 2)
    assert sleeps.calls == [2.0]
    assert events(message) == [("accepted", "send")]


def test_a_2xx_html_answer_leaves_it_unknown(
    gateway: FakeGateway, wa_client: WhatsAppClient
) -> None:
    gateway.answer("<html><body>Welcome to nginx!</body></html>", 200)
    message = services.send_text(TO, "hello", client=wa_client)
    assert message.status == "unknown"
    assert message.error_name == "Unexpected response"
    assert message.attempts == 1
    event = message.events.get()
    assert (event.status, event.source) == ("unknown", "send")
    assert event.payload["maybe_delivered"] is True


def test_a_read_timeout_leaves_it_unknown(gateway: FakeGateway, settings: Any) -> None:
    set_conf(settings, TIMEOUT=(2, 0.2), MAX_RETRIES=3)
    release = threading.Event()
    received: list[bytes] = []

    def slow(request: Request) -> Response:
        received.append(request.get_data())
        release.wait(2)
        return Response(json.dumps({"message_id": 1}), 200, mimetype="application/json")

    gateway.server.expect_request(SEND_PATH, method="POST").respond_with_handler(slow)
    try:
        message = services.send_text(TO, "hello")
    finally:
        release.set()
    gateway.wait_answered(1)  # before the next test, which shares the server
    assert message.status == "unknown"
    assert message.error_name == "Transport error"
    assert message.attempts == 1
    assert len(received) == 1
    assert message.events.get().payload["exception"] == "TransportError"


def test_a_connect_failure_leaves_it_not_sent(settings: Any) -> None:
    set_conf(settings, BASE_URL=f"http://127.0.0.1:{free_port()}/v1/api", MAX_RETRIES=0)
    message = services.send_text(TO, "hello")
    assert message.status == "not_sent"
    assert message.error_name == "Transport error"
    assert message.attempts == 1
    assert message.events.get().payload["maybe_delivered"] is False


def test_a_message_id_of_another_message_leaves_it_unknown(gateway: FakeGateway) -> None:
    gateway.answer({"message_id": 5})
    first = services.send_text(TO, "one")
    second = services.send_text(TO, "two")
    assert (first.status, first.provider_message_id) == ("accepted", 5)
    assert (second.status, second.provider_message_id) == ("unknown", None)
    assert second.error_name == "Duplicate message_id"
    assert second.attempts == 1
    assert Message.objects.get(pk=first.pk).status == "accepted"


class ExplodingSession(requests.Session):
    def post(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        raise RuntimeError("socket library bug")


def test_an_unforeseen_failure_leaves_it_unknown_and_raises(gateway: FakeGateway) -> None:
    conf = get_settings()
    client = WhatsAppClient.from_settings(conf, session=ExplodingSession())
    with pytest.raises(RuntimeError, match="socket library bug"):
        services.send_text(TO, "hello", client=client)
    message = Message.objects.get()
    assert message.status == "unknown"
    assert message.error_message == "RuntimeError: socket library bug"
    assert message.events.get().source == "send"


# -- retry_message ----------------------------------------------------------------------------


def test_a_not_sent_message_is_queued_again_and_sent(whatsapp_gateway: MemoryGateway) -> None:
    whatsapp_gateway.fail_next(InsufficientBalance)
    user = get_user_model().objects.create_user("op", password="x")
    message = services.send_text(TO, "hello")
    assert message.status == "not_sent"
    assert services.retry_message(message, user=user) is message
    message.refresh_from_db()
    accepted = whatsapp_gateway.outbox[0].provider_message_id
    assert (message.status, message.provider_message_id) == ("accepted", accepted)
    assert (message.error_code, message.error_name, message.error_message) == (None, "", "")
    assert message.attempts == 2
    assert events(message) == [("not_sent", "send"), ("queued", "admin"), ("accepted", "send")]
    admin = message.events.get(source="admin")
    assert admin.payload == {"action": "retry", "user": "op"}
    assert len(whatsapp_gateway.requests) == 2


def test_a_retry_refused_again_is_not_sent_again(whatsapp_gateway: MemoryGateway) -> None:
    whatsapp_gateway.fail_next(InvalidParameter, times=2)
    message = services.send_text(TO, "hello")
    services.retry_message(message)
    assert message.status == "not_sent"
    assert events(message) == [("not_sent", "send"), ("queued", "admin"), ("not_sent", "send")]
    assert message.events.get(source="admin").payload == {"action": "retry", "user": None}
    assert message.attempts == 2


@pytest.mark.parametrize(
    "status", ["draft", "queued", "sending", "unknown", "accepted", "delivered", "failed"]
)
def test_only_a_not_sent_message_can_be_retried(
    whatsapp_gateway: MemoryGateway, status: str
) -> None:
    message = make_message(status=status, provider_message_id=None)
    message.status = "not_sent"  # a stale copy does not fool it
    with pytest.raises(services.NotRetryable):
        services.retry_message(message)
    assert message.status == status
    assert whatsapp_gateway.requests == []
    assert message.events.count() == 0


# -- refresh_status ---------------------------------------------------------------------------


def test_a_poll_is_applied(whatsapp_gateway: MemoryGateway) -> None:
    message = make_message(provider_message_id=1001)
    whatsapp_gateway.set_status(1001, 1)
    assert services.refresh_status(message) is message
    assert message.status == "delivered"
    event = message.events.get()
    assert (event.status, event.source, event.provider_status) == ("delivered", "poll", 1)
    assert event.payload == {"message_id": 1001, "status": 1}
    # The same answer again is a duplicate: nothing new.
    services.refresh_status(message)
    assert message.events.count() == 1
    whatsapp_gateway.set_status(1001, 7)
    services.refresh_status(message)
    assert Message.objects.get(pk=message.pk).status == "seen"
    assert events(message) == [("delivered", "poll"), ("seen", "poll")]


def test_a_poll_needs_a_provider_id(whatsapp_gateway: MemoryGateway) -> None:
    message = make_message(status="unknown", provider_message_id=None)
    with pytest.raises(ValueError, match="provider id"):
        services.refresh_status(message)
    assert whatsapp_gateway.requests == []


def test_a_poll_about_another_message_is_refused(
    gateway: FakeGateway, wa_client: WhatsAppClient
) -> None:
    message = make_message(provider_message_id=1001)
    gateway.answer({"message_id": 999, "status": 1}, path=STATUS_PATH)
    with pytest.raises(services.ReportMismatch):
        services.refresh_status(message, client=wa_client)
    assert message.events.count() == 0


def test_a_failed_poll_raises_and_changes_nothing(
    gateway: FakeGateway, wa_client: WhatsAppClient
) -> None:
    message = make_message(provider_message_id=1001)
    gateway.answer(SERVER_ERROR, 500, path=STATUS_PATH)
    with pytest.raises(GatewayServerError):
        services.refresh_status(message, client=wa_client)
    assert Message.objects.get(pk=message.pk).status == "accepted"
    assert message.events.count() == 0


# -- the client cache -------------------------------------------------------------------------


def test_get_client_keeps_one_client_per_setting(settings: Any) -> None:
    first = services.get_client()
    assert services.get_client() is first
    assert services.get_client(get_settings()) is first
    set_conf(settings, MAX_RETRIES=1)
    other = services.get_client()
    assert other is not first
    assert other.max_retries == 1


def test_get_client_drops_old_clients_past_eight(settings: Any) -> None:
    clients = []
    for n in range(9):
        set_conf(settings, BASE_URL=f"http://127.0.0.1:{9000 + n}/v1/api")
        clients.append(services.get_client())
    assert len({id(c) for c in clients}) == 9
    set_conf(settings, BASE_URL="http://127.0.0.1:9000/v1/api")
    assert services.get_client() is not clients[0]
