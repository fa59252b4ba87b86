"""One send's outcome recorded: what :func:`django_whatsapp.faults.classify` makes of it, kept on
the message, and what the app does about a fault of the account or of the system (:func:`react`).

A message never stays ``sending``: should recording fail, it is settled anyway, in a documented
state (:func:`record_outcome`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.db import DatabaseError, IntegrityError, router, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import faults, signals, window
from ..client import SendResult
from ..exceptions import (
    DailyLimitReached,
    NotRequested,
    ServiceWindowClosed,
    TransportError,
    WhatsAppError,
)
from ..faults import Fault
from ..models import Message, StatusEvent
from ..status_rule import apply_report, apply_status
from .answers import MAX_ERROR_MESSAGE, error_fields, error_payload, storable_answer, storable_text

logger = logging.getLogger("django_whatsapp")

Status = Message.Status
Source = StatusEvent.Source


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
    apply_status(message, status, source=Source.SEND, payload=error_payload(error))
    signals.message_failed.send(sender=Message, message=message, error=error)
    return message


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
        record_outcome(message, outcome, fault, deferred=deferred)
    finally:
        react(message.account, [(fault, outcome)], deferred=deferred)
    return message


def record_outcome(
    message: Message, outcome: SendResult | BaseException, fault: Fault, *, deferred: bool
) -> None:
    """Record ``outcome`` (judged ``fault``) on a claimed message as :func:`record_send` does,
    without :func:`react`: the message is settled anyway when recording fails; an outcome that
    is not a :class:`WhatsAppError` (a bug on the way) is raised again once recorded."""
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
            apply_report(message, Status.ACCEPTED, source=Source.SEND, payload=payload, sent=result)
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
        from ..campaigns.states import pause_account_campaigns

        faults.hold(account, error)
        pause_account_campaigns(account, faults.describe(error))
    elif deferred:
        faults.note_outage(account, error)
    return fault
