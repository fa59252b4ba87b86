"""The use cases: send, refresh, retry, apply a report.

This is the only module that joins the models, the gateway client and the signals. Every status
change goes through :func:`apply_status` (or, for an operator's retry, :func:`retry_message`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from . import signals
from .client import WhatsAppClient
from .conf import WhatsAppSettings, get_settings
from .exceptions import WhatsAppError
from .models import (
    PROVIDER_CODES,
    Message,
    StatusEvent,
    Template,
    normalize_status,
    resolve_status,
)
from .payloads import message_payload
from .signing import callback_url
from .validation import clean_template, validate_message

logger = logging.getLogger("django_whatsapp")

Status = Message.Status
Source = StatusEvent.Source
#: The statuses from which a message may be claimed for sending.
SENDABLE = (Status.DRAFT, Status.QUEUED)


class ReportMismatch(ValueError):
    """A report names another provider message than the one its message already has."""


class NotRetryable(ValueError):
    """Only a message that was not sent can be retried."""


# -- the client --------------------------------------------------------------------------------

_local = threading.local()


def get_client(conf: WhatsAppSettings | None = None) -> WhatsAppClient:
    """This thread's client for the current settings (one pooled HTTP session each)."""
    conf = conf or get_settings()
    key = (conf.API_KEY, conf.send_url, conf.status_url, conf.TIMEOUT, conf.MAX_RETRIES)
    clients: dict[tuple[Any, ...], WhatsAppClient] = _local.__dict__.setdefault("clients", {})
    client = clients.get(key)
    if client is None:
        if len(clients) >= 8:
            for old in clients.values():
                old.close()
            clients.clear()
        client = clients[key] = WhatsAppClient.from_settings(conf)
    return client


# -- reports -----------------------------------------------------------------------------------


def apply_status(
    message: Message, status: str | int, *, source: str, payload: dict[str, Any] | None = None
) -> StatusEvent | None:
    """Record a status report and move the message to the higher-ranked status (SPEC section 5).

    ``status`` is a status name or a provider code. Returns the new :class:`StatusEvent`, or
    ``None`` when the report is an exact duplicate of one already recorded (nothing changes).
    Sends ``status_changed`` when the status changed.
    """
    return _apply(message, status, source=source, payload=payload)


def receive_report(
    message: Message,
    status: str | int,
    *,
    source: str,
    payload: dict[str, Any] | None = None,
    provider_message_id: int | None = None,
) -> StatusEvent | None:
    """Apply a report from the gateway (callback or poll) that may carry the provider's id.

    A message whose send answer was lost has no provider id yet: it adopts the reported one, in
    the same transaction as the report. A report naming a different id than the message has
    raises :class:`ReportMismatch` and changes nothing.
    """
    return _apply(
        message, status, source=source, payload=payload, provider_message_id=provider_message_id
    )


def _adopt(message: Message, current_id: int | None, provider_message_id: int) -> None:
    if current_id == provider_message_id:
        message.provider_message_id = current_id  # a stale copy learns what was adopted
        return
    if current_id is not None:
        raise ReportMismatch(_("The report is about another message."))
    try:
        with transaction.atomic():
            Message.objects.filter(pk=message.pk).update(provider_message_id=provider_message_id)
    except IntegrityError:
        raise ReportMismatch(_("The reported message_id belongs to another message.")) from None
    message.provider_message_id = provider_message_id


def _apply(
    message: Message,
    status: str | int,
    *,
    source: str,
    payload: dict[str, Any] | None,
    provider_message_id: int | None = None,
) -> StatusEvent | None:
    new = normalize_status(status)
    if source not in Source.values:
        raise ValueError(f"unknown source {source!r}")
    with transaction.atomic():
        # The row lock orders concurrent reports about one message.
        old, current_id = (
            Message.objects.select_for_update()
            .values_list("status", "provider_message_id")
            .get(pk=message.pk)
        )
        if provider_message_id is not None:
            _adopt(message, current_id, provider_message_id)
        try:
            with transaction.atomic():
                event = StatusEvent.objects.create(
                    message_id=message.pk,
                    status=new,
                    provider_status=PROVIDER_CODES.get(new),
                    source=source,
                    payload=payload if payload is not None else {},
                )
        except IntegrityError:
            duplicate = StatusEvent.objects.filter(
                message_id=message.pk, status=new, source=source
            ).exists()
            if not duplicate:
                raise
            message.status = old
            return None
        final = resolve_status(old, new)
        if final != old:
            now = timezone.now()
            Message.objects.filter(pk=message.pk).update(status=final, status_changed_at=now)
            message.status_changed_at = now
    message.status = final
    if final != old:
        logger.info("WhatsApp message %s: %s -> %s (%s)", message.pk, old, final, source)
        signals.status_changed.send(
            sender=Message, message=message, old_status=old, new_status=final, event=event
        )
    return event


