"""The signals of SPEC section 7: each sent exactly once per real change, with its arguments.

They do not test the wire: the sends go to the in-process memory gateway (the
``whatsapp_gateway`` fixture of django_whatsapp.testing's pytest plugin)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.dispatch import Signal

from django_whatsapp import services, signals
from django_whatsapp.exceptions import InvalidParameter, UnexpectedResponse, WhatsAppError
from django_whatsapp.models import Message, StatusEvent
from django_whatsapp.testing import MemoryGateway

from .factories import make_message

pytestmark = pytest.mark.django_db

TO = "380501234567"
SIGNALS = {
    "message_sending": signals.message_sending,
    "message_sent": signals.message_sent,
    "message_failed": signals.message_failed,
    "status_changed": signals.status_changed,
}


class Recorder:
    """Records every signal it receives, with the message's status at that moment."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._receivers: list[tuple[Signal, Any]] = []

    def connect(self) -> None:
        for name, signal in SIGNALS.items():

            def receiver(sender: Any, name: str = name, **kwargs: Any) -> None:
                kwargs.pop("signal")
                message = kwargs["message"]
                # What the database says while the receiver runs, not only the object.
                stored = Message.objects.get(pk=message.pk).status
                self.calls.append(
                    (name, {**kwargs, "sender": sender, "status": message.status, "db": stored})
                )

            signal.connect(receiver, weak=False)
            self._receivers.append((signal, receiver))

    def disconnect(self) -> None:
        for signal, receiver in self._receivers:
            signal.disconnect(receiver)

    def of(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for signal_name, kwargs in self.calls if signal_name == name]

    def names(self) -> list[str]:
        return [name for name, _kwargs in self.calls]

    def changes(self) -> list[tuple[str, str]]:
        return [(c["old_status"], c["new_status"]) for c in self.of("status_changed")]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = Recorder()
    recorder.connect()
    yield recorder
    recorder.disconnect()


def test_a_successful_send(whatsapp_gateway: MemoryGateway, recorder: Recorder) -> None:
    message = services.send_text("+380 50 123 45 67", "hello")
    assert recorder.names() == ["message_sending", "status_changed", "message_sent"]
    [sending] = recorder.of("message_sending")
    assert sending["message"] is message
    assert sending["sender"] is Message
    assert (sending["status"], sending["db"]) == ("sending", "sending")
    [sent_body] = whatsapp_gateway.outbox
    assert sending["payload"] == sent_body.body
    [changed] = recorder.of("status_changed")
    assert (changed["old_status"], changed["new_status"]) == ("sending", "accepted")
    assert changed["message"] is message
    assert changed["db"] == "accepted"
    assert isinstance(changed["event"], StatusEvent)
    assert changed["event"] == message.events.get()
    assert (changed["event"].status, changed["event"].source) == ("accepted", "send")
    [sent] = recorder.of("message_sent")
    assert sent["message"] is message
    assert (sent["status"], sent["db"]) == ("accepted", "accepted")
    assert sent["message"].provider_message_id == sent_body.provider_message_id


def test_a_refused_send(whatsapp_gateway: MemoryGateway, recorder: Recorder) -> None:
    whatsapp_gateway.fail_next(InvalidParameter)
    message = services.send_text(TO, "hello")
    assert recorder.names() == ["message_sending", "status_changed", "message_failed"]
    [failed] = recorder.of("message_failed")
    assert failed["message"] is message
    assert failed["sender"] is Message
    assert isinstance(failed["error"], InvalidParameter)
    assert failed["error"].param == "text"
    assert (failed["status"], failed["db"]) == ("not_sent", "not_sent")
    assert recorder.changes() == [("sending", "not_sent")]


def test_a_send_with_an_unknown_outcome(
    whatsapp_gateway: MemoryGateway, recorder: Recorder
) -> None:
    whatsapp_gateway.fail_next(UnexpectedResponse)
    services.send_text(TO, "hello")
    assert recorder.names() == ["message_sending", "status_changed", "message_failed"]
    assert isinstance(recorder.of("message_failed")[0]["error"], UnexpectedResponse)
    assert recorder.changes() == [("sending", "unknown")]


