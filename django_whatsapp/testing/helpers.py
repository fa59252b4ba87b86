"""Helpers for a project's own tests: turn the memory gateway on, and make the gateway report a
status or deliver a customer's message through the app's real services and signals."""

from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings
from django.test.utils import TestContextDecorator, override_settings

from .. import inbound, services
from ..conf import MEMORY_URL, SETTING_NAME
from ..models import InboundReport, Message, StatusEvent
from ..status_rule import PROVIDER_CODES, normalize_status
from .transport import MemoryGateway, gateway, next_provider_id

#: The API key used when the project's settings have none (the memory gateway wants one).
TEST_API_KEY = "memory-test-key"


class override_whatsapp(TestContextDecorator):
    """Send through the in-process memory gateway: ``DJANGO_WHATSAPP["BASE_URL"]`` becomes
    ``"memory://"`` (with a test ``API_KEY`` when none is set, and ``MAX_RETRIES`` 0 so that
    one failure fails a send), the outbox is emptied on the way in and out.

    ``overrides`` are further ``DJANGO_WHATSAPP`` keys (``MAX_RETRIES=3``, ``SEND_ASYNC=True``...).
    A decorator (of a function or a ``TestCase`` class) and a context manager, which gives the
    :class:`~django_whatsapp.testing.MemoryGateway`::

        with override_whatsapp() as wa:
            services.send_text("380501234567", "Hi")
            assert wa.outbox[0].body["text"] == "Hi"
    """

    def __init__(self, **overrides: Any) -> None:
        self.overrides = overrides
        self._active: list[override_settings] = []
        super().__init__()

    def enable(self) -> MemoryGateway:
        current = dict(getattr(settings, SETTING_NAME, {}) or {})
        values = {
            **current,
            "BASE_URL": MEMORY_URL,
            "API_KEY": current.get("API_KEY") or TEST_API_KEY,
            "MAX_RETRIES": 0,
            **self.overrides,
        }
        inner = override_settings(**{SETTING_NAME: values})
        inner.enable()
        self._active.append(inner)
        gateway.reset()
        return gateway

    def __enter__(self) -> MemoryGateway:  # type: ignore[override]
        return self.enable()

    def disable(self) -> None:
        self._active.pop().disable()
        gateway.reset()


def _provider_code(status: str | int) -> int | None:
    name = normalize_status(status)
    return PROVIDER_CODES.get(name)


def deliver_status(message: Message, status: str | int) -> StatusEvent | None:
    """The gateway reports ``status`` (a name such as ``"delivered"`` or the provider's code
    0-7) about ``message``, as its status callback would: applied by the real services
    (``services.receive_report``, source ``callback``), sending ``status_changed`` when the
    status changes. Status polls answer it from then on. Returns the new event, or ``None`` for
    a duplicate report."""
    code = _provider_code(status)
    payload: dict[str, Any] = {"status": code if code is not None else str(status)}
    if message.provider_message_id is not None:
        payload["message_id"] = message.provider_message_id
        if code is not None:
            gateway.set_status(message.provider_message_id, code)
    return services.receive_report(
        message,
        status,
        source=StatusEvent.Source.CALLBACK,
        payload=payload,
        provider_message_id=message.provider_message_id,
    )


def deliver_inbound(
    from_number: str,
    text: str | None = None,
    file_url: str | None = None,
    *,
    to: str | None = None,
    name: str | None = None,
    message_id: int | None = None,
) -> Message:
    """A customer (``from_number``) writes ``text`` and/or an image (``file_url``) to us (``to``,
    ``DEFAULT_SOURCE_ADDR`` by default): the report is stored and read by the real inbound
    path (:mod:`django_whatsapp.inbound`), which opens the customer-service window and sends
    ``message_received``. Returns the inbound Message (the one stored before, when the same
    ``message_id`` is delivered again). Raises ``ValueError`` when the report is not one
    message (no text and no image, a sender that is not a number)."""
    if not text and not file_url:
        raise ValueError("deliver_inbound needs text, file_url or both.")
    data: dict[str, Any] = {
        "message_id": message_id if message_id is not None else next_provider_id(),
        "source_addr": str(from_number),
        "message_type": 2 if file_url else 1,
        "text": text or "",
        "timestamp": int(time.time()),
    }
    if to is not None:
        data["destination_addr"] = to
    if file_url:
        data["file_url"] = file_url
    if name:
        data["name"] = name
    report = inbound.store_report(
        method="POST",
        content_type="application/json",
        body=json.dumps(data, ensure_ascii=False).encode("utf-8"),
    )
    receipt = inbound.receive(report, data)
    found = [*receipt.created, *receipt.duplicates]
    if not found or receipt.outcome == InboundReport.Outcome.PARTIAL:
        raise ValueError(f"The inbound report was not one message: {report.detail or '?'}")
    return found[0]
