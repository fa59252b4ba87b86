"""The status rule (SPEC section 5): every status's rank, and the one function that applies every
report (a send's result, a callback, a poll) to a message.

A report moves a message to the higher-ranked of its current status and the reported one, and is
kept as a :class:`~django_whatsapp.models.StatusEvent` unless it is an exact duplicate. The rule
reads once, in Python: :func:`apply_by_rule`, a transaction that locks the row. On PostgreSQL
the same work runs as one statement (:mod:`django_whatsapp.fastpaths.report`, and for the
callback :mod:`django_whatsapp.fastpaths.by_uuid`), held equal to the rule by
``tests/test_fastpaths.py``; :func:`apply_report` chooses.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from django.db import IntegrityError, connections, router, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from . import signals
from .fastpaths import by_uuid
from .fastpaths import report as fast_report
from .fastpaths.by_uuid import ReceiveFunctionMissing
from .models import FINAL_STATUSES, Message, StatusEvent

if TYPE_CHECKING:
    from .client import SendResult

logger = logging.getLogger("django_whatsapp")

Status = Message.Status
Source = StatusEvent.Source
_SOURCES = frozenset(Source.values)

__all__ = [
    "FINAL_STATUSES",
    "PROVIDER_CODES",
    "PROVIDER_STATUSES",
    "STATUS_ORDER",
    "STATUS_RANK",
    "ReceiveFunctionMissing",
    "ReportMismatch",
    "apply_by_rule",
    "apply_report",
    "apply_reports",
    "apply_status",
    "lower_ranked",
    "normalize_status",
    "receive_report",
    "receive_report_by_uuid",
    "resolve_status",
    "status_rank",
    "stored_event",
]

# -- ranks -------------------------------------------------------------------------------------

#: Every status in rank order: a report never moves a message to a lower-ranked status.
STATUS_ORDER: tuple[str, ...] = (
    Status.DRAFT,
    Status.QUEUED,
    Status.SENDING,
    Status.UNKNOWN,
    Status.ACCEPTED,
    Status.PENDING,
    Status.SENT,
    Status.DELIVERED,
    Status.SEEN,
    Status.NOT_SENT,
    Status.REJECTED,
    Status.ERROR,
    Status.FAILED,
    Status.DELETED,
)
STATUS_RANK: dict[str, int] = {status: rank for rank, status in enumerate(STATUS_ORDER)}

#: The provider's status codes (status endpoint and callbacks).
PROVIDER_STATUSES: dict[int, str] = {
    0: Status.SENT,
    1: Status.DELIVERED,
    2: Status.REJECTED,
    3: Status.ERROR,
    4: Status.FAILED,
    5: Status.DELETED,
    6: Status.PENDING,
    7: Status.SEEN,
}
PROVIDER_CODES: dict[str, int] = {name: code for code, name in PROVIDER_STATUSES.items()}
STATUS_ALIASES: dict[str, str] = {"read": Status.SEEN}


def status_rank(status: str) -> int:
    """The rank of a status; raises ``KeyError`` for an unknown one."""
    return STATUS_RANK[status]


def resolve_status(current: str, reported: str) -> str:
    """The status a message has after a report: the higher-ranked of the two (section 5)."""
    return reported if status_rank(reported) > status_rank(current) else current


def lower_ranked(status: str) -> list[str]:
    """Every status a report of ``status`` may move a message away from."""
    rank = status_rank(status)
    return [s for s in STATUS_ORDER if STATUS_RANK[s] < rank]


def normalize_status(value: Any) -> str:
    """A status name from a provider code (``1``, ``"1"``) or a name (``"delivered"``, ``"read"``).

    Raises ``ValueError`` with a readable reason for anything else.
    """
    if isinstance(value, bool):
        raise ValueError("status must be a status code or name, not a boolean")
    if isinstance(value, int):
        if value in PROVIDER_STATUSES:
            return PROVIDER_STATUSES[value]
        raise ValueError(f"unknown status code {value}")
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isascii() and text.isdigit() and len(text) < 4:
            return normalize_status(int(text))
        text = STATUS_ALIASES.get(text, text)
        if text in STATUS_RANK:
            return text
        raise ValueError(f"unknown status {value[:40]!r}")
    raise ValueError(f"status must be a status code or name, not {type(value).__name__}")


# -- applying a report -------------------------------------------------------------------------


class ReportMismatch(ValueError):
    """A report names another provider message than the one its message already has."""


def apply_status(
    message: Message, status: str | int, *, source: str, payload: dict[str, Any] | None = None
) -> StatusEvent | None:
    """Record a status report and move the message to the higher-ranked status (SPEC section 5).

    ``status`` is a status name or a provider code. Returns the new :class:`StatusEvent`, or
    ``None`` when the report is an exact duplicate of one already recorded (nothing changes).
    Sends ``status_changed`` when the status changed.
    """
    return apply_report(message, status, source=source, payload=payload)


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
    return apply_report(
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


def apply_report(
    message: Message,
    status: str | int,
    *,
    source: str,
    payload: dict[str, Any] | None = None,
    provider_message_id: int | None = None,
    expect: Iterable[str] = (),
    sent: SendResult | None = None,
) -> StatusEvent | None:
    """Apply one report by the rule (:func:`apply_by_rule`, which says what it does), on
    PostgreSQL in one statement (:mod:`django_whatsapp.fastpaths.report`) unless the report
    must adopt a provider id or is ``expect``-ed in given statuses.

    ``expect``: apply it only if the message is still in one of these statuses (else ``None``,
    nothing written): a worker settling the messages a dead one left in ``sending``. ``sent``:
    the gateway took the message; its id and attempts are stored with the report, all or
    nothing (an ``IntegrityError`` when the id belongs to another message)."""
    new = normalize_status(status)
    if source not in _SOURCES:
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
    return apply_by_rule(
        message,
        new,
        source=source,
        payload=payload,
        provider_message_id=provider_message_id,
        expect=expect,
        sent=sent,
    )


def apply_by_rule(
    message: Message,
    status: str | int,
    *,
    source: str,
    payload: dict[str, Any] | None = None,
    provider_message_id: int | None = None,
    expect: Iterable[str] = (),
    sent: SendResult | None = None,
) -> StatusEvent | None:
    """The status rule, on every database (see :func:`apply_report` for the arguments): in one
    transaction, lock the message's row and read its status; with ``expect``, stop (``None``)
    unless the status is one of them; adopt ``provider_message_id`` when the message has none
    (:class:`ReportMismatch` when it has another, or another message has it); with ``sent``,
    store its provider id and attempts and clear the error; keep the report as a
    :class:`StatusEvent` unless it is an exact duplicate (``None``, nothing else changes); raise
    the status to the reported one only from a lower rank. ``status_changed`` follows a change,
    once the row is written.

    The PostgreSQL statements of :mod:`django_whatsapp.fastpaths` do the same work in one round
    trip; ``tests/test_fastpaths.py`` holds them equal to this."""
    new = normalize_status(status)
    if source not in _SOURCES:
        raise ValueError(f"unknown source {source!r}")
    alias = router.db_for_write(Message, instance=message)
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


def stored_event(
    message: Message,
    status: str,
    source: str,
    payload: dict[str, Any],
    received_at: Any,
    pk: int,
    alias: str,
) -> StatusEvent:
    """The :class:`StatusEvent` a raw statement stored (with primary key ``pk``), as the ORM
    would have returned it."""
    event = StatusEvent(
        pk=pk,
        message=message,
        status=status,
        provider_status=PROVIDER_CODES.get(status),
        source=source,
        payload=payload,
        received_at=received_at,
    )
    event._state.adding = False
    event._state.db = alias
    return event


def _apply_in_one_statement(
    message: Message,
    new: str,
    *,
    source: str,
    payload: dict[str, Any] | None,
    alias: str,
    sent: SendResult | None,
) -> StatusEvent | None:
    """:func:`apply_by_rule` in one round trip (:func:`django_whatsapp.fastpaths.report.apply_one`):
    no SELECT before it, no transaction around it."""
    now = timezone.now()
    kept = payload if payload is not None else {}
    lower = lower_ranked(new)
    applied = fast_report.apply_one(
        alias,
        message.pk,
        new,
        provider_status=PROVIDER_CODES.get(new),
        source=source,
        payload=kept,
        now=now,
        lower=lower,
        sent=(sent.message_id, sent.attempts) if sent is not None else None,
    )
    if applied is None:
        raise Message.DoesNotExist(f"No message with id {message.pk}.")
    if applied.event_id is None:  # an exact duplicate: nothing was written
        message.status = applied.old
        return None
    event = stored_event(message, new, source, kept, now, applied.event_id, alias)
    if sent is not None and applied.attempts is not None:
        message.provider_message_id, message.attempts = sent.message_id, applied.attempts
        _clear_error(message)
    changed = applied.old in lower
    if changed:
        message.status_changed_at = now
    return _applied(message, event, applied.old, new if changed else applied.old)


# -- a batch of reports ------------------------------------------------------------------------


class Report(NamedTuple):
    """One report of a batch (:func:`apply_reports`): the gateway's word about ``message``."""

    message: Message
    status: str | int
    payload: dict[str, Any] | None = None
    provider_message_id: int | None = None


