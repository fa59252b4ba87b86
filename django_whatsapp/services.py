"""The use cases: send, refresh, retry, apply a report.

This is the only module that joins the models, the gateway client and the signals. Every status
change goes through :func:`apply_status` (or, for an operator's retry, :func:`retry_message`).

With ``SEND_ASYNC`` on, every send stores the message as ``queued`` and hands it to Django's task
framework when the transaction commits (:func:`enqueue_message`); a worker's task
(``django_whatsapp.tasks.send_message_task``) then calls :func:`send_message`, whose claim keeps a
message from being submitted twice however many workers get the job.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import requests
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections, router, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from requests.adapters import HTTPAdapter

from . import signals, window
from .client import SendResult, SharedBackoff, StatusResult, WhatsAppClient
from .conf import WhatsAppSettings, get_settings
from .exceptions import ServiceWindowClosed, WhatsAppError
from .models import (
    PROVIDER_CODES,
    Message,
    StatusEvent,
    Template,
    lower_ranked,
    normalize_status,
    resolve_status,
)
from .payloads import message_payload
from .signing import callback_url
from .validation import clean_template, validate_message

if TYPE_CHECKING:
    from .bulk import BulkResult

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


def pooled_client(
    concurrency: int, conf: WhatsAppSettings | None = None, **kwargs: Any
) -> WhatsAppClient:
    """A client for many threads with at most ``concurrency`` requests in flight: one HTTP
    session whose connection pool holds that many connections, and a
    :class:`~django_whatsapp.client.SharedBackoff` that limits the requests in flight and makes a
    429 pause every thread once. ``kwargs`` go to the client (``sleep=``, ``gate=``...)."""
    conf = conf or get_settings()
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(concurrency, 1))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # Every request goes to the one gateway: take the proxy and CA bundle settings from the
    # environment once, rather than have requests scan os.environ for each of thousands.
    found = session.merge_environment_settings(conf.send_url, {}, None, None, None)
    session.proxies.update(found["proxies"])
    session.verify = found["verify"]
    session.trust_env = False
    kwargs.setdefault("gate", SharedBackoff(max_in_flight=concurrency))
    return WhatsAppClient.from_settings(conf, session=session, **kwargs)


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
    expect: Iterable[str] = (),
    sent: SendResult | None = None,
) -> StatusEvent | None:
    """Apply one report (see :func:`apply_status`). ``expect``: apply it only if the message is
    still in one of these statuses (else ``None``, nothing written). ``sent``: the gateway took
    the message; its id and attempts are stored with the report, all or nothing (an
    ``IntegrityError`` when the id belongs to another message)."""
    new = normalize_status(status)
    if source not in Source.values:
        raise ValueError(f"unknown source {source!r}")
    alias = router.db_for_write(Message, instance=message)
    if (
        connections[alias].vendor == "postgresql"
        and not expect
        and (provider_message_id is None or provider_message_id == message.provider_message_id)
    ):
        return _apply_in_one_statement(
            message, new, source=source, payload=payload, alias=alias, sent=sent
        )
    with transaction.atomic(using=alias):
        # The row lock orders concurrent reports about one message.
        old, current_id = (
            Message.objects.using(alias)
            .select_for_update()
            .values_list("status", "provider_message_id")
            .get(pk=message.pk)
        )
        if expect and old not in expect:
            message.status = old
            return None
        if provider_message_id is not None:
            _adopt(message, current_id, provider_message_id)
        if sent is not None:
            Message.objects.using(alias).filter(pk=message.pk).update(
                provider_message_id=sent.message_id,
                attempts=F("attempts") + sent.attempts,
                **_NO_ERROR,
            )
            message.refresh_from_db(using=alias, fields=["provider_message_id", "attempts"])
            _clear_error(message)
        try:
            with transaction.atomic(using=alias):
                event = StatusEvent.objects.using(alias).create(
                    message_id=message.pk,
                    status=new,
                    provider_status=PROVIDER_CODES.get(new),
                    source=source,
                    payload=payload if payload is not None else {},
                )
        except IntegrityError:
            duplicate = (
                StatusEvent.objects.using(alias)
                .filter(message_id=message.pk, status=new, source=source)
                .exists()
            )
            if not duplicate:
                raise
            message.status = old
            return None
        final = resolve_status(old, new)
        if final != old:
            now = timezone.now()
            Message.objects.using(alias).filter(pk=message.pk).update(
                status=final, status_changed_at=now
            )
            message.status_changed_at = now
    return _applied(message, event, old, final)


_NO_ERROR: dict[str, Any] = {"error_code": None, "error_name": "", "error_message": ""}


def _clear_error(message: Message) -> None:
    for name, value in _NO_ERROR.items():
        setattr(message, name, value)


def _applied(message: Message, event: StatusEvent, old: str, final: str) -> StatusEvent:
    message.status = final
    if final != old:
        logger.info("WhatsApp message %s: %s -> %s (%s)", message.pk, old, final, event.source)
        signals.status_changed.send(
            sender=Message, message=message, old_status=old, new_status=final, event=event
        )
    return event


#: One statement that records a report and applies it (PostgreSQL). ``cur`` locks the row and
#: reads the status the report finds; ``ev`` keeps the report unless it is an exact duplicate
#: (the partial unique index turns that away); ``upd`` raises the status, only from a lower rank
#: and only for a new report ({sent} stores a send's result with it). It is all or nothing
#: whatever the caller's transaction, and needs no SELECT before it.
_APPLY_SQL = """
WITH cur AS (
    SELECT status FROM {message} WHERE id = %(message)s FOR UPDATE
), ev AS (
    INSERT INTO {event} (message_id, status, provider_status, source, payload, received_at)
    SELECT %(message)s, %(status)s, %(provider_status)s, %(source)s, %(payload)s, %(now)s
    WHERE EXISTS (SELECT 1 FROM cur)
    ON CONFLICT DO NOTHING
    RETURNING id
), upd AS (
    UPDATE {message} SET
        status = CASE WHEN cur.status = ANY(%(lower)s) THEN %(status)s ELSE cur.status END,
        status_changed_at = CASE
            WHEN cur.status = ANY(%(lower)s) THEN %(now)s ELSE {message}.status_changed_at
        END{sent}
    FROM cur
    WHERE {message}.id = %(message)s AND EXISTS (SELECT 1 FROM ev)
      AND (cur.status = ANY(%(lower)s) OR %(always)s)
    RETURNING {message}.attempts
)
SELECT (SELECT id FROM ev), (SELECT status FROM cur), (SELECT attempts FROM upd)
"""
_SENT_SQL = """,
        provider_message_id = %(provider_message_id)s,
        attempts = {message}.attempts + %(attempts)s,
        error_code = NULL, error_name = '', error_message = ''"""


def _apply_in_one_statement(
    message: Message,
    new: str,
    *,
    source: str,
    payload: dict[str, Any] | None,
    alias: str,
    sent: SendResult | None,
) -> StatusEvent | None:
    """:func:`_apply` in one round trip: no SELECT before it, no transaction around it."""
    connection = connections[alias]
    now = timezone.now()
    event = StatusEvent(
        message=message,
        status=new,
        provider_status=PROVIDER_CODES.get(new),
        source=source,
        payload=payload if payload is not None else {},
        received_at=now,
    )
    lower = lower_ranked(new)
    params = {
        "message": message.pk,
        "status": new,
        "provider_status": event.provider_status,
        "source": source,
        "payload": StatusEvent._meta.get_field("payload").get_db_prep_save(
            event.payload, connection
        ),
        "now": now,
        "lower": lower,
        "always": sent is not None,
    }
    table = connection.ops.quote_name(Message._meta.db_table)
    if sent is not None:
        params.update(provider_message_id=sent.message_id, attempts=sent.attempts)
    sql = _APPLY_SQL.format(
        event=connection.ops.quote_name(StatusEvent._meta.db_table),
        message=table,
        sent=_SENT_SQL.format(message=table) if sent is not None else "",
    )
    # A send's id may clash with another message's: inside a transaction, a savepoint keeps
    # that failure from breaking the caller's transaction.
    guard = (
        transaction.atomic(using=alias)
        if sent is not None and connection.in_atomic_block
        else nullcontext()
    )
    with guard, connection.cursor() as cursor:
        cursor.execute(sql, params)
        event_id, old, attempts = cursor.fetchone()
    if old is None:
        raise Message.DoesNotExist(f"No message with id {message.pk}.")
    if event_id is None:  # an exact duplicate: nothing was written
        message.status = old
        return None
    event.pk = event_id
    event._state.adding = False
    event._state.db = alias
    if sent is not None:
        message.provider_message_id, message.attempts = sent.message_id, attempts
        _clear_error(message)
    changed = old in lower
    if changed:
        message.status_changed_at = now
    return _applied(message, event, old, new if changed else old)


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
    if isinstance(error, ServiceWindowClosed):
        # The customer has not written for 24 hours: only templates until they write again.
        window.mark_closed(message.destination_addr)
    status = Status.UNKNOWN if error.maybe_delivered else Status.NOT_SENT
    logger.warning(
        "WhatsApp message %s was not sent: %s: %r", message.pk, type(error).__name__, error.name
    )
    apply_status(message, status, source=Source.SEND, payload=_error_payload(error))
    signals.message_failed.send(sender=Message, message=message, error=error)
    return message


def _move(
    message: Message, sources: Sequence[str], status: str, now: datetime, **extra: Any
) -> bool:
    """Move the row from one of ``sources`` to ``status``, storing the validated content, in one
    conditional ``UPDATE``: of concurrent callers exactly one gets True (the claim)."""
    moved = Message.objects.filter(pk=message.pk, status__in=sources).update(
        status=status,
        status_changed_at=now,
        source_addr=message.source_addr,
        destination_addr=message.destination_addr,
        text=message.text,
        file_url=message.file_url,
        template_params=message.template_params,
        **extra,
    )
    return bool(moved)


def _task_framework_check() -> None:
    """Import the task: ``ImproperlyConfigured`` when no task framework is installed."""
    from . import tasks  # noqa: F401 - the import is the check


def enqueue_message(message: Message) -> Message:
    """Store a message as ``queued`` and hand it to the task framework when the current
    transaction commits (at once outside one); a rolled-back transaction sends nothing.

    An unsaved message is validated and saved as ``queued``; a ``draft`` is moved to ``queued``;
    a ``queued`` one (a retry, or one whose task was lost) is enqueued again, which is safe: the
    worker's claim submits it at most once. A message in any other status is returned as it is.
    Raises ``ValidationError`` (nothing stored) for an invalid message.
    """
    conf = get_settings()
    # A configuration error surfaces here, not later in a worker.
    conf.require_api_key()
    callback_url(message.uuid, conf)
    _task_framework_check()
    now = timezone.now()
    if message.pk is None:
        validate_message(message)
        message.status, message.status_changed_at = Status.QUEUED, now
        message.save()
    elif message.status == Status.DRAFT:
        validate_message(message)
        if not _move(message, (Status.DRAFT,), Status.QUEUED, now):
            message.refresh_from_db()
            return message
        message.status, message.status_changed_at = Status.QUEUED, now
    elif message.status != Status.QUEUED:
        return message
    transaction.on_commit(partial(_enqueue, message.pk))
    return message


def _enqueue(message_id: int) -> None:
    from .tasks import send_message_task

    send_message_task.enqueue(message_id)
    logger.info("WhatsApp message %s queued", message_id)


def send_message(
    message: Message, *, client: WhatsAppClient | None = None, enqueue: bool | None = None
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
    """
    conf = get_settings()
    if conf.SEND_ASYNC if enqueue is None else enqueue:
        return enqueue_message(message)
    # A configuration error (no API key, no callback secret) surfaces before any row is written.
    client = client or get_client(conf)
    payload = claim_for_sending(message, conf)
    if payload is None:
        return message
    try:
        result = client.send(payload)
    except Exception as exc:
        return record_send(message, exc)
    return record_send(message, result)


