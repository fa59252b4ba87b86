"""The 24-hour customer-service window: what the app knows of it, the policy, and the sends.

The tests under "the services apply the policy" need the two calls the services make into
``django_whatsapp.window`` (``window.check`` when a message is claimed for sending, and
``window.mark_closed`` when the gateway answers ``ServiceWindowClosed``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from django_whatsapp import services, signals, window
from django_whatsapp.admin.display import explain_error
from django_whatsapp.bulk import send_bulk
from django_whatsapp.conf import get_settings
from django_whatsapp.exceptions import SERVICE_WINDOW_PATTERN, ServiceWindowClosed
from django_whatsapp.models import Contact, Message, StatusEvent, Template

from .conftest import FakeGateway

pytestmark = pytest.mark.django_db

Kind = Message.MessageType
Status = Message.Status
CUSTOMER = "380501234567"
STRANGER = "380509999999"
GATEWAY_WINDOW_CLOSED = {
    "name": "Service Unavailable",
    "message": "Message failed to send because more than 24 hours have passed since the customer "
    "last replied to this number. In this case, you can only send a template message",
    "code": 7,
    "status": 400,
}


def wrote(number: str = CUSTOMER, *, hours_ago: float = 1.0) -> None:
    window.record_inbound(number, timezone.now() - timedelta(hours=hours_ago))


def text_to(number: str) -> Message:
    return Message(message_type=Kind.TEXT, destination_addr=number, source_addr="T", text="Hi")


@pytest.fixture
def policy(settings: Any) -> Any:
    def apply(value: str) -> None:
        settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "SERVICE_WINDOW_POLICY": value}

    return apply


@pytest.fixture
def failures() -> Iterator[list[dict[str, Any]]]:
    calls: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        calls.append(kwargs)

    signals.message_failed.connect(receiver, dispatch_uid="test_window.failures")
    yield calls
    signals.message_failed.disconnect(dispatch_uid="test_window.failures")


# -- what the app knows ------------------------------------------------------------------------


def test_a_number_that_never_wrote_has_no_open_window() -> None:
    state = window.state(STRANGER)
    assert (state.is_open, state.last_inbound_at, state.closes_at, state.remaining) == (
        False,
        None,
        None,
        None,
    )


def test_open_for_24_hours_after_the_customer_wrote() -> None:
    wrote(hours_ago=1)
    state = window.state(CUSTOMER)
    assert state.is_open
    assert state.remaining is not None
    assert timedelta(hours=22, minutes=59) < state.remaining <= timedelta(hours=23)
    assert state.closes_at == state.last_inbound_at + timedelta(hours=24)  # type: ignore[operator]


def test_closed_24_hours_after() -> None:
    wrote(hours_ago=24.01)
    assert not window.state(CUSTOMER).is_open


def test_the_window_is_judged_at_the_time_asked() -> None:
    wrote(hours_ago=1)
    later = timezone.now() + timedelta(hours=23, minutes=30)
    assert not window.state(CUSTOMER, now=later).is_open


def test_the_gateway_saying_closed_closes_it_until_the_customer_writes_again() -> None:
    wrote(hours_ago=1)
    assert window.mark_closed(CUSTOMER) is True
    state = window.state(CUSTOMER)
    assert not state.is_open
    assert state.closed_by_gateway
    wrote(hours_ago=0)
    assert window.state(CUSTOMER).is_open


def test_marking_an_unknown_number_stores_nothing() -> None:
    assert window.mark_closed(STRANGER) is False
    assert Contact.objects.count() == 0
    assert not window.state(STRANGER).is_open


def test_record_inbound_keeps_the_latest_time_and_the_name() -> None:
    now = timezone.now()
    window.record_inbound(CUSTOMER, now - timedelta(hours=1), name="Ann")
    window.record_inbound(CUSTOMER, now - timedelta(hours=5))  # a late, older report
    contact = Contact.objects.get()
    assert contact.last_inbound_at == now - timedelta(hours=1)
    assert contact.name == "Ann"
    window.record_inbound(CUSTOMER, now, name="Ann B.")
    contact.refresh_from_db()
    assert (contact.last_inbound_at, contact.name) == (now, "Ann B.")
    assert str(contact) == f"+{CUSTOMER}"


def test_many_windows_in_one_query(django_assert_num_queries: Any) -> None:
    wrote(CUSTOMER)
    wrote("380500000100", hours_ago=30)
    with django_assert_num_queries(1):
        states = window.states([CUSTOMER, "380500000100", STRANGER])
    assert {n: s.is_open for n, s in states.items()} == {
        CUSTOMER: True,
        "380500000100": False,
        STRANGER: False,
    }


# -- the policy --------------------------------------------------------------------------------


def test_the_policy_is_off_by_default_and_checks_nothing(django_assert_num_queries: Any) -> None:
    assert get_settings().SERVICE_WINDOW_POLICY == "off"
    with django_assert_num_queries(0):
        assert window.check(text_to(STRANGER)) is None


@pytest.mark.parametrize("value", ["warn", "enforce"])
def test_templates_and_received_messages_are_never_checked(policy: Any, value: str) -> None:
    policy(value)
    template = Message(message_type=Kind.TEMPLATE, destination_addr=STRANGER)
    received = text_to(STRANGER)
    received.direction = Message.Direction.INBOUND
    assert window.check(template) is None
    assert window.check(received) is None


@pytest.mark.parametrize("value", ["warn", "enforce"])
def test_an_open_window_passes(policy: Any, value: str) -> None:
    policy(value)
    wrote()
    assert window.check(text_to(CUSTOMER)) is None


def test_warn_says_so_and_logs(policy: Any, caplog: Any) -> None:
    policy("warn")
    with caplog.at_level(logging.WARNING, logger="django_whatsapp.window"):
        warning = window.check(text_to(STRANGER))
    assert warning is not None
    assert f"+{STRANGER}" in warning
    assert any("24-hour window" in r.getMessage() for r in caplog.records)


def test_enforce_raises_an_error_that_reads_like_the_gateways(policy: Any) -> None:
    policy("enforce")
    image = Message(message_type=Kind.MEDIA, destination_addr=STRANGER, file_url="https://x/a.png")
    with pytest.raises(ServiceWindowClosed) as caught:
        window.check(image)
    error = caught.value
    assert error.name == "Service window closed"
    assert SERVICE_WINDOW_PATTERN.search(f"{error.name} {error.message}")
    assert "never written" in error.message
    assert error.http_status is None
    assert not error.retryable


@pytest.mark.parametrize(
    ("given", "expected"), [("off", "off"), (" Warn ", "warn"), ("ENFORCE", "enforce")]
)
def test_policy_setting(settings: Any, given: str, expected: str) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "SERVICE_WINDOW_POLICY": given}
    assert window.policy() == expected


@pytest.mark.parametrize("given", ["strict", "", None, True])
def test_a_bad_policy_is_improperly_configured(settings: Any, given: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "SERVICE_WINDOW_POLICY": given}
    with pytest.raises(ImproperlyConfigured, match="SERVICE_WINDOW_POLICY"):
        get_settings()


def test_sandbox_enforce_window_must_be_a_boolean(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "SANDBOX_ENFORCE_WINDOW": "yes"}
    with pytest.raises(ImproperlyConfigured, match="SANDBOX_ENFORCE_WINDOW"):
        get_settings()


# -- the services apply the policy (needs the services' calls into window.py) ------------------


def test_enforce_refuses_a_text_locally_and_keeps_it_not_sent(
    gateway: FakeGateway, policy: Any, failures: list
) -> None:
    policy("enforce")

    message = services.send_text(STRANGER, "Are you there?")

    assert gateway.requests == []
    message.refresh_from_db()
    assert message.status == Status.NOT_SENT
    assert message.error_name == "Service window closed"
    assert "24 hours" in message.error_message
    assert message.submitted_at is None
    event = message.events.get()
    assert (event.status, event.source) == (Status.NOT_SENT, StatusEvent.Source.SEND)
    assert event.payload["exception"] == "ServiceWindowClosed"
    assert [type(call["error"]) for call in failures] == [ServiceWindowClosed]
    why = explain_error(message)
    assert why is not None
    assert "24-hour" in why.title


def test_enforce_refuses_an_image_too(gateway: FakeGateway, policy: Any) -> None:
    policy("enforce")
    message = services.send_media(STRANGER, "https://cdn.example.com/a.png")
    assert message.status == Status.NOT_SENT
    assert gateway.requests == []


def test_enforce_lets_a_text_through_after_the_customer_wrote(
    gateway: FakeGateway, policy: Any
) -> None:
    policy("enforce")
    gateway.accept()
    wrote()
    message = services.send_text(CUSTOMER, "Yes, it is ready.")
    assert message.status == Status.ACCEPTED
    assert len(gateway.sent_bodies()) == 1


def test_enforce_lets_templates_through(
    gateway: FakeGateway, policy: Any, template: Template
) -> None:
    policy("enforce")
    gateway.accept()
    message = services.send_template(STRANGER, template, ["Ann", "A-1"], "https://x.io/h.jpg")
    assert message.status == Status.ACCEPTED


def test_warn_sends_anyway_and_logs(gateway: FakeGateway, policy: Any, caplog: Any) -> None:
    policy("warn")
    gateway.accept()
    with caplog.at_level(logging.WARNING, logger="django_whatsapp.window"):
        message = services.send_text(STRANGER, "Hello")
    assert message.status == Status.ACCEPTED
    assert len(gateway.sent_bodies()) == 1
    assert any("24-hour window" in r.getMessage() for r in caplog.records)


def test_off_sends_without_looking(gateway: FakeGateway) -> None:
    gateway.accept()
    assert services.send_text(STRANGER, "Hello").status == Status.ACCEPTED


def test_a_gateway_refusal_marks_the_window_closed(gateway: FakeGateway, policy: Any) -> None:
    """The app thought the window open; the gateway knows better."""
    wrote(hours_ago=2)
    gateway.answer(GATEWAY_WINDOW_CLOSED, 400)

    message = services.send_text(CUSTOMER, "Hello")

    assert message.status == Status.NOT_SENT
    assert Contact.objects.get().window_closed_at is not None
    assert not window.state(CUSTOMER).is_open
    # From now on, "enforce" refuses locally, without asking the gateway again.
    policy("enforce")
    again = services.send_text(CUSTOMER, "Hello again")
    assert again.status == Status.NOT_SENT
    assert again.error_name == "Service window closed"
    assert len(gateway.sent_bodies()) == 1


def test_a_refused_message_goes_out_on_retry_once_the_customer_wrote(
    gateway: FakeGateway, policy: Any
) -> None:
    policy("enforce")
    message = services.send_text(STRANGER, "Your order is ready")
    assert message.status == Status.NOT_SENT
    wrote(STRANGER, hours_ago=0)
    gateway.accept()
    services.retry_message(message)
    assert message.status == Status.ACCEPTED


@pytest.mark.django_db(transaction=True)
def test_enforce_in_a_bulk_send(gateway: FakeGateway, policy: Any) -> None:
    policy("enforce")
    gateway.accept()
    wrote(CUSTOMER)
    result = send_bulk([CUSTOMER, STRANGER], text="Sale today", concurrency=2)
    by_number = {m.destination_addr: m.status for m in result.messages}
    assert by_number == {CUSTOMER: Status.ACCEPTED, STRANGER: Status.NOT_SENT}
    assert [b["destination_addr"] for b in gateway.sent_bodies()] == [int(CUSTOMER)]
