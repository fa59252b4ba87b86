"""A batch of claimed messages' outcomes recorded together (bulk sends and campaigns): the
accepted ones in one go (:func:`record_accepted`), the others one by one, the faults reacted to
once for the batch (:func:`record_outcomes`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future
from typing import NamedTuple

from django.db import DataError, IntegrityError, router
from django.utils import timezone

from .. import faults, signals
from ..client import SendResult
from ..fastpaths import accept
from ..faults import Fault
from ..models import Message, StatusEvent
from ..status_rule import PROVIDER_CODES, stored_event
from .answers import storable_answer
from .record import react, record_outcome, record_send

logger = logging.getLogger("django_whatsapp")

Status = Message.Status
Source = StatusEvent.Source


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
            record_outcome(message, outcome, fault, deferred=deferred)
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


def record_accepted(sent: Sequence[tuple[Message, SendResult]]) -> list[Message]:
    """Record a batch of sends the gateway took as :func:`record_send` records each (the rule):
    every message still ``sending`` becomes ``accepted`` with its provider id and attempts, with
    one ``send`` event each, all or nothing, in one statement on PostgreSQL and one UPDATE and
    one INSERT elsewhere (:mod:`django_whatsapp.fastpaths.accept`); ``status_changed`` and
    ``message_sent`` follow for each. A message that is no longer ``sending`` (a callback
    settled it meanwhile, a cancel, a worker that took its chunk over) is recorded by
    :func:`record_send`: the status rule keeps its higher status and adopts the gateway's id.
    So does the whole batch when a provider id is already another message's (the clash is then
    that message's own error) or does not fit the column."""
    if not sent:
        return []
    if len({result.message_id for _m, result in sent}) < len(sent):
        # The gateway gave two sends one id: the first in the batch keeps it, as by the rule.
        return [record_send(message, result) for message, result in sent]
    now = timezone.now()
    alias = router.db_for_write(Message)
    by_pk = {m.pk: (m, r) for m, r in sent}
    payloads = {m.pk: storable_answer(r.body) for m, r in sent}
    try:
        rows = accept.accept(
            alias,
            [accept.Accepted(m.pk, r.message_id, r.attempts, payloads[m.pk]) for m, r in sent],
            now=now,
            accepted=Status.ACCEPTED,
            sending=Status.SENDING,
            source=Source.SEND,
            provider_status=PROVIDER_CODES.get(Status.ACCEPTED),
        )
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