# The two halves of a send, for senders that talk to the gateway from other threads (bulk sends):
# claim_for_sending and record_send run where the database work is done, client.send anywhere.


def claim_for_sending(
    message: Message, conf: WhatsAppSettings | None = None
) -> dict[str, Any] | None:
    """Save (when unsaved), validate and claim a message; return the request body to submit, or
    ``None`` when another caller has it or it is not ``draft`` or ``queued`` (it is then
    refreshed). Sends ``message_sending``; a receiver's exception marks the message ``not_sent``
    and is raised. Raises ``ValidationError`` (nothing stored or claimed) for an invalid message.
    """
    callback = callback_url(message.uuid, conf or get_settings())
    if message.pk is None:
        validate_message(message)
        message.save()
    if message.status not in SENDABLE:
        return None
    validate_message(message)
    payload = message_payload(message, callback_url=callback)
    now = timezone.now()
    if not _move(message, SENDABLE, Status.SENDING, now, submitted_at=now):
        message.refresh_from_db()
        return None
    message.status, message.status_changed_at, message.submitted_at = Status.SENDING, now, now
    try:
        window.check(message, conf)  # SERVICE_WINDOW_POLICY: raises under "enforce"
    except ServiceWindowClosed as error:
        # Refused here, before any request: kept as not_sent with the error, never submitted.
        Message.objects.filter(pk=message.pk).update(submitted_at=None)
        message.submitted_at = None
        _record_failure(message, error)
        return None
    try:
        signals.message_sending.send(sender=Message, message=message, payload=payload)
    except Exception as exc:
        # Nothing went to the gateway: the message is not sent, with the reason kept.
        _record_failure(
            message, WhatsAppError(f"{type(exc).__name__}: {exc}", name="Not submitted")
        )
        raise
    return payload


