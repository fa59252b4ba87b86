"""django_whatsapp.testing: the memory:// gateway a project's own tests send through.

Each send runs the client's real code (JSON encoding, headers, error parsing) against the
in-process transport; nothing goes on the network."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from django.conf import settings as django_settings
from django.test import override_settings

from django_whatsapp import services, signals
from django_whatsapp.bulk import send_bulk
from django_whatsapp.client import WhatsAppClient
from django_whatsapp.conf import get_settings
from django_whatsapp.exceptions import (
    AuthenticationFailed,
    GatewayServerError,
    InsufficientBalance,
    InvalidParameter,
    RateLimited,
    ServiceWindowClosed,
    TransportError,
    UnexpectedResponse,
    WhatsAppError,
)
from django_whatsapp.models import Contact, Message, Template
from django_whatsapp.testing import (
    MemoryGateway,
    deliver_inbound,
    deliver_status,
    gateway,
    override_whatsapp,
)
from django_whatsapp.testing import outbox as module_outbox
from django_whatsapp.testing.transport import MemoryAdapter

pytestmark = pytest.mark.django_db

TO = "+380 50 123 45 67"


def test_a_send_lands_in_the_outbox_as_it_went_on_the_wire(
    whatsapp_gateway: MemoryGateway,
) -> None:
    message = services.send_text(TO, "Привіт, your order is ready")
    [sent] = whatsapp_gateway.outbox
    assert module_outbox is whatsapp_gateway.outbox  # the module's name is the same list
    assert sent.raw == json.dumps(sent.body, ensure_ascii=False).encode("utf-8")
    assert sent.body["destination_addr"] == 380501234567
    assert sent.body["text"] == "Привіт, your order is ready"
    assert sent.body["callback_url"].startswith("https://app.example.com/")
    assert (sent.to, sent.text) == ("380501234567", "Привіт, your order is ready")
    assert sent.headers["Content-Type"] == "application/json"
    assert "Authorization" not in sent.headers  # never kept, never in a repr
    assert "Authorization" not in repr(sent)
    assert sent.message == message
    assert message.status == Message.Status.ACCEPTED
    assert message.provider_message_id == sent.provider_message_id
    assert message.events.get().payload == {"message_id": sent.provider_message_id}


def test_provider_ids_are_unique_and_increasing_across_resets() -> None:
    ids = []
    for _ in range(3):
        with override_whatsapp() as memory:
            services.send_text(TO, "one")
            services.send_text(TO, "two")
            ids.extend(s.provider_message_id for s in memory.outbox)
            assert len(memory.outbox) == 2
    assert ids == sorted(ids)
    assert len(set(ids)) == 6
    # Never a fixed id: they start from the clock, so a persistent test database sees new ones.
    assert ids[0] > 10**12


def test_override_whatsapp_is_a_context_manager_that_restores_the_settings() -> None:
    before = dict(django_settings.DJANGO_WHATSAPP)
    with override_whatsapp(SEND_ASYNC=False, MAX_RETRIES=2) as memory:
        conf = get_settings()
        assert (conf.BASE_URL, conf.MAX_RETRIES) == ("memory://", 2)
        assert before["API_KEY"] == conf.API_KEY  # the project's key is kept
        services.send_text(TO, "hi")
        assert len(memory.outbox) == 1
    assert before == django_settings.DJANGO_WHATSAPP
    assert gateway.outbox == []  # cleaned up on the way out


def test_override_whatsapp_sets_a_key_when_the_project_has_none() -> None:
    with override_settings(DJANGO_WHATSAPP={"DEFAULT_SOURCE_ADDR": "Shop"}), override_whatsapp():
        message = services.send_text(TO, "hi")
    assert message.status == Message.Status.ACCEPTED


@override_whatsapp()
def test_override_whatsapp_decorates_a_function() -> None:
    assert get_settings().BASE_URL == "memory://"
    services.send_text(TO, "decorated")
    assert [s.text for s in gateway.outbox] == ["decorated"]


def test_base_url_memory_in_the_settings_alone_is_enough(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "BASE_URL": "memory://",
        "API_KEY": None,
    }
    gateway.reset()
    try:
        message = services.send_text(TO, "from settings")
        assert message.status == Message.Status.ACCEPTED
        assert gateway.outbox[0].message == message
    finally:
        gateway.reset()


# -- failures, each as the real gateway answers it ---------------------------------------------

FAILURES: list[tuple[Any, type[WhatsAppError], str]] = [
    (RateLimited, RateLimited, Message.Status.NOT_SENT),
    (InvalidParameter, InvalidParameter, Message.Status.NOT_SENT),
    (InsufficientBalance, InsufficientBalance, Message.Status.NOT_SENT),
    (ServiceWindowClosed, ServiceWindowClosed, Message.Status.NOT_SENT),
    (GatewayServerError, GatewayServerError, Message.Status.NOT_SENT),
    (AuthenticationFailed, AuthenticationFailed, Message.Status.NOT_SENT),
    (UnexpectedResponse, UnexpectedResponse, Message.Status.UNKNOWN),
    (WhatsAppError, WhatsAppError, Message.Status.NOT_SENT),
    (TransportError(maybe_delivered=False), TransportError, Message.Status.NOT_SENT),
    (TransportError(maybe_delivered=True), TransportError, Message.Status.UNKNOWN),
]


@pytest.mark.parametrize(("given", "raised", "status"), FAILURES)
def test_fail_next_raises_each_error_through_the_real_client(
    whatsapp_gateway: MemoryGateway, given: Any, raised: type[WhatsAppError], status: str
) -> None:
    failures: list[WhatsAppError] = []

    def record(sender: Any, message: Message, error: WhatsAppError, **kwargs: Any) -> None:
        failures.append(error)

    signals.message_failed.connect(record, weak=False)
    try:
        whatsapp_gateway.fail_next(given)
        message = services.send_text(TO, "hello")
    finally:
        signals.message_failed.disconnect(record)
    [error] = failures
    assert type(error) is raised
    assert message.status == status
    assert whatsapp_gateway.outbox == []
    [request] = whatsapp_gateway.requests
    if raised is TransportError:
        assert request.http_status is None
        assert error.maybe_delivered is given.maybe_delivered
    elif raised is not UnexpectedResponse:
        # An HTTP status and a JSON error body, parsed by the client's own code.
        assert error.http_status == request.http_status
        assert error.body == request.answer
        assert message.error_name == request.answer["name"]
    # The next send is accepted again.
    assert services.send_text(TO, "again").status == Message.Status.ACCEPTED


def test_fail_next_with_an_instance_shapes_the_answer(whatsapp_gateway: MemoryGateway) -> None:
    whatsapp_gateway.fail_next(InvalidParameter(name="Invalid Parameter: destination_addr"))
    failures: list[WhatsAppError] = []
    signals.message_failed.connect(lambda error, **kw: failures.append(error), weak=False)
    try:
        services.send_text(TO, "hello")
    finally:
        signals.message_failed.receivers.clear()
    [error] = failures
    assert isinstance(error, InvalidParameter)
    assert error.param == "destination_addr"
    assert (error.code, error.http_status) == (1, 400)


def test_fail_next_times_and_retries(whatsapp_gateway: MemoryGateway, settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "MAX_RETRIES": 2}
    whatsapp_gateway.fail_next(GatewayServerError, times=2)
    message = services.send_text(TO, "hello")
    # Retried at once (Retry-After: 0): two failures, then accepted on the third request.
    assert message.status == Message.Status.ACCEPTED
    assert message.attempts == 3
    assert [r.http_status for r in whatsapp_gateway.requests] == [500, 500, 200]
    whatsapp_gateway.fail_next(RateLimited, times=3)
    assert services.send_text(TO, "again").status == Message.Status.NOT_SENT


def test_fail_next_refuses_what_is_not_a_gateway_error(whatsapp_gateway: MemoryGateway) -> None:
    with pytest.raises(TypeError, match="maybe_delivered"):
        whatsapp_gateway.fail_next(TransportError)
    with pytest.raises(TypeError):
        whatsapp_gateway.fail_next(ValueError)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="times"):
        whatsapp_gateway.fail_next(RateLimited, times=0)
    with pytest.raises(ValueError, match="endpoint"):
        whatsapp_gateway.fail_next(RateLimited, endpoint="other")


# -- status polls ------------------------------------------------------------------------------


def test_polls_answer_the_status_set(whatsapp_gateway: MemoryGateway) -> None:
    message = services.send_text(TO, "hello")
    services.refresh_status(message)
    assert message.status == Message.Status.SENT  # a fresh message: sent (code 0)
    whatsapp_gateway.set_status(message, "delivered")
    services.refresh_status(message)
    assert message.status == Message.Status.DELIVERED
    assert message.events.latest("pk").payload == {
        "message_id": message.provider_message_id,
        "status": 1,
    }
    with pytest.raises(ValueError, match="not a status"):
        whatsapp_gateway.set_status(message, 9)


def test_a_poll_about_an_unknown_id_is_refused_and_polls_can_fail(
    whatsapp_gateway: MemoryGateway,
) -> None:
    stranger = Message.objects.create(
        source_addr="TestCo", destination_addr="380501234567", text="x", status="accepted"
    )
    stranger.provider_message_id = 42
    stranger.save()
    with pytest.raises(InvalidParameter):
        services.refresh_status(stranger)
    message = services.send_text(TO, "hello")
    whatsapp_gateway.fail_next(GatewayServerError, endpoint="status")
    with pytest.raises(GatewayServerError):
        services.refresh_status(message)
    assert message.status == Message.Status.ACCEPTED


# -- reports and inbound messages through the real services ----------------------------------


def test_deliver_status_goes_through_the_services_and_signals(
    whatsapp_gateway: MemoryGateway,
) -> None:
    changes: list[tuple[str, str, str]] = []

    def record(sender: Any, message: Message, old_status: str, new_status: str, **kw: Any) -> None:
        changes.append((old_status, new_status, kw["event"].source))

    message = services.send_text(TO, "hello")
    signals.status_changed.connect(record, weak=False)
    try:
        event = deliver_status(message, "delivered")
        assert deliver_status(message, "delivered") is None  # the same report twice: duplicate
        deliver_status(message, 7)  # a provider code: seen
    finally:
        signals.status_changed.disconnect(record)
    assert event is not None
    assert event.source == "callback"
    assert changes == [("accepted", "delivered", "callback"), ("delivered", "seen", "callback")]
    assert Message.objects.get(pk=message.pk).status == Message.Status.SEEN
    # Polls agree with the last status delivered.
    services.refresh_status(message)
    assert message.events.latest("pk").payload["status"] == 7


def test_deliver_inbound_stores_the_message_opens_the_window_and_signals(
    whatsapp_gateway: MemoryGateway,
) -> None:
    received: list[Message] = []
    signals.message_received.connect(lambda message, **kw: received.append(message), weak=False)
    try:
        message = deliver_inbound("+380 67 000 11 22", "Where is my order?", name="Olena")
        photo = deliver_inbound("380670001122", file_url="https://cdn.example.com/p.jpg")
        again = deliver_inbound("380670001122", "dup", message_id=77)
        same = deliver_inbound("380670001122", "dup", message_id=77)
    finally:
        signals.message_received.receivers.clear()
    assert received == [message, photo, again]
    assert same == again
    assert (message.direction, message.destination_addr, message.text) == (
        "inbound",
        "380670001122",
        "Where is my order?",
    )
    assert photo.message_type == Message.MessageType.MEDIA
    contact = Contact.objects.get(number="380670001122")
    assert contact.last_inbound_at is not None
    assert contact.name == "Olena"
    with pytest.raises(ValueError, match="text, file_url"):
        deliver_inbound("380670001122")
    with pytest.raises(ValueError, match="not one message"):
        deliver_inbound("not a number", "hi")


# -- every send path -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # a bulk send commits each message
def test_templates_media_and_bulk_go_through_the_memory_gateway(
    whatsapp_gateway: MemoryGateway, template: Template
) -> None:
    services.send_media(TO, "https://cdn.example.com/a.png", "caption")
    services.send_template(TO, template, ["Ann", "A-1"], "https://cdn.example.com/h.jpg")
    result = send_bulk(["380500000001", "380500000002"], text="bulk", concurrency=2)
    assert [m.status for m in result.messages] == ["accepted", "accepted"]
    kinds = [s.body["message_type"] for s in whatsapp_gateway.outbox]
    assert kinds == [2, 4, 1, 1]
    assert {s.message for s in whatsapp_gateway.outbox[2:]} == set(result.messages)


def test_a_bare_client_send_has_no_message(whatsapp_gateway: MemoryGateway) -> None:
    with WhatsAppClient.from_settings() as client:
        result = client.send({"destination_addr": 1, "message_type": 1, "text": "x"})
    [sent] = whatsapp_gateway.outbox
    assert sent.provider_message_id == result.message_id
    assert sent.message is None


def test_the_adapter_is_mounted_only_for_memory_urls(settings: Any) -> None:
    with WhatsAppClient.from_settings() as client:
        assert not any(prefix.startswith("memory") for prefix in client.session.adapters)
    with override_whatsapp(), WhatsAppClient.from_settings() as client:
        assert isinstance(
            client.session.get_adapter("memory:/send-whatsapp"), requests.adapters.BaseAdapter
        )


def test_the_memory_gateway_refuses_as_the_gateway_would(
    whatsapp_gateway: MemoryGateway,
) -> None:
    """A request without the key, and a body that is not a JSON object, are refused with the
    gateway's own answers; a message's lookup is kept once found."""
    assert repr(whatsapp_gateway) == "MemoryGateway(outbox=0, requests=0)"
    conf = get_settings()
    url = f"{conf.BASE_URL}{conf.SEND_PATH}"
    with requests.Session() as session:
        session.mount("memory:", MemoryAdapter())
        no_key = session.post(url, json={"destination_addr": 1, "message_type": 1, "text": "x"})
        not_json = session.post(url, data=b"{not json", headers={"Authorization": "Basic eA=="})
        a_list = session.post(url, json=[1, 2], headers={"Authorization": "Basic eA=="})
    assert (no_key.status_code, no_key.json()["name"]) == (401, "Unauthorized")
    for refused in (not_json, a_list):
        assert (refused.status_code, refused.json()["name"]) == (400, "Invalid Parameter: body")
    assert [r.endpoint for r in whatsapp_gateway.requests] == ["send", "send", "send"]
    assert whatsapp_gateway.requests[1].body is None  # what could not be read as JSON
    assert whatsapp_gateway.outbox == []

    message = services.send_text(TO, "hello")
    [sent] = whatsapp_gateway.outbox
    assert sent.message == message
    Message.objects.filter(pk=message.pk).delete()
    assert sent.message == message  # read once, then kept
    assert repr(whatsapp_gateway) == "MemoryGateway(outbox=1, requests=4)"


def test_a_failure_keeps_the_name_and_message_it_was_given(
    whatsapp_gateway: MemoryGateway,
) -> None:
    whatsapp_gateway.fail_next(
        InsufficientBalance("Pay first", name="Balance empty", code=3, http_status=402)
    )
    message = services.send_text(TO, "hello")
    assert (message.error_name, message.error_message, message.error_code) == (
        "Balance empty",
        "Pay first",
        3,
    )
    assert whatsapp_gateway.requests[0].answer == {
        "name": "Balance empty",
        "message": "Pay first",
        "code": 3,
        "status": 402,
    }


def test_set_status_needs_an_accepted_message(whatsapp_gateway: MemoryGateway) -> None:
    draft = Message.objects.create(source_addr="TestCo", destination_addr="380501234567", text="x")
    with pytest.raises(ValueError, match="never accepted"):
        whatsapp_gateway.set_status(draft, "delivered")
    with pytest.raises(TypeError, match="WhatsAppError class or instance"):
        whatsapp_gateway.fail_next(ValueError("not the gateway's"))  # type: ignore[arg-type]