# -- sending -----------------------------------------------------------------------------------


def _error_payload(error: WhatsAppError) -> dict[str, Any]:
    body = error.body if isinstance(error.body, dict | list | str | int | float) else None
    return {
        "exception": type(error).__name__,
        "name": error.name,
        "message": error.message,
        "code": error.code,
        "status": error.status,
        "http_status": error.http_status,
        "maybe_delivered": error.maybe_delivered,
        "body": body,
    }


def _record_failure(message: Message, error: WhatsAppError) -> Message:
    Message.objects.filter(pk=message.pk).update(
        error_code=error.code,
        error_name=error.name[:255],
        error_message=error.message,
        attempts=F("attempts") + error.attempts,
    )
    message.refresh_from_db(fields=["error_code", "error_name", "error_message", "attempts"])
    status = Status.UNKNOWN if error.maybe_delivered else Status.NOT_SENT
    logger.warning(
        "WhatsApp message %s was not sent: %s: %s", message.pk, type(error).__name__, error.name
    )
    apply_status(message, status, source=Source.SEND, payload=_error_payload(error))
    signals.message_failed.send(sender=Message, message=message, error=error)
    return message


def send_message(message: Message, *, client: WhatsAppClient | None = None) -> Message:
    """Submit a message to the gateway, at most once however many callers ask at the same time.

    An unsaved message is validated and saved first. The row is committed before the gateway is
    called, then claimed with a conditional UPDATE: only the caller that moves it from ``draft``
    or ``queued`` to ``sending`` submits it; the others get it back as it is. The result is
    returned on the message: ``accepted`` with ``provider_message_id``, or ``not_sent`` /
    ``unknown`` with ``error_*`` set. Raises ``ValidationError`` (nothing sent) for an invalid
    message.
    """
    conf = get_settings()
    # A configuration error (no API key, no callback secret) surfaces before any row is written.
    client = client or get_client(conf)
    callback = callback_url(message.uuid, conf)
    if message.pk is None:
        validate_message(message)
        message.save()
    if message.status not in SENDABLE:
        return message
    validate_message(message)
    payload = message_payload(message, callback_url=callback)
    now = timezone.now()
    claimed = Message.objects.filter(pk=message.pk, status__in=SENDABLE).update(
        status=Status.SENDING,
        status_changed_at=now,
        submitted_at=now,
        source_addr=message.source_addr,
        destination_addr=message.destination_addr,
        text=message.text,
        file_url=message.file_url,
        template_params=message.template_params,
    )
    if not claimed:
        message.refresh_from_db()
        return message
    message.status, message.status_changed_at, message.submitted_at = Status.SENDING, now, now
    try:
        signals.message_sending.send(sender=Message, message=message, payload=payload)
    except Exception as exc:
        # Nothing went to the gateway: the message is not sent, with the reason kept.
        _record_failure(
            message, WhatsAppError(f"{type(exc).__name__}: {exc}", name="Not submitted")
        )
        raise
    try:
        result = client.send(payload)
    except WhatsAppError as error:
        return _record_failure(message, error)
    except Exception as exc:
        # A bug or an unforeseen failure on the way: the request may have gone out, so the
        # message is ``unknown`` (a callback can still settle it), never stuck in ``sending``.
        lost = WhatsAppError(f"{type(exc).__name__}: {exc}", name="Send interrupted")
        lost.maybe_delivered = True
        _record_failure(message, lost)
        raise
    try:
        with transaction.atomic():
            Message.objects.filter(pk=message.pk).update(
                provider_message_id=result.message_id,
                attempts=F("attempts") + result.attempts,
                error_code=None,
                error_name="",
                error_message="",
            )
    except IntegrityError:
        clash = WhatsAppError(
            _("The gateway's message_id %(id)s is already used by another message.")
            % {"id": result.message_id},
            name="Duplicate message_id",
            body=result.body,
        )
        clash.attempts = result.attempts
        clash.maybe_delivered = True
        return _record_failure(message, clash)
    message.refresh_from_db(
        fields=["provider_message_id", "attempts", "error_code", "error_name", "error_message"]
    )
    apply_status(message, Status.ACCEPTED, source=Source.SEND, payload=result.body)
    logger.info("WhatsApp message %s accepted as %s", message.pk, result.message_id)
    signals.message_sent.send(sender=Message, message=message)
    return message


