"""One message's way to the gateway and back: claim it, submit it, record the outcome.

:func:`claim_for_sending` and :func:`record_send` are the two halves of a send that run where the
database work is done; ``client.send`` between them may run in another thread (bulk sends and
campaigns). :func:`send_now` joins the three for one message. The claim is a conditional UPDATE,
so a message is submitted at most once however many callers ask for it concurrently.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import uuid
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any, NamedTuple

import requests
from django.db import DatabaseError, DataError, IntegrityError, connections, router, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from requests.adapters import HTTPAdapter

from . import clock, expiry, faults, optout, signals, tier, window
from .campaigns.hours import SendingHours, opens_at
from .client import SendResult, WhatsAppClient
from .conf import WhatsAppSettings, account_for_sender, get_settings
from .exceptions import (
    CampaignNotRunning,
    DailyLimitReached,
    NotRequested,
    RateLimitUnavailable,
    ServiceWindowClosed,
    TransportError,
    WhatsAppError,
)
from .faults import Fault
from .inputs import storable
from .models import Message, StatusEvent, Template
from .numbers import mask_number
from .payloads import message_payload
from .ratelimit import gate_for
from .signing import callback_url, sign
from .status_rule import PROVIDER_CODES, _apply, apply_status, stored_event
from .validation import validate_message

logger = logging.getLogger("django_whatsapp")

Status = Message.Status
Source = StatusEvent.Source
#: The statuses from which a message may be claimed for sending.
SENDABLE = (Status.DRAFT, Status.QUEUED)


# -- the client -------------------------------------------------------------------------------

_local = threading.local()


def get_client(
    conf: WhatsAppSettings | None = None, *, account: str | None = None
) -> WhatsAppClient:
    """This thread's client for the current settings of ``conf``'s account (or ``account``'s;
    the default account's when neither is given): one pooled HTTP session each, keyed by the
    account's key, URLs and timeouts."""
    conf = conf or get_settings(account)
    key = (
        conf.account,
        conf.API_KEY,
        conf.send_url,
        conf.status_url,
        conf.TIMEOUT,
        conf.MAX_RETRIES,
        conf.RATE_LIMIT,
        conf.RATE_LIMIT_CACHE,
    )
    clients: dict[tuple[Any, ...], WhatsAppClient] = _local.__dict__.setdefault("clients", {})
    client = clients.get(key)
    if client is None:
        if len(clients) >= 8:
            for old in clients.values():
                old.close()
            clients.clear()
        # With RATE_LIMIT, every request takes its budget from the shared cache first.
        client = clients[key] = WhatsAppClient.from_settings(conf, gate=gate_for(conf))
    return client


def pooled_client(
    concurrency: int, conf: WhatsAppSettings | None = None, **kwargs: Any
) -> WhatsAppClient:
    """A client for many threads with at most ``concurrency`` requests in flight: one HTTP
    session whose connection pool holds that many connections, and a
    :class:`~django_whatsapp.client.SharedBackoff` that limits the requests in flight and makes a
    429 pause every thread once (with ``RATE_LIMIT``, a
    :class:`~django_whatsapp.ratelimit.SharedRateLimit` that also keeps the shared budget).
    ``kwargs`` go to the client (``sleep=``, ``gate=``...)."""
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
    if "gate" not in kwargs:
        kwargs["gate"] = gate_for(conf, max_in_flight=concurrency)
    return WhatsAppClient.from_settings(conf, session=session, **kwargs)


# -- one send --------------------------------------------------------------------------------


#: How deeply a gateway answer is kept on a status event; deeper parts are kept as text.
MAX_KEPT_DEPTH = 32


def storable_answer(value: Any, depth: int = 0) -> Any:
    """The gateway's answer as every database's JSON column keeps it: NUL characters and lone
    surrogates in strings and keys become escapes (``\\x00``, ``\\ud800``), numbers that are
    not finite become strings, and parts nested deeper than ``MAX_KEPT_DEPTH`` become text."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict | list) and depth >= MAX_KEPT_DEPTH:
        return storable_answer(repr(value)[:1000])
    if isinstance(value, dict):
        return {
            storable_answer(str(key)): storable_answer(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [storable_answer(item, depth + 1) for item in value]
    return value


#: The most characters of a gateway's error message kept on the message (the whole answer is
#: kept on the event, made storable).
MAX_ERROR_MESSAGE = 4000


def storable_text(text: Any, limit: int | None = None) -> str:
    """Outside text (a gateway's error name or message) as every database's text column keeps
    it: NUL characters and lone surrogates escaped (:func:`storable_answer`), at most ``limit``
    characters."""
    stored = str(storable_answer(str(text) if text is not None else ""))
    return stored[:limit] if limit is not None else stored


def _error_payload(error: WhatsAppError) -> dict[str, Any]:
    body = error.body if isinstance(error.body, dict | list | str | int | float) else None
    body = storable_answer(body)
    return {
        "exception": type(error).__name__,
        "name": storable_text(error.name, 1000),
        "message": storable_text(error.message, MAX_ERROR_MESSAGE),
        "code": error.code,
        "status": error.status,
        "http_status": error.http_status,
        "maybe_delivered": error.maybe_delivered,
        "body": body,
    }


def error_fields(error: WhatsAppError) -> dict[str, Any]:
    """The message's error columns for ``error``, storable whatever the gateway sent."""
    code = error.code if error.code is None or -(2**31) <= error.code < 2**31 else None
    return {
        "error_code": code,
        "error_name": storable_text(error.name, 255),
        "error_message": storable_text(error.message, MAX_ERROR_MESSAGE),
    }


def _record_failure(message: Message, error: WhatsAppError) -> Message:
    Message.objects.filter(pk=message.pk).update(
        **error_fields(error), attempts=F("attempts") + error.attempts
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


def move_status(
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


def send_now(
    message: Message,
    *,
    client: WhatsAppClient | None = None,
    confirmation: bool = False,
    deferred: bool = False,
) -> Message:
    """Claim, submit and record one message now, whatever ``SEND_ASYNC`` says (see
    :func:`django_whatsapp.services.send_message`), through the message's account.
    ``confirmation`` is for :func:`django_whatsapp.optout.confirm` only (see
    :func:`claim_for_sending`); ``deferred`` for queued work that can send the message later
    (see :func:`record_send`)."""
    conf = get_settings(message.account)
    # A configuration error (no API key, no callback secret) surfaces before any row is written.
    client = client or get_client(conf)
    payload = claim_for_sending(message, conf, confirmation=confirmation, deferred=deferred)
    if payload is None:
        return message
    try:
        result = client.send(payload)
    except Exception as exc:
        return record_send(message, exc, deferred=deferred)
    return record_send(message, result, deferred=deferred)


def ensure_campaign_running(message: Message) -> None:
    """Raise :class:`~django_whatsapp.exceptions.CampaignNotRunning` for a message of a
    campaign that is not ``running``: only its running campaign sends it (its engine keeps the
    pause, the cancel and the rate limit)."""
    if message.campaign_id is None:
        return
    from .models import Campaign

    campaign = Campaign.objects.filter(pk=message.campaign_id).first()
    if campaign is not None and campaign.status != Campaign.Status.RUNNING:
        raise CampaignNotRunning(campaign)


def claim_for_sending(
    message: Message,
    conf: WhatsAppSettings | None = None,
    *,
    confirmation: bool = False,
    deferred: bool = False,
) -> dict[str, Any] | None:
    """Save (when unsaved), validate and claim a message; return the request body to submit, or
    ``None`` when another caller has it or it is not ``draft`` or ``queued`` (it is then
    refreshed). Raises :class:`~django_whatsapp.exceptions.CampaignNotRunning` (nothing
    changed) for a message of a campaign that is not running. Sends ``message_sending``; a
    receiver's exception marks the message ``not_sent`` and is raised. Raises
    ``ValidationError`` (nothing stored or claimed) for an invalid message.

    A message to an opted-out contact, or refused by the window policy, is refused here
    (``not_sent`` with :class:`~django_whatsapp.exceptions.OptedOut` or
    :class:`~django_whatsapp.exceptions.ServiceWindowClosed`, ``None`` returned), the opt-out
    unless ``confirmation`` says it is the opt-out's own confirmation
    (:func:`django_whatsapp.optout.confirm`). So is an expired message
    (:class:`~django_whatsapp.exceptions.MessageExpired`). The checks are
    :func:`prepare_claimed`'s; ``deferred`` (queued work) makes a message over the daily limit
    wait (``queued``) instead of failing.
    """
    conf = conf or get_settings(message.account)
    callback_url(message.uuid, conf)  # a configuration error surfaces before any row is written
    if message.pk is None:
        validate_message(message)
        message.save()
    if message.status not in SENDABLE:
        return None
    ensure_campaign_running(message)
    validate_message(message)
    now = timezone.now()
    if not move_status(message, SENDABLE, Status.SENDING, now, submitted_at=now):
        message.refresh_from_db()
        return None
    message.status, message.status_changed_at, message.submitted_at = Status.SENDING, now, now
    [ready] = prepare_claimed([message], conf, confirmation=confirmation, deferred=deferred)
    if ready.raised and ready.refusal is not None:
        raise ready.refusal
    return ready.payload


def _answer_not_stored(message: Message, result: SendResult, exc: BaseException) -> Message:
    """The gateway took the message but the database refused to record its answer: the message
    is ``unknown`` with the reason kept (a callback can still settle it), never left in
    ``sending``."""
    logger.warning(
        "WhatsApp message %s: the gateway's answer could not be stored: %s",
        message.pk,
        type(exc).__name__,
    )
    lost = WhatsAppError(
        _("The gateway's answer could not be stored: %(error)s")
        % {"error": f"{type(exc).__name__}: {exc}"[:500]},
        name="Answer not stored",
        body=result.body,
    )
    lost.attempts = result.attempts
    lost.maybe_delivered = True
    return _record_failure(message, lost)


def record_send(
    message: Message, outcome: SendResult | BaseException, *, deferred: bool = False
) -> Message:
    """Record what ``client.send`` did with a claimed message: its result, or the exception it
    raised, as :func:`django_whatsapp.faults.classify` judges it.

    The message's own fault makes it ``not_sent``; a request that may have reached the gateway
    ``unknown``; any exception that is not a :class:`WhatsAppError` makes it ``unknown`` too (the
    request may have gone out) and is raised again. A fault of the account or of the system
    makes it ``not_sent`` with its typed error for a single inline send (its caller waits for
    the answer); with ``deferred`` (queued and campaign work, which can send it later) it goes
    back to ``queued``, error kept. An account's fault holds the account and pauses its running
    campaigns (:func:`react`); with ``deferred`` a system's fault opens its breaker.

    Whatever the gateway answered, the message never stays ``sending``: should recording fail
    (a database error), the failure is logged with the message's id and the message is settled
    as ``unknown`` (``queued`` for a deferred fault of the account or the system) with the reason
    kept."""
    fault = faults.classify(outcome)
    try:
        _record_one(message, outcome, fault, deferred=deferred)
    finally:
        react(message.account, [(fault, outcome)], deferred=deferred)
    return message


def _record_one(
    message: Message, outcome: SendResult | BaseException, fault: Fault, *, deferred: bool
) -> None:
    """:func:`_record`, settling the message anyway when recording fails; an outcome that is
    not a :class:`WhatsAppError` (a bug on the way) is raised again once recorded."""
    try:
        _record(message, outcome, fault, deferred=deferred)
    except Exception as exc:
        if exc is outcome:
            raise
        _not_recorded(message, outcome, fault, exc, deferred=deferred)


def _record(
    message: Message, outcome: SendResult | BaseException, fault: Fault, *, deferred: bool
) -> None:
    if deferred and fault in (Fault.ACCOUNT, Fault.SYSTEM, Fault.LIMIT):
        assert isinstance(outcome, WhatsAppError)  # noqa: S101 - classify's contract
        _back_to_queued(message, outcome)
        return
    if isinstance(outcome, WhatsAppError):
        _record_failure(message, outcome)
        return
    if isinstance(outcome, BaseException):
        # A bug or an unforeseen failure on the way: the request may have gone out, so the
        # message is ``unknown`` (a callback can still settle it), never stuck in ``sending``.
        lost = WhatsAppError(
            storable_text(f"{type(outcome).__name__}: {outcome}", MAX_ERROR_MESSAGE),
            name="Send interrupted",
        )
        lost.maybe_delivered = True
        _record_failure(message, lost)
        raise outcome
    _record_accepted_one(message, outcome)


def _record_accepted_one(message: Message, result: SendResult) -> None:
    alias = router.db_for_write(Message, instance=message)
    payload = storable_answer(result.body)
    try:
        # A savepoint: a failed write leaves a caller's transaction usable for the record below.
        with transaction.atomic(using=alias):
            _apply(message, Status.ACCEPTED, source=Source.SEND, payload=payload, sent=result)
    except IntegrityError as exc:
        taken = (
            Message.objects.using(alias)
            .filter(provider_message_id=result.message_id, account=message.account)
            .exclude(pk=message.pk)
            .exists()
        )
        if not taken:
            _answer_not_stored(message, result, exc)
            return
        clash = WhatsAppError(
            _("The gateway's message_id %(id)s is already used by another message.")
            % {"id": result.message_id},
            name="Duplicate message_id",
            body=result.body,
        )
        clash.attempts = result.attempts
        clash.maybe_delivered = True
        _record_failure(message, clash)
        return
    except (DatabaseError, OverflowError, ValueError) as exc:
        _answer_not_stored(message, result, exc)
        return
    logger.info("WhatsApp message %s accepted as %s", message.pk, result.message_id)
    signals.message_sent.send(sender=Message, message=message)


def _back_to_queued(message: Message, error: WhatsAppError) -> None:
    """A fault of the account or of the system met by queued or campaign work: the message goes
    back to ``queued`` (not final), the error kept, to be sent when the fault is over. Over the
    daily limit, it is not claimed again before a place frees (``send_after``)."""
    now = timezone.now()
    later: dict[str, Any] = {}
    if isinstance(error, DailyLimitReached) and error.retry_at is not None:
        later["send_after"] = error.retry_at
    Message.objects.filter(pk=message.pk, status=Status.SENDING).update(
        status=Status.QUEUED,
        status_changed_at=now,
        submitted_at=None,
        attempts=F("attempts") + error.attempts,
        **error_fields(error),
        **later,
    )
    message.refresh_from_db(
        fields=[
            "status",
            "status_changed_at",
            "submitted_at",
            "attempts",
            "send_after",
            *_ERROR_COLUMNS,
        ]
    )


_ERROR_COLUMNS = ("error_code", "error_name", "error_message")


def _not_recorded(
    message: Message,
    outcome: SendResult | BaseException,
    fault: Fault,
    exc: BaseException,
    *,
    deferred: bool,
) -> None:
    """Recording the outcome failed: settle the message in a documented state anyway."""
    logger.exception(
        "WhatsApp message %s: its send's outcome (%s) could not be recorded",
        message.pk,
        "accepted" if isinstance(outcome, SendResult) else type(outcome).__name__,
    )
    if deferred and fault in (Fault.ACCOUNT, Fault.SYSTEM, Fault.LIMIT):
        status = Status.QUEUED
    elif fault in (Fault.SENT, Fault.MAYBE_SENT):
        status = Status.UNKNOWN  # the gateway took it or may have: a callback settles it
    else:
        status = Status.NOT_SENT
    try:
        Message.objects.filter(pk=message.pk, status=Status.SENDING).update(
            status=status,
            status_changed_at=timezone.now(),
            error_name="Outcome not recorded",
            error_message=storable_text(
                _("The send's outcome could not be recorded: %(error)s")
                % {"error": f"{type(exc).__name__}: {exc}"},
                MAX_ERROR_MESSAGE,
            ),
        )
        message.refresh_from_db()
    except Exception:  # the database itself is gone: whatsapp_resync --stale-sending settles it
        logger.exception("WhatsApp message %s stays sending: the database refused", message.pk)


def react(
    account: str,
    outcomes: Sequence[tuple[Fault, SendResult | BaseException]],
    *,
    deferred: bool,
) -> Fault | None:
    """What the app does about the faults of a batch of sends through ``account``, once per
    batch: an account's fault holds the account and pauses its running campaigns; with
    ``deferred``, a system's fault opens the account's breaker. Returns the batch's account or
    system fault, if any (the account's first)."""
    worst: tuple[Fault, BaseException] | None = None
    for fault, outcome in outcomes:
        if not isinstance(outcome, BaseException):
            continue
        if fault is Fault.ACCOUNT:
            worst = (fault, outcome)
            break
        # The request that met the outage says more than those held back after it.
        if fault is Fault.SYSTEM and (worst is None or isinstance(worst[1], NotRequested)):
            worst = (fault, outcome)
    if worst is None:
        timed_out = [
            o
            for f, o in outcomes
            if f is Fault.MAYBE_SENT and isinstance(o, TransportError) and o.maybe_delivered
        ]
        if deferred and timed_out:
            # The message is unknown (the gateway may have it), but a gateway that does not
            # answer is sick: the others wait, as for an outage, instead of timing out too.
            faults.note_outage(account, timed_out[0])
        return None
    fault, error = worst
    if fault is Fault.ACCOUNT:
        from .campaigns.states import pause_account_campaigns

        faults.hold(account, error)
        pause_account_campaigns(account, faults.describe(error))
    elif deferred:
        faults.note_outage(account, error)
    return fault


# -- the opt-out confirmation ---------------------------------------------------------------


def send_opt_out_confirmation(inbound: Message, confirmation: dict[str, Any]) -> Message | None:
    """Send ``OPT_OUT_CONFIRMATION`` (``confirmation``) to the customer who wrote ``inbound``,
    now, through the account whose sender they wrote to: the one message an opted-out contact
    gets. A failure is logged and kept on the message; it never undoes the opt-out or the
    inbound message."""
    account = account_for_sender(inbound.source_addr)
    outgoing = Message(
        destination_addr=inbound.destination_addr,
        source_addr=get_settings(account).DEFAULT_SOURCE_ADDR or inbound.source_addr or "",
        account=account,
    )
    if "text" in confirmation:
        outgoing.message_type, outgoing.text = Message.MessageType.TEXT, confirmation["text"]
    else:
        template = Template.objects.filter(name=confirmation["template"], is_active=True).first()
        if template is None:
            logger.error(
                "WhatsApp opt-out confirmation not sent: no active template %r",
                confirmation["template"],
            )
            return None
        outgoing.message_type, outgoing.template = Message.MessageType.TEMPLATE, template
        outgoing.template_params = {
            "body": [str(p) for p in confirmation["params"]],
            "header": confirmation.get("header"),
        }
    try:
        return send_now(outgoing, confirmation=True)
    except Exception:
        # A configuration error, an invalid message or a message_sending receiver's veto: the
        # customer's message is stored and the opt-out holds whatever becomes of the reply.
        logger.exception(
            "WhatsApp opt-out confirmation to %s failed", mask_number(inbound.destination_addr)
        )
        return None


# -- many messages at once (campaigns) ---------------------------------------------------------

#: Claims up to ``limit`` sendable messages of a campaign within an id range, in one statement,
#: only while the campaign runs. PostgreSQL skips rows another transaction holds.
_CLAIM_SQL = """
UPDATE {message} SET status = %s, status_changed_at = %s, submitted_at = %s
WHERE id IN (
    SELECT id FROM {message}
    WHERE campaign_id = %s AND id >= %s AND id <= %s AND status IN (%s, %s)
        AND (send_after IS NULL OR send_after <= %s)
    ORDER BY id LIMIT %s{lock}
)
AND status IN (%s, %s)
AND EXISTS (SELECT 1 FROM {campaign} WHERE id = %s AND status = %s)
RETURNING id, uuid, destination_addr, template_params, attempts, metadata, tags,
    target_content_type_id, target_object_id, expires_at
"""


def _json(field: Any, value: Any, connection: Any) -> Any:
    """A JSON column's value as read by a raw query, decoded as the ORM would."""
    return field.from_db_value(value, None, connection)


def claim_batch(
    campaign: Any,
    first_id: int,
    last_id: int,
    limit: int,
    now: datetime | None = None,
    *,
    due_by: datetime | None = None,
) -> list[Message]:
    """Claim (``draft``/``queued`` -> ``sending``) at most ``limit`` messages of ``campaign``
    with ids in ``[first_id, last_id]``, in ONE statement, and only while the campaign is
    ``running``; return them with their content filled in from the campaign, ready for
    :func:`~django_whatsapp.payloads.message_payload`. Of concurrent callers, each message goes
    to exactly one. ``message_sending`` is not sent here (see the campaign engine). A message
    whose ``send_after`` is later than ``due_by`` (by default the clock's time,
    :func:`django_whatsapp.clock.now`) waits: it is not claimed."""
    from .models import Campaign

    now = now or timezone.now()
    due_by = due_by or clock.now()
    alias = router.db_for_write(Message)
    connection = connections[alias]
    sql = _CLAIM_SQL.format(
        message=connection.ops.quote_name(Message._meta.db_table),
        campaign=connection.ops.quote_name(Campaign._meta.db_table),
        lock=" FOR UPDATE SKIP LOCKED"
        if connection.features.has_select_for_update_skip_locked
        else "",
    )
    params = [
        Status.SENDING,
        now,
        now,
        campaign.pk,
        first_id,
        last_id,
        *SENDABLE,
        due_by,
        limit,
        *SENDABLE,
        campaign.pk,
        Campaign.Status.RUNNING,
    ]
    params = [
        connection.ops.adapt_datetimefield_value(p) if isinstance(p, datetime) else p
        for p in params
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    uuid_field = Message._meta.get_field("uuid")
    params_field = Message._meta.get_field("template_params")
    claimed = []
    metadata_field = Message._meta.get_field("metadata")
    tags_field = Message._meta.get_field("tags")
    for row in sorted(rows):
        (
            pk,
            uuid,
            destination,
            template_params,
            attempts,
            metadata,
            tags,
            target_type,
            target,
            expires_at,
        ) = row
        message = Message(
            pk=pk,
            uuid=uuid_field.to_python(uuid),
            campaign=campaign,
            account=campaign.account,
            message_type=campaign.message_type,
            source_addr=campaign.source_addr,
            destination_addr=destination,
            text=campaign.text,
            file_url=campaign.file_url,
            template=campaign.template,
            template_params=_json(params_field, template_params, connection),
            metadata=_json(metadata_field, metadata, connection),
            tags=_json(tags_field, tags, connection),
            target_content_type_id=target_type,
            target_object_id=target,
            attempts=attempts,
            status=Status.SENDING,
            status_changed_at=now,
            submitted_at=now,
            expires_at=_moment(expires_at),
        )
        message._state.adding = False
        message._state.db = alias
        claimed.append(message)
    return claimed


def _moment(value: Any) -> datetime | None:
    """A datetime column as a raw query reads it (SQLite: text in UTC), made aware."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return timezone.make_aware(moment, UTC) if timezone.is_naive(moment) else moment


#: Records a batch of accepted sends in one statement: each row's provider id and attempts,
#: only for rows still ``sending``.
_ACCEPT_SQL = """
UPDATE {message} SET status = %s, status_changed_at = %s,
    error_code = NULL, error_name = '', error_message = '',
    provider_message_id = CASE id {ids} END,
    attempts = attempts + CASE id {attempts} END
WHERE id IN ({pks}) AND status = %s
RETURNING id, attempts
"""


#: The same in one statement on PostgreSQL, the events inserted by it too (arrays for the
#: values: four parameters whatever the batch's size).
_ACCEPT_PG_SQL = """
WITH input AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(provider_ids)s::numeric[], %(attempts)s::integer[],
                         %(payloads)s::text[]) AS i(id, provider_message_id, attempts, payload)
), upd AS (
    UPDATE {message} SET status = %(accepted)s, status_changed_at = %(now)s,
        error_code = NULL, error_name = '', error_message = '',
        provider_message_id = input.provider_message_id,
        attempts = {message}.attempts + input.attempts
    FROM input
    WHERE {message}.id = input.id AND {message}.status = %(sending)s
    RETURNING {message}.id, {message}.attempts
), ev AS (
    INSERT INTO {event} (message_id, status, provider_status, source, payload, received_at)
    SELECT upd.id, %(accepted)s, NULL, %(source)s, input.payload::jsonb, %(now)s
    FROM upd JOIN input ON input.id = upd.id
    RETURNING id, message_id
)
SELECT upd.id, upd.attempts, ev.id FROM upd JOIN ev ON ev.message_id = upd.id
"""


def record_accepted(sent: Sequence[tuple[Message, SendResult]]) -> list[Message]:
    """Record a batch of sends the gateway took: every message still ``sending`` becomes
    ``accepted`` with its provider id and attempts, with one ``send`` event each, all or nothing
    (on PostgreSQL one statement; elsewhere one UPDATE and one INSERT in a transaction);
    ``status_changed`` and ``message_sent`` follow for each. A provider id already used by
    another message makes the batch fall back to :func:`record_send` one message at a time,
    where the clash is that message's error; so does a message that is no longer ``sending`` (a
    worker that took its chunk over settled it as ``unknown``): the status rule adopts the
    gateway's id."""
    if not sent:
        return []
    now = timezone.now()
    alias = router.db_for_write(Message)
    connection = connections[alias]
    by_pk = {m.pk: (m, r) for m, r in sent}
    payloads = {m.pk: storable_answer(r.body) for m, r in sent}
    try:
        if connection.vendor == "postgresql":
            rows = _accept_in_one_statement(sent, payloads, now, alias)
        else:
            rows = _accept_in_a_transaction(sent, payloads, now, alias)
    except (IntegrityError, DataError):
        # A provider id another message has, or one the column cannot hold: each message is
        # recorded alone, where that is its own error (the others are accepted).
        return [record_send(message, result) for message, result in sent]
    recorded: list[tuple[Message, StatusEvent]] = []
    updated: set[int] = set()
    for pk, attempts, event_id in rows:
        message, result = by_pk[pk]
        updated.add(pk)
        message.status, message.status_changed_at = Status.ACCEPTED, now
        message.provider_message_id, message.attempts = result.message_id, attempts
        message.error_code, message.error_name, message.error_message = None, "", ""
        event = stored_event(
            message, Status.ACCEPTED, Source.SEND, payloads[pk], now, event_id, alias
        )
        recorded.append((message, event))
    late = [(m, r) for m, r in sent if m.pk not in updated]
    for message, result in late:
        record_send(message, result)
    for message, event in recorded:
        signals.status_changed.send(
            sender=Message,
            message=message,
            old_status=Status.SENDING,
            new_status=Status.ACCEPTED,
            event=event,
        )
        signals.message_sent.send(sender=Message, message=message)
    logger.info("WhatsApp: %d message(s) accepted", len(recorded))
    return [message for message, _ in recorded] + [message for message, _ in late]


def _accept_in_one_statement(
    sent: Sequence[tuple[Message, SendResult]],
    payloads: dict[int, Any],
    now: datetime,
    alias: str,
) -> list[tuple[int, int, int]]:
    connection = connections[alias]
    sql = _ACCEPT_PG_SQL.format(
        message=connection.ops.quote_name(Message._meta.db_table),
        event=connection.ops.quote_name(StatusEvent._meta.db_table),
    )
    params: dict[str, Any] = {
        "ids": [m.pk for m, _ in sent],
        # numeric: any integer binds; one the column cannot hold fails the statement (DataError)
        "provider_ids": [r.message_id for _, r in sent],
        "attempts": [r.attempts for _, r in sent],
        "payloads": [json.dumps(payloads[m.pk]) for m, _ in sent],
        "accepted": Status.ACCEPTED,
        "sending": Status.SENDING,
        "source": Source.SEND,
        "now": now,
    }
    # Inside a caller's transaction, a savepoint keeps a clash from breaking it.
    guard = transaction.atomic(using=alias) if connection.in_atomic_block else nullcontext()
    with guard, connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(int(pk), int(attempts), int(event)) for pk, attempts, event in cursor.fetchall()]


def _accept_in_a_transaction(
    sent: Sequence[tuple[Message, SendResult]],
    payloads: dict[int, Any],
    now: datetime,
    alias: str,
) -> list[tuple[int, int, int]]:
    connection = connections[alias]
    sql = _ACCEPT_SQL.format(
        message=connection.ops.quote_name(Message._meta.db_table),
        ids=" ".join("WHEN %s THEN %s" for _ in sent),
        attempts=" ".join("WHEN %s THEN %s" for _ in sent),
        pks=", ".join("%s" for _ in sent),
    )
    params: list[Any] = [Status.ACCEPTED, connection.ops.adapt_datetimefield_value(now)]
    params += [v for m, r in sent for v in (m.pk, r.message_id)]
    params += [v for m, r in sent for v in (m.pk, r.attempts)]
    params += [m.pk for m, _ in sent]
    params.append(Status.SENDING)
    with transaction.atomic(using=alias):
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            updated = dict(cursor.fetchall())
        events = StatusEvent.objects.using(alias).bulk_create(
            StatusEvent(
                message_id=pk,
                status=Status.ACCEPTED,
                provider_status=PROVIDER_CODES.get(Status.ACCEPTED),
                source=Source.SEND,
                payload=payloads[pk],
                received_at=now,
            )
            for pk in updated
        )
    return [
        (pk, attempts, event.pk)
        for (pk, attempts), event in zip(updated.items(), events, strict=True)
    ]


#: Claims the stored messages given (``draft``/``queued`` -> ``sending``) in one statement.
_CLAIM_IDS_SQL = """
UPDATE {message} SET status = %s, status_changed_at = %s, submitted_at = %s
WHERE id IN ({pks}) AND status IN (%s, %s)
RETURNING id
"""


def claim_messages(messages: Sequence[Message], now: datetime | None = None) -> list[Message]:
    """Claim stored messages (``draft``/``queued`` -> ``sending``) in ONE statement; return the
    claimed ones, in the order given, updated in place. A message another caller has (or that
    is no longer sendable) is refreshed and left out: of concurrent callers, each message goes
    to exactly one. Nothing is validated and ``message_sending`` is not sent here (see
    :func:`prepare_claimed`)."""
    if not messages:
        return []
    now = now or timezone.now()
    alias = router.db_for_write(Message)
    connection = connections[alias]
    sql = _CLAIM_IDS_SQL.format(
        message=connection.ops.quote_name(Message._meta.db_table),
        pks=", ".join("%s" for _ in messages),
    )
    stamp = connection.ops.adapt_datetimefield_value(now)
    params = [Status.SENDING, stamp, stamp, *(m.pk for m in messages), *SENDABLE]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        taken = {row[0] for row in cursor.fetchall()}
    claimed = []
    for message in messages:
        if message.pk in taken:
            message.status, message.status_changed_at, message.submitted_at = (
                Status.SENDING,
                now,
                now,
            )
            claimed.append(message)
        else:
            message.refresh_from_db()
    return claimed


_SAMPLE_UUID = uuid.UUID(int=0)
#: (base URL and secrets, the sample URL, its signature): one tuple, replaced whole, so that a
#: thread never reads the parts of two different settings.
_url_template: tuple[tuple[str, tuple[str, ...]], str, str] | None = None


def many_callback_url(message_uuid: uuid.UUID, conf: WhatsAppSettings) -> str | None:
    """:func:`~django_whatsapp.signing.callback_url`, without resolving the URL for each of many
    messages: the URL resolved once per base and secret, with the message's UUID and signature
    put in."""
    global _url_template
    if not conf.CALLBACK_BASE_URL:
        return None
    key = (conf.CALLBACK_BASE_URL, conf.CALLBACK_SECRETS)
    template = _url_template
    if template is None or template[0] != key:
        sample = callback_url(_SAMPLE_UUID, conf) or ""
        template = _url_template = (
            key,
            sample,
            sign(_SAMPLE_UUID, conf.require_callback_secrets()[0]),
        )
    _key, sample, signature = template
    real = sign(message_uuid, conf.require_callback_secrets()[0])
    return sample.replace(str(_SAMPLE_UUID), str(message_uuid)).replace(signature, real)


class Prepared(NamedTuple):
    """A claimed message made ready (:func:`prepare_claimed`): its request ``payload``, or the
    ``refusal`` already recorded on it (``not_sent``, never submitted; or ``queued`` again for
    deferred work). ``raised``: the refusal is what a ``message_sending`` receiver (or building
    the payload) raised, not the opt-out, the window policy or a limit. ``waits_until``: the
    message went back to ``queued`` without a request, not to be claimed before then (its
    recipient's sending hours, or the daily limit: ``refusal`` is then
    :class:`~django_whatsapp.exceptions.DailyLimitReached`)."""

    message: Message
    payload: dict[str, Any] | None
    refusal: Exception | None = None
    raised: bool = False
    waits_until: datetime | None = None


#: The error name a message waiting for its recipient's sending hours carries (it is queued).
OUTSIDE_HOURS = "Outside sending hours"


def prepare_claimed(
    messages: Sequence[Message],
    conf: WhatsAppSettings,
    *,
    confirmation: bool = False,
    deferred: bool = False,
    hours: SendingHours | None = None,
) -> list[Prepared]:
    """Each claimed message with its request body, or with what refused it or made it wait,
    recorded on the message, in the order given. In turn:

    1. its expiry (:mod:`django_whatsapp.expiry`): an expired message is ``not_sent``;
    2. the opt-out (one query for them all; skipped for the opt-out's own ``confirmation``) and
       the window policy;
    3. ``hours``, a campaign's sending hours: a recipient outside them waits, ``queued`` with
       ``send_after`` at their next opening;
    4. ``DAILY_LIMIT`` (:mod:`django_whatsapp.tier`; one query of the contacts' windows and a
       few cache reads for them all): a new recipient over the limit ends ``not_sent`` with
       :class:`~django_whatsapp.exceptions.DailyLimitReached`, or with ``deferred`` (queued and
       campaign work) waits, ``queued``, until a place frees;
    5. the ``message_sending`` receivers.
    """
    now = clock.now()
    done: dict[int, Prepared] = {}
    live: list[tuple[int, Message]] = []
    for position, message in enumerate(messages):
        if expiry.expired(message, now):
            done[position] = _refuse(message, expiry.error(message), deferred=deferred)
        else:
            live.append((position, message))
    opted_out = (
        optout.opted_out_numbers(m.destination_addr for _p, m in live)
        if live and not confirmation
        else set()
    )
    passed: list[tuple[int, Message]] = []
    for position, message in live:
        refused: WhatsAppError | None = (
            optout.refusal(message) if message.destination_addr in opted_out else None
        )
        if refused is None:
            try:
                window.check(message, conf)  # SERVICE_WINDOW_POLICY: raises under "enforce"
            except ServiceWindowClosed as error:
                refused = error
        if refused is None:
            passed.append((position, message))
        else:
            done[position] = _refuse(message, refused, deferred=deferred)
    if hours is not None and passed:
        passed = _outside_hours(passed, hours, conf, now, done)
    if conf.DAILY_LIMIT is not None and not confirmation and passed:
        passed = _take_places(passed, conf, now, done, deferred=deferred)
    for position, message in passed:
        try:
            payload = message_payload(message, callback_url=many_callback_url(message.uuid, conf))
            signals.message_sending.send(sender=Message, message=message, payload=payload)
        except Exception as exc:
            vetoed = WhatsAppError(f"{type(exc).__name__}: {exc}", name="Not submitted")
            done[position] = _refuse(message, vetoed, deferred=deferred, shown=exc)
        else:
            done[position] = Prepared(message, payload)
    return [done[position] for position in range(len(messages))]


def _refuse(
    message: Message, error: WhatsAppError, *, deferred: bool, shown: Exception | None = None
) -> Prepared:
    """Record a refusal before any request: ``not_sent`` with the reason, never submitted (or,
    for deferred work and a fault that is not the message's, ``queued`` again). ``shown``: what
    a receiver raised, when ``error`` stands for it."""
    Message.objects.filter(pk=message.pk).update(submitted_at=None)
    message.submitted_at = None
    record_send(message, error, deferred=deferred)
    waits = message.send_after if message.status == Status.QUEUED else None
    return Prepared(message, None, shown or error, shown is not None, waits)


def _outside_hours(
    passed: list[tuple[int, Message]],
    hours: SendingHours,
    conf: WhatsAppSettings,
    now: datetime,
    done: dict[int, Prepared],
) -> list[tuple[int, Message]]:
    """Recipients outside their sending hours go back to ``queued`` until the hours open (one
    UPDATE per opening); returns the others."""
    waiting: defaultdict[datetime, list[tuple[int, Message]]] = defaultdict(list)
    rest = []
    for position, message in passed:
        opening = opens_at(message.destination_addr, hours, now, conf)
        if opening is None:
            rest.append((position, message))
        else:
            waiting[opening].append((position, message))
    changed = timezone.now()
    for opening, group in waiting.items():
        detail = _(
            "Outside the recipient's sending hours (%(hours)s in their own time): waits until "
            "%(when)s."
        ) % {"hours": str(hours), "when": opening.isoformat(timespec="minutes")}
        fields: dict[str, Any] = {
            "status": Status.QUEUED,
            "status_changed_at": changed,
            "submitted_at": None,
            "send_after": opening,
            "error_code": None,
            "error_name": OUTSIDE_HOURS,
            "error_message": detail,
        }
        Message.objects.filter(pk__in=[m.pk for _p, m in group], status=Status.SENDING).update(
            **fields
        )
        for position, message in group:
            for name, value in fields.items():
                setattr(message, name, value)
            done[position] = Prepared(message, None, waits_until=opening)
    return rest


def _take_places(
    passed: list[tuple[int, Message]],
    conf: WhatsAppSettings,
    now: datetime,
    done: dict[int, Prepared],
    *,
    deferred: bool,
) -> list[tuple[int, Message]]:
    """Take the recipients' places in the daily limit; refuse those over it, or all when the
    cache that counts it cannot be reached (fail closed). Returns the admitted ones."""
    numbers = [m.destination_addr for _p, m in passed]
    conversing = {n for n, state in window.states(numbers, now=now).items() if state.is_open}
    try:
        admission = tier.admit(conf, numbers, now, free=conversing)
    except RateLimitUnavailable as error:
        for position, message in passed:
            done[position] = _refuse(message, error, deferred=deferred)
        return []
    if not admission.refused:
        return passed
    over = admission.error()
    rest = []
    for position, message in passed:
        if message.destination_addr in admission.refused:
            done[position] = _refuse(message, over, deferred=deferred)
        else:
            rest.append((position, message))
    return rest


def outcome_of(future: Future[SendResult]) -> SendResult | BaseException:
    """What ``client.send`` did in another thread: its result, or the exception it raised."""
    try:
        return future.result()
    except Exception as error:  # handed to the recording, which keeps it on the message
        return error


class Recorded(NamedTuple):
    """What :func:`record_outcomes` did with a batch: how many were ``accepted``; the messages
    whose recording raised (by id, the error as text); the batch's fault of the account or of
    the system, if any; and how many messages went back to ``queued`` for it."""

    accepted: int
    errors: dict[int, str]
    fault: Fault | None = None
    requeued: int = 0


def record_outcomes(
    outcomes: Sequence[tuple[Message, SendResult | BaseException]], *, deferred: bool = False
) -> Recorded:
    """Record what the gateway did with a batch of claimed messages of one account: the accepted
    ones together (:func:`record_accepted`), the others one by one as :func:`record_send` does
    (``deferred``: see there), then :func:`react` once for the batch."""
    accepted = record_accepted([(m, o) for m, o in outcomes if isinstance(o, SendResult)])
    errors: dict[int, str] = {}
    judged: list[tuple[Fault, SendResult | BaseException]] = []
    requeued = 0
    for message, outcome in outcomes:
        if isinstance(outcome, SendResult):
            continue
        fault = faults.classify(outcome)
        judged.append((fault, outcome))
        try:
            _record_one(message, outcome, fault, deferred=deferred)
        except Exception as error:  # recorded on the message as unknown; go on with the others
            logger.exception("WhatsApp: message %s raised", message.pk)
            errors[message.pk] = f"{type(error).__name__}: {error}"
        if message.status == Status.QUEUED:
            requeued += 1
    batch_fault = react(outcomes[0][0].account, judged, deferred=deferred) if judged else None
    return Recorded(len(accepted), errors, batch_fault, requeued)


def requeue(messages: Sequence[Message]) -> int:
    """Give claimed messages that certainly did not reach the gateway (rate-limited while their
    campaign was paused or cancelled) back: ``sending`` -> ``queued``. Returns how many."""
    now = timezone.now()
    return Message.objects.filter(pk__in=[m.pk for m in messages], status=Status.SENDING).update(
        status=Status.QUEUED, status_changed_at=now, submitted_at=None
    )
