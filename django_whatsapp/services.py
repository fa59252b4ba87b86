"""The use cases: send, refresh, retry, apply a report, resync (:mod:`.resync`).

This is the only module that joins the models, the gateway client and the signals. Every status
change goes through :func:`apply_status` (or, for an operator's retry, :func:`retry_message`).

With ``SEND_ASYNC`` on, every send stores the message as ``queued`` and hands it to Django's task
framework when the transaction commits (:func:`enqueue_message`); a worker's task
(``django_whatsapp.tasks.send_message_task``) then calls :func:`send_message`, whose claim keeps a
message from being submitted twice however many workers get the job.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from . import expiry, idempotency, signals
from .bulk import BulkResult
from .bulk import send_bulk as _send_bulk
from .campaigns.audience import campaign_from_csv, create_campaign
from .campaigns.control import (
    CampaignProgress,
    CampaignStateError,
    campaign_progress,
    campaign_results,
    cancel_campaign,
    pause_campaign,
    release_account,
    resume_campaign,
    start_campaign,
)
from .campaigns.duplicate import copy_campaign
from .campaigns.estimate import CampaignEstimate, campaign_estimate
from .client import WhatsAppClient
from .conf import DEFAULT_ACCOUNT, get_settings
from .fastpaths.by_uuid import Lookup, find_message, lookup_for
from .metadata import clean_links
from .models import Message, StatusEvent, Template
from .resync import (
    Polled,
    ResyncSummary,
    apply_poll,
    apply_polls,
    poll_statuses,
    resync_selection,
    resync_statuses,
)
from .sending import (
    claim_for_sending,
    ensure_campaign_running,
    get_client,
    pooled_client,
    record_send,
    send_now,
)
from .signing import callback_url
from .status_rule import (
    ReceiveFunctionMissing,
    ReportMismatch,
    apply_report,
    apply_status,
    receive_report,
    receive_report_by_uuid,
)
from .validation import clean_template, validate_message

logger = logging.getLogger("django_whatsapp")

Status = Message.Status
Source = StatusEvent.Source

# Names that live in lower rooms, documented here as the services' surface (SPEC section 6).
__all__ = [
    "BulkResult",
    "CampaignEstimate",
    "CampaignProgress",
    "CampaignStateError",
    "Lookup",
    "NotRetryable",
    "Polled",
    "ReceiveFunctionMissing",
    "ReportMismatch",
    "ResyncSummary",
    "apply_poll",
    "apply_polls",
    "apply_status",
    "campaign_estimate",
    "campaign_from_csv",
    "campaign_progress",
    "campaign_results",
    "cancel_campaign",
    "claim_for_sending",
    "copy_campaign",
    "create_campaign",
    "enqueue_message",
    "find_message",
    "get_client",
    "lookup_for",
    "pause_campaign",
    "poll_statuses",
    "pooled_client",
    "receive_report",
    "receive_report_by_uuid",
    "record_send",
    "refresh_status",
    "release_account",
    "resume_campaign",
    "resync_selection",
    "resync_statuses",
    "retry_message",
    "send_bulk",
    "send_media",
    "send_message",
    "send_template",
    "send_text",
    "settle_stale_sending",
    "start_campaign",
]


class NotRetryable(ValueError):
    """Only a message that was not sent can be retried."""


def enqueue_message(message: Message) -> Message:
    """Store a message as ``queued`` and hand it to the task framework when the transaction
    commits (:func:`django_whatsapp.tasks.enqueue_message`)."""
    from .tasks import enqueue_message as enqueue  # needs a task framework: imported on use

    return enqueue(message)


def _add_own_data(
    message: Message,
    metadata: dict[str, Any] | None,
    tags: Sequence[str] | None,
    target: models.Model | None,
    idempotency_key: str | None,
) -> None:
    """Set the caller's ``metadata``, ``tags``, ``target`` and ``idempotency_key`` on a message
    being built (``None`` leaves each as it is); raises ``ValidationError`` naming bad ones."""
    given = (metadata, tags, target, idempotency_key)
    if all(value is None for value in given):
        return
    if message.pk is not None:
        raise ValueError(
            "metadata, tags, target and idempotency_key are given when a message is built; "
            "this one is already stored."
        )
    for name, value in clean_links(metadata, tags, target).items():
        setattr(message, name, value)
    if idempotency_key is not None:
        message.idempotency_key = idempotency.clean_key(idempotency_key)


def _set_expiry(message: Message, expires_at: Any, expires_in: Any) -> None:
    """Set the expiry a caller asked for on a message being built (:func:`expiry.clean`);
    raises ``ValidationError`` for a bad one."""
    expires = expiry.clean(expires_at, expires_in)
    if expires is None:
        return
    if message.pk is not None:
        raise ValueError(
            "expires_at and expires_in are given when a message is built; this one is already "
            "stored."
        )
    message.expires_at = expires


def send_message(
    message: Message,
    *,
    client: WhatsAppClient | None = None,
    enqueue: bool | None = None,
    account: str | None = None,
    # The caller's own data (see _add_own_data), for a message being built:
    metadata: dict[str, Any] | None = None,
    tags: Sequence[str] | None = None,
    target: models.Model | None = None,
    idempotency_key: str | None = None,
    # Its expiry (see expiry.clean), for a message being built:
    expires_at: datetime | None = None,
    expires_in: timedelta | None = None,
) -> Message:
    """Submit a message to the gateway, at most once however many callers ask at the same time.

    With ``SEND_ASYNC`` on (or ``enqueue=True``) the message is only stored as ``queued`` and
    handed to the task framework (:func:`enqueue_message`); ``enqueue=False`` sends now whatever
    the setting says (the worker's task does).

    An unsaved message is validated and saved first. The row is committed before the gateway is
    called, then claimed with a conditional UPDATE: only the caller that moves it from ``draft``
    or ``queued`` to ``sending`` submits it; the others get it back as it is. The result is
    returned on the message: ``accepted`` with ``provider_message_id``, or ``not_sent`` /
    ``unknown`` with ``error_*`` set. Raises ``ValidationError`` (nothing sent) for an invalid
    message.

    ``account`` (a name in ``ACCOUNTS``) sets an unsaved message's account; the message goes
    through its account's gateway, key and sender. A message to an opted-out contact is stored
    ``not_sent`` with :class:`~django_whatsapp.exceptions.OptedOut` and nothing is requested.

    ``metadata``, ``tags``, ``target`` (any saved model instance) and ``idempotency_key`` are
    stored on an unsaved message. With an ``idempotency_key`` that an earlier send used, nothing
    is sent: that first message is returned as it is now (a first message still ``draft``, which
    a crash left unclaimed, is sent); when its content (recipient, type, text, image, template,
    parameters, header) differs, :class:`~django_whatsapp.exceptions.IdempotencyConflict` is
    raised.

    ``expires_at`` (an aware datetime) or ``expires_in`` (a ``timedelta`` from now) sets an
    unsaved message's expiry: not requested by then (it waited in a queue, behind a held
    account, an outage or the daily limit), it ends ``not_sent`` with
    :class:`~django_whatsapp.exceptions.MessageExpired` and is never sent late. A naive
    datetime, both at once, or anything else raises ``ValidationError`` (nothing stored).
    """
    if account is not None and message.pk is None:
        get_settings(account)  # an unknown account is a configuration error, raised now
        message.account = account
    _set_expiry(message, expires_at, expires_in)
    _add_own_data(message, metadata, tags, target, idempotency_key)
    if message.pk is None and message.idempotency_key:
        message.idempotency_key = idempotency.clean_key(message.idempotency_key)
        validate_message(message)
        # A configuration error surfaces before the key is taken, as for any send.
        conf = get_settings(message.account)
        if client is None:
            conf.require_api_key()
        callback_url(message.uuid, conf)
        message, stored = idempotency.store_once(message)
        if not stored and message.status != Status.DRAFT:
            return message
    if get_settings().SEND_ASYNC if enqueue is None else enqueue:
        return enqueue_message(message)
    return send_now(message, client=client)


def _default_sender(source_addr: str | None, account: str | None = None) -> str:
    return source_addr or get_settings(account).DEFAULT_SOURCE_ADDR or ""


def send_text(
    to: str | int,
    text: str,
    *,
    source_addr: str | None = None,
    created_by: Any = None,
    client: WhatsAppClient | None = None,
    enqueue: bool | None = None,
    account: str | None = None,
    # The caller's own data (see send_message):
    metadata: dict[str, Any] | None = None,
    tags: Sequence[str] | None = None,
    target: models.Model | None = None,
    idempotency_key: str | None = None,
    expires_at: datetime | None = None,
    expires_in: timedelta | None = None,
) -> Message:
    """Send a text message to ``to`` (digits; ``+``, spaces and dashes are stripped), through
    ``account`` (a name in ``ACCOUNTS``; the default account when not given).

    ``metadata``, ``tags``, ``target``, ``idempotency_key``, ``expires_at`` and ``expires_in``:
    see :func:`send_message`."""
    message = Message(
        message_type=Message.MessageType.TEXT,
        destination_addr=str(to),
        source_addr=_default_sender(source_addr, account),
        account=account or DEFAULT_ACCOUNT,
        text=text,
        created_by=created_by,
    )
    return send_message(
        message,
        client=client,
        enqueue=enqueue,
        account=account,
        metadata=metadata,
        tags=tags,
        target=target,
        idempotency_key=idempotency_key,
        expires_at=expires_at,
        expires_in=expires_in,
    )


def send_media(
    to: str | int,
    file_url: str,
    text: str = "",
    *,
    source_addr: str | None = None,
    created_by: Any = None,
    client: WhatsAppClient | None = None,
    enqueue: bool | None = None,
    account: str | None = None,
    # The caller's own data (see _add_own_data), for a message being built:
    metadata: dict[str, Any] | None = None,
    tags: Sequence[str] | None = None,
    target: models.Model | None = None,
    idempotency_key: str | None = None,
    expires_at: datetime | None = None,
    expires_in: timedelta | None = None,
) -> Message:
    """Send an image (a .jpg, .jpeg or .png URL) with an optional caption. The keyword
    arguments: see :func:`send_text`."""
    message = Message(
        message_type=Message.MessageType.MEDIA,
        destination_addr=str(to),
        source_addr=_default_sender(source_addr, account),
        account=account or DEFAULT_ACCOUNT,
        file_url=file_url,
        text=text,
        created_by=created_by,
    )
    return send_message(
        message,
        client=client,
        enqueue=enqueue,
        account=account,
        metadata=metadata,
        tags=tags,
        target=target,
        idempotency_key=idempotency_key,
        expires_at=expires_at,
        expires_in=expires_in,
    )


def send_template(
    to: str | int,
    template: Template | str,
    params: Sequence[Any] = (),
    header: str | None = None,
    *,
    source_addr: str | None = None,
    created_by: Any = None,
    client: WhatsAppClient | None = None,
    enqueue: bool | None = None,
    account: str | None = None,
    # The caller's own data (see _add_own_data), for a message being built:
    metadata: dict[str, Any] | None = None,
    tags: Sequence[str] | None = None,
    target: models.Model | None = None,
    idempotency_key: str | None = None,
    expires_at: datetime | None = None,
    expires_in: timedelta | None = None,
) -> Message:
    """Send a registered template (a :class:`Template` or its name) with its body parameters
    and, when the template has a header, the header's text or image URL. The keyword
    arguments: see :func:`send_text`."""
    errors: dict[str, Any] = {}
    resolved: Template | None = None
    try:
        resolved = clean_template(template)
    except ValidationError as error:
        errors["template"] = error
    message = Message(
        message_type=Message.MessageType.TEMPLATE,
        destination_addr=str(to),
        source_addr=_default_sender(source_addr, account),
        account=account or DEFAULT_ACCOUNT,
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
    return send_message(
        message,
        client=client,
        enqueue=enqueue,
        account=account,
        metadata=metadata,
        tags=tags,
        target=target,
        idempotency_key=idempotency_key,
        expires_at=expires_at,
        expires_in=expires_in,
    )


# -- after the send ----------------------------------------------------------------------------


def refresh_status(message: Message, *, client: WhatsAppClient | None = None) -> Message:
    """Poll the gateway for the message's status and apply it. Raises ``ValueError`` when the
    message has no provider id yet, and :class:`WhatsAppError` when the gateway fails."""
    if message.provider_message_id is None:
        raise ValueError(_("The message has no provider id yet, so its status cannot be polled."))
    client = client or get_client(account=message.account)  # the message's own account
    apply_poll(message, client.get_status(message.provider_message_id))
    return message


def retry_message(
    message: Message, *, user: Any = None, client: WhatsAppClient | None = None
) -> Message:
    """An operator's retry of a ``not_sent`` message: back to ``queued`` (an ``admin`` event),
    then sent again. Raises :class:`NotRetryable` for a message in any other status, and
    :class:`~django_whatsapp.exceptions.CampaignNotRunning` (nothing changed) for a message of a
    campaign that is not running.

    A configuration error (no API key, no callback secret, no task framework with
    ``SEND_ASYNC``) is raised before anything changes: the message stays ``not_sent`` with its
    error, and can be retried once the configuration is fixed."""
    conf = get_settings(message.account)
    if client is None:
        conf.require_api_key()
    callback_url(message.uuid, conf)
    ensure_campaign_running(message)
    if conf.SEND_ASYNC:
        from . import tasks  # noqa: F401 - needs a task framework: ImproperlyConfigured without
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


def settle_stale_sending(older_than: timedelta, *, user: Any = None) -> list[Message]:
    """Settle messages left in ``sending`` for longer than ``older_than``: a worker died between
    the claim and the gateway's answer. They become ``unknown`` (a ``send`` event, or an ``admin``
    one naming ``user``): the request may have reached the gateway, so they are never sent again
    automatically; a callback or a poll settles them, adopting the gateway's id. A message whose
    send finishes meanwhile is left alone. Returns the messages settled.
    """
    if older_than < timedelta(0):
        raise ValueError("older_than must not be negative")
    cutoff = timezone.now() - older_than
    source = Source.SEND if user is None else Source.ADMIN
    payload = {
        "reason": "stale sending",
        "older_than_seconds": older_than.total_seconds(),
        "user": str(user) if user is not None else None,
    }
    stale = Message.objects.filter(status=Status.SENDING, status_changed_at__lt=cutoff)
    settled = []
    for message in stale.order_by("pk").iterator(chunk_size=500):
        event = apply_report(
            message, Status.UNKNOWN, source=source, payload=payload, expect=(Status.SENDING,)
        )
        if event is not None:
            logger.warning("WhatsApp message %s was stuck in sending; now unknown", message.pk)
            settled.append(message)
    return settled


def send_bulk(recipients: Iterable[Any], **kwargs: Any) -> BulkResult:
    """Send one text, image or template to many recipients (:func:`.bulk.send_bulk`)."""
    return _send_bulk(recipients, **kwargs)