def record_send(message: Message, outcome: SendResult | BaseException) -> Message:
    """Record what ``client.send`` did with a claimed message: its result, or the exception it
    raised. A :class:`WhatsAppError` makes the message ``not_sent`` or ``unknown``; any other
    exception makes it ``unknown`` (the request may have gone out) and is raised again."""
    if isinstance(outcome, WhatsAppError):
        return _record_failure(message, outcome)
    if isinstance(outcome, BaseException):
        # A bug or an unforeseen failure on the way: the request may have gone out, so the
        # message is ``unknown`` (a callback can still settle it), never stuck in ``sending``.
        lost = WhatsAppError(f"{type(outcome).__name__}: {outcome}", name="Send interrupted")
        lost.maybe_delivered = True
        _record_failure(message, lost)
        raise outcome
    result = outcome
    try:
        _apply(message, Status.ACCEPTED, source=Source.SEND, payload=result.body, sent=result)
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
    enqueue: bool | None = None,
) -> Message:
    """Send a text message to ``to`` (digits; ``+``, spaces and dashes are stripped)."""
    message = Message(
        message_type=Message.MessageType.TEXT,
        destination_addr=str(to),
        source_addr=_default_sender(source_addr),
        text=text,
        created_by=created_by,
    )
    return send_message(message, client=client, enqueue=enqueue)