def _default_sender(source_addr: str | None) -> str:
    return source_addr or get_settings().DEFAULT_SOURCE_ADDR or ""


def send_text(
    to: str | int,
    text: str,
    *,
    source_addr: str | None = None,
    created_by: Any = None,
    client: WhatsAppClient | None = None,
) -> Message:
    """Send a text message to ``to`` (digits; ``+``, spaces and dashes are stripped)."""
    message = Message(
        message_type=Message.MessageType.TEXT,
        destination_addr=str(to),
        source_addr=_default_sender(source_addr),
        text=text,
        created_by=created_by,
    )
    return send_message(message, client=client)


def send_media(
    to: str | int,
    file_url: str,
    text: str = "",
    *,
    source_addr: str | None = None,
    created_by: Any = None,
    client: WhatsAppClient | None = None,
) -> Message:
    """Send an image (a .jpg, .jpeg or .png URL) with an optional caption."""
    message = Message(
        message_type=Message.MessageType.MEDIA,
        destination_addr=str(to),
        source_addr=_default_sender(source_addr),
        file_url=file_url,
        text=text,
        created_by=created_by,
    )
    return send_message(message, client=client)


def send_template(
    to: str | int,
    template: Template | str,
    params: Sequence[Any] = (),
    header: str | None = None,
    *,
    source_addr: str | None = None,
    created_by: Any = None,
    client: WhatsAppClient | None = None,
) -> Message:
    """Send a registered template (a :class:`Template` or its name) with its body parameters
    and, when the template has a header, the header's text or image URL."""
    errors: dict[str, Any] = {}
    resolved: Template | None = None
    try:
        resolved = clean_template(template)
    except ValidationError as error:
        errors["template"] = error
    message = Message(
        message_type=Message.MessageType.TEMPLATE,
        destination_addr=str(to),
        source_addr=_default_sender(source_addr),
        template=resolved,
        template_params={"body": [str(p) for p in params], "header": header},
        created_by=created_by,
    )
    if errors:
        # Report the template's own error together with every other field's error.
        try:
            validate_message(message)
        except ValidationError as error:
            errors = {**error.error_dict, **errors}
        raise ValidationError(errors)
    return send_message(message, client=client)


# -- after the send ----------------------------------------------------------------------------


def refresh_status(message: Message, *, client: WhatsAppClient | None = None) -> Message:
    """Poll the gateway for the message's status and apply it. Raises ``ValueError`` when the
    message has no provider id yet, and :class:`WhatsAppError` when the gateway fails."""
    if message.provider_message_id is None:
        raise ValueError(_("The message has no provider id yet, so its status cannot be polled."))
    result = (client or get_client()).get_status(message.provider_message_id)
    receive_report(
        message,
        result.status,
        source=Source.POLL,
        payload=result.body,
        provider_message_id=result.message_id,
    )
    return message


def retry_message(
    message: Message, *, user: Any = None, client: WhatsAppClient | None = None
) -> Message:
    """An operator's retry of a ``not_sent`` message: back to ``queued`` (an ``admin`` event),
    then sent again. Raises :class:`NotRetryable` for a message in any other status."""
    now = timezone.now()
    with transaction.atomic():
        moved = Message.objects.filter(pk=message.pk, status=Status.NOT_SENT).update(
            status=Status.QUEUED,
            status_changed_at=now,
            error_code=None,
            error_name="",
            error_message="",
        )
        if not moved:
            message.refresh_from_db()
            raise NotRetryable(_("Only a message that was not sent can be retried."))
        event = StatusEvent.objects.create(
            message=message,
            status=Status.QUEUED,
            source=Source.ADMIN,
            payload={"action": "retry", "user": str(user) if user is not None else None},
        )
    message.refresh_from_db()
    signals.status_changed.send(
        sender=Message,
        message=message,
        old_status=Status.NOT_SENT,
        new_status=Status.QUEUED,
        event=event,
    )
    return send_message(message, client=client)