def test_no_signal_for_invalid_input(whatsapp_gateway: MemoryGateway, recorder: Recorder) -> None:
    with pytest.raises(ValidationError):
        services.send_text("not a number", "")
    message = make_message()
    with pytest.raises(ValueError, match="unknown status"):
        services.apply_status(message, "bogus", source="callback")
    with pytest.raises(ValueError, match="unknown source"):
        services.apply_status(message, "seen", source="carrier pigeon")
    assert recorder.calls == []
    assert whatsapp_gateway.requests == []


def test_no_signal_for_a_second_send(whatsapp_gateway: MemoryGateway, recorder: Recorder) -> None:
    message = services.send_text(TO, "hello")
    stale = Message.objects.get(pk=message.pk)
    stale.status = "draft"
    recorder.calls.clear()
    services.send_message(message)
    services.send_message(stale)
    assert recorder.calls == []
    assert len(whatsapp_gateway.requests) == 1


def test_status_changed_once_per_real_change(recorder: Recorder) -> None:
    message = make_message()
    delivered = services.apply_status(message, "delivered", source="callback")
    assert services.apply_status(message, "delivered", source="callback") is None  # duplicate
    services.apply_status(message, "sent", source="callback")  # older
    services.apply_status(message, "delivered", source="poll")  # same status, other source
    seen = services.apply_status(message, "seen", source="poll")
    assert recorder.changes() == [("accepted", "delivered"), ("delivered", "seen")]
    first, second = recorder.of("status_changed")
    assert (first["event"], second["event"]) == (delivered, seen)
    assert first["sender"] is Message
    assert first["message"] is message
    assert first["db"] == "delivered"
    assert message.events.count() == 4


def test_a_poll_and_an_adopted_report_signal_their_change(
    whatsapp_gateway: MemoryGateway, recorder: Recorder
) -> None:
    polled = make_message(provider_message_id=1001)
    whatsapp_gateway.set_status(1001, 7)
    services.refresh_status(polled)
    lost = make_message(status="unknown", provider_message_id=None)
    services.receive_report(lost, 1, source="callback", provider_message_id=2002)
    [poll, callback] = recorder.of("status_changed")
    assert (poll["old_status"], poll["new_status"], poll["event"].source) == (
        "accepted",
        "seen",
        "poll",
    )
    assert (callback["old_status"], callback["new_status"]) == ("unknown", "delivered")
    assert callback["message"].provider_message_id == 2002
    assert recorder.names() == ["status_changed", "status_changed"]


def test_a_retry(whatsapp_gateway: MemoryGateway, recorder: Recorder) -> None:
    whatsapp_gateway.fail_next(InvalidParameter)
    message = services.send_text(TO, "hello")
    recorder.calls.clear()
    services.retry_message(message)
    assert recorder.names() == [
        "status_changed",
        "message_sending",
        "status_changed",
        "message_sent",
    ]
    assert recorder.changes() == [("not_sent", "queued"), ("sending", "accepted")]
    queued = recorder.of("status_changed")[0]
    assert (queued["event"].source, queued["db"]) == ("admin", "queued")


def test_no_signal_when_a_retry_is_refused(
    whatsapp_gateway: MemoryGateway, recorder: Recorder
) -> None:
    message = make_message(status="accepted")
    with pytest.raises(services.NotRetryable):
        services.retry_message(message)
    assert recorder.calls == []


def test_a_raising_message_sending_receiver_stops_the_send(
    whatsapp_gateway: MemoryGateway, recorder: Recorder
) -> None:

    def veto(sender: Any, message: Message, payload: dict[str, Any], **kwargs: Any) -> None:
        raise RuntimeError("blocked by policy")

    signals.message_sending.connect(veto, weak=False)
    try:
        with pytest.raises(RuntimeError, match="blocked by policy"):
            services.send_text(TO, "hello")
    finally:
        signals.message_sending.disconnect(veto)
    assert whatsapp_gateway.requests == []
    message = Message.objects.get()
    assert message.status == "not_sent"
    assert message.error_name == "Not submitted"
    assert message.error_message == "RuntimeError: blocked by policy"
    assert message.attempts == 0
    assert message.events.get().payload["exception"] == "WhatsAppError"
    [failed] = recorder.of("message_failed")
    assert isinstance(failed["error"], WhatsAppError)
    assert failed["error"].maybe_delivered is False
    assert recorder.changes() == [("sending", "not_sent")]
    assert recorder.of("message_sent") == []