def apply_reports(
    reports: Sequence[Report], *, source: str
) -> list[StatusEvent | Exception | None]:
    """Apply a batch of reports from one ``source``, each by the rule of :func:`receive_report`.

    Returns, for each report in order, its new :class:`StatusEvent`, ``None`` for an exact
    duplicate, or the exception that refused it (:class:`ReportMismatch`,
    ``Message.DoesNotExist``): one bad report does not stop the others. Each message object is
    updated in place and ``status_changed`` is sent for each change (a message's in the order of
    its reports).

    On PostgreSQL the batch is one statement, one round trip however many reports it holds
    (:func:`django_whatsapp.fastpaths.report.apply_batch`); a report that must adopt a provider
    id, and every later report of a message already named, go one by one after it, in order.
    Elsewhere each report is applied in turn.
    """
    if source not in _SOURCES:
        raise ValueError(f"unknown source {source!r}")
    statuses = [normalize_status(one.status) for one in reports]
    results: list[StatusEvent | Exception | None] = [None] * len(reports)
    by_alias: dict[str, list[int]] = {}  # the reports that go in one statement, per database
    alone: list[int] = []
    seen: set[int] = set()
    for index, one in enumerate(reports):
        message = one.message
        alias = router.db_for_write(Message, instance=message)
        if (
            connections[alias].vendor == "postgresql"
            and message.pk not in seen
            and one.provider_message_id in (None, message.provider_message_id)
        ):
            by_alias.setdefault(alias, []).append(index)
        else:
            alone.append(index)
        # A message's later reports go alone too, after the batch: in the order given.
        seen.add(message.pk)
    changed_from: dict[int, str] = {}
    for alias, indexes in by_alias.items():
        changed_from.update(
            _apply_batch(reports, statuses, indexes, results, source=source, alias=alias)
        )
    for index in sorted(changed_from):  # the signals in the batch's order, after the statement
        event = cast(StatusEvent, results[index])
        _applied(reports[index].message, event, changed_from[index], statuses[index])
    for index in alone:  # after the batch: a message's second report comes after its first
        one = reports[index]
        try:
            results[index] = apply_report(
                one.message,
                statuses[index],
                source=source,
                payload=one.payload,
                provider_message_id=one.provider_message_id,
            )
        except (ReportMismatch, Message.DoesNotExist) as error:
            results[index] = error
    return results