def send_media(
    to: str | int,
    file_url: str,
    text: str = "",
    *,
    source_addr: str | None = None,
    created_by: Any = None,
    client: WhatsAppClient | None = None,
    enqueue: bool | None = None,
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
    return send_message(message, client=client, enqueue=enqueue)


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
    return send_message(message, client=client, enqueue=enqueue)


# -- after the send ----------------------------------------------------------------------------


def refresh_status(message: Message, *, client: WhatsAppClient | None = None) -> Message:
    """Poll the gateway for the message's status and apply it. Raises ``ValueError`` when the
    message has no provider id yet, and :class:`WhatsAppError` when the gateway fails."""
    if message.provider_message_id is None:
        raise ValueError(_("The message has no provider id yet, so its status cannot be polled."))
    apply_poll(message, (client or get_client()).get_status(message.provider_message_id))
    return message


def poll_statuses(
    messages: Iterable[Message], client: WhatsAppClient, concurrency: int
) -> Iterator[tuple[Message, Future[StatusResult]]]:
    """Poll each message's status in a pool of ``concurrency`` threads, keeping at most twice
    that many polls ahead; yield each message with its poll, in the order given (apply each with
    :func:`apply_poll`). The threads only talk HTTP: the database work stays in the caller's
    thread. Messages without a provider id are skipped."""
    ahead: deque[tuple[Message, Future[StatusResult]]] = deque()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="whatsapp-poll") as pool:
        try:
            for message in messages:
                if message.provider_message_id is None:  # adopted nothing yet: nothing to poll
                    continue
                ahead.append((message, pool.submit(client.get_status, message.provider_message_id)))
                if len(ahead) >= 2 * concurrency:
                    yield ahead.popleft()
            while ahead:
                yield ahead.popleft()
        finally:
            for _message, future in ahead:
                future.cancel()


def apply_poll(message: Message, result: StatusResult) -> StatusEvent | None:
    """Apply the status endpoint's answer about a message (a ``poll`` report). Polls can run in
    other threads (``whatsapp_resync``) while this runs where the database work is done."""
    return receive_report(
        message,
        result.status,
        source=Source.POLL,
        payload=result.body,
        provider_message_id=result.message_id,
    )


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
        event = _apply(
            message, Status.UNKNOWN, source=source, payload=payload, expect=(Status.SENDING,)
        )
        if event is not None:
            logger.warning("WhatsApp message %s was stuck in sending; now unknown", message.pk)
            settled.append(message)
    return settled


def send_bulk(recipients: Iterable[Any], **kwargs: Any) -> BulkResult:
    """Send one text, image or template to many recipients (:func:`.bulk.send_bulk`)."""
    from .bulk import send_bulk as bulk_send

    return bulk_send(recipients, **kwargs)