def _apply_batch(
    reports: Sequence[Report],
    statuses: list[str],
    indexes: list[int],
    results: list[StatusEvent | Exception | None],
    *,
    source: str,
    alias: str,
) -> dict[int, str]:
    """The reports at ``indexes`` in one statement; their results go to ``results``. Returns
    the old status of each message whose status the batch raised, by index."""
    now = timezone.now()
    payloads: list[dict[str, Any]] = [reports[i].payload or {} for i in indexes]
    rows = fast_report.apply_batch(
        alias,
        [
            fast_report.BatchRow(
                reports[i].message.pk, statuses[i], PROVIDER_CODES.get(statuses[i]), payload
            )
            for i, payload in zip(indexes, payloads, strict=True)
        ],
        source=source,
        now=now,
        order=STATUS_ORDER,
    )
    changed_from: dict[int, str] = {}
    for index, payload in zip(indexes, payloads, strict=True):
        message = reports[index].message
        old, event_id, changed = rows[message.pk]
        if old is None:
            results[index] = Message.DoesNotExist(f"No message with id {message.pk}.")
            continue
        if event_id is None:  # an exact duplicate: nothing was written
            message.status = old
            results[index] = None
            continue
        event = stored_event(message, statuses[index], source, payload, now, event_id, alias)
        if changed:
            message.status_changed_at = now
            changed_from[index] = old
        else:
            message.status = old
        results[index] = event
    return changed_from


# -- a callback's report, found by the message's UUID ----------------------------------------


def receive_report_by_uuid(
    columns: str,
    load: Any,
    key: Any,
    status: str | int,
    *,
    source: str,
    payload: dict[str, Any],
    provider_message_id: int | None,
    alias: str,
) -> tuple[Message, StatusEvent | None] | None:
    """Find a message by its UUID and apply a report to it in ONE statement (PostgreSQL): the
    callback's common case (:mod:`django_whatsapp.fastpaths.by_uuid`). ``columns`` is the
    select list of the message's lookup over the row ``{row}`` and ``load(row)`` builds the
    :class:`Message` from its values. Returns ``None`` when no message has the UUID, else the
    message and its new event (``None``: an exact duplicate). A report naming another provider
    id than the message's goes through :func:`receive_report` (it adopts the id, or raises
    :class:`ReportMismatch`). Raises :class:`ReceiveFunctionMissing` (nothing written) before
    migration 0008 has run."""
    new = normalize_status(status)
    if source not in _SOURCES:
        raise ValueError(f"unknown source {source!r}")
    connection = connections[alias]
    now = timezone.now()
    params = {
        "uuid": key,
        "payload": StatusEvent._meta.get_field("payload").get_db_prep_save(payload, connection),
        "now": now,
    }
    if provider_message_id is not None:
        params["provider_message_id"] = provider_message_id
    sql = by_uuid.call_text(
        columns,
        new,
        PROVIDER_CODES.get(new),
        source,
        tuple(lower_ranked(new)),
        provider_message_id is not None,
    )
    row = by_uuid.call(alias, sql, params)
    if row is None:
        return None
    *values, event_id, changed = row
    message: Message = load(values)
    if provider_message_id is not None and provider_message_id != message.provider_message_id:
        event = receive_report(
            message,
            new,
            source=source,
            payload=payload,
            provider_message_id=provider_message_id,
        )
        return message, event
    if event_id is None:  # an exact duplicate: nothing was written
        return message, None
    event = stored_event(message, new, source, payload, now, event_id, alias)
    old = message.status
    if changed:
        message.status_changed_at = now
    return message, _applied(message, event, old, new if changed else old)
