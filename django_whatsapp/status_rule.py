"""The status rule (SPEC section 5): every status's rank, and the one function that applies every
report (a send's result, a callback, a poll) to a message.

A report moves a message to the higher-ranked of its current status and the reported one, and is
kept as a :class:`~django_whatsapp.models.StatusEvent` unless it is an exact duplicate. On
PostgreSQL the whole rule runs as one statement (:data:`_APPLY_SQL`); elsewhere in a transaction
that locks the row.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from django.db import IntegrityError, ProgrammingError, connections, router, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from . import signals
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
    "apply_reports",
    "apply_status",
    "lower_ranked",
    "normalize_status",
    "receive_report",
    "receive_report_by_uuid",
    "resolve_status",
    "status_rank",
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


# -- a batch of reports ------------------------------------------------------------------------


class Report(NamedTuple):
    """One report of a batch (:func:`apply_reports`): the gateway's word about ``message``."""

    message: Message
    status: str | int
    payload: dict[str, Any] | None = None
    provider_message_id: int | None = None


#: The reports of a batch in one statement (PostgreSQL): the same rule as :data:`_APPLY_SQL` for
#: each row of ``input``. The messages are locked in id order (two batches never wait on each
#: other in a cycle); an exact duplicate is turned away by the partial unique index; a status is
#: raised only from a lower rank (its position in ``order``).
_APPLY_BATCH_SQL = """
WITH input AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(statuses)s::text[], %(codes)s::integer[],
                         %(payloads)s::text[]) AS i(id, status, provider_status, payload)
), cur AS (
    SELECT id, status FROM {message} WHERE id = ANY(%(ids)s::bigint[]) ORDER BY id FOR UPDATE
), ev AS (
    INSERT INTO {event} (message_id, status, provider_status, source, payload, received_at)
    SELECT input.id, input.status, input.provider_status, %(source)s, input.payload::jsonb,
           %(now)s
    FROM input JOIN cur ON cur.id = input.id
    ON CONFLICT DO NOTHING
    RETURNING id, message_id
), upd AS (
    UPDATE {message} SET status = input.status, status_changed_at = %(now)s
    FROM input JOIN cur ON cur.id = input.id JOIN ev ON ev.message_id = input.id
    WHERE {message}.id = input.id
      AND array_position(%(order)s::text[], cur.status::text)
          < array_position(%(order)s::text[], input.status)
    RETURNING {message}.id
)
SELECT input.id, cur.status, ev.id, upd.id IS NOT NULL
FROM input LEFT JOIN cur ON cur.id = input.id LEFT JOIN ev ON ev.message_id = input.id
     LEFT JOIN upd ON upd.id = input.id
"""


def apply_reports(
    reports: Sequence[Report], *, source: str
) -> list[StatusEvent | Exception | None]:
    """Apply a batch of reports from one ``source``, each by the rule of :func:`receive_report`.

    Returns, for each report in order, its new :class:`StatusEvent`, ``None`` for an exact
    duplicate, or the exception that refused it (:class:`ReportMismatch`,
    ``Message.DoesNotExist``): one bad report does not stop the others. Each message object is
    updated in place and ``status_changed`` is sent for each change (a message's in the order of
    its reports).

    On PostgreSQL the batch is one statement, one round trip however many reports it holds (a
    report that must adopt a provider id, and a message named twice, go one by one); elsewhere
    each report is applied in turn.
    """
    if source not in _SOURCES:
        raise ValueError(f"unknown source {source!r}")
    statuses = [normalize_status(report.status) for report in reports]
    results: list[StatusEvent | Exception | None] = [None] * len(reports)
    by_alias: dict[str, list[int]] = {}  # the reports that go in one statement, per database
    alone: list[int] = []
    seen: set[int] = set()
    for index, report in enumerate(reports):
        message = report.message
        alias = router.db_for_write(Message, instance=message)
        if (
            connections[alias].vendor == "postgresql"
            and message.pk not in seen
            and report.provider_message_id in (None, message.provider_message_id)
        ):
            by_alias.setdefault(alias, []).append(index)
            seen.add(message.pk)
        else:
            alone.append(index)
    changed_from: dict[int, str] = {}
    for alias, indexes in by_alias.items():
        changed_from.update(
            _apply_batch(reports, statuses, indexes, results, source=source, alias=alias)
        )
    for index in sorted(changed_from):  # the signals in the batch's order, after the statement
        event = cast(StatusEvent, results[index])
        _applied(reports[index].message, event, changed_from[index], statuses[index])
    for index in alone:  # after the batch: a message's second report comes after its first
        report = reports[index]
        try:
            results[index] = _apply(
                report.message,
                statuses[index],
                source=source,
                payload=report.payload,
                provider_message_id=report.provider_message_id,
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
    connection = connections[alias]
    now = timezone.now()
    payloads: list[dict[str, Any]] = [reports[i].payload or {} for i in indexes]
    params: dict[str, Any] = {
        "ids": [reports[i].message.pk for i in indexes],
        "statuses": [statuses[i] for i in indexes],
        "codes": [PROVIDER_CODES.get(statuses[i]) for i in indexes],
        "payloads": [json.dumps(payload) for payload in payloads],
        "source": source,
        "now": now,
        "order": list(STATUS_ORDER),
    }
    sql = _APPLY_BATCH_SQL.format(
        event=connection.ops.quote_name(StatusEvent._meta.db_table),
        message=connection.ops.quote_name(Message._meta.db_table),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = {row[0]: row[1:] for row in cursor.fetchall()}
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

#: A report for a message named by its UUID, through the function of migration 0008
#: (``django_whatsapp_receive_report``, PostgreSQL): it locks the message, keeps the report
#: unless it is an exact duplicate or names another provider id than the message's, and raises
#: the status only from a lower rank, returning the message as it was under the lock. Its
#: statements are planned once per connection, whatever the project's database settings. The
#: message comes back whole (``{columns}``: the ORM's select list over ``{row}``, the composite
#: row). The report's status, code, source and the statuses it may raise the message from are
#: written into the text (:func:`_by_uuid_sql`, from this module's own constants), so each kind
#: of report is one statement text whose parameters are the UUID, the payload and the time.
_APPLY_BY_UUID_SQL = """
SELECT {columns}, r.event_id, r.changed
FROM django_whatsapp_receive_report(
    %(uuid)s, {status}, {code}, {source}, %(payload)s, %(now)s, {lower}, {provider_id}
) AS r
"""


#: PostgreSQL's SQLSTATE for a function that does not exist.
_UNDEFINED_FUNCTION = "42883"


class ReceiveFunctionMissing(Exception):
    """The database has no ``django_whatsapp_receive_report`` yet (migration 0008 not applied:
    new code deployed before ``migrate``). The caller applies the report the long way."""


def _constant(value: str) -> str:
    """One of this module's status or source names as an SQL string literal."""
    if not (value.isascii() and value.replace("_", "").isalnum()):
        raise ValueError(f"not a status or source name: {value!r}")
    return f"'{value}'"


@functools.lru_cache(maxsize=256)
def _by_uuid_sql(columns: str, status: str, source: str, names_id: bool) -> str:
    """:data:`_APPLY_BY_UUID_SQL` for a report of ``status`` from ``source`` (``names_id``:
    the report names a provider id)."""
    lower = lower_ranked(status)
    code = PROVIDER_CODES.get(status)
    return _APPLY_BY_UUID_SQL.format(
        columns=columns.replace("{row}", "(r.message)"),
        status=_constant(status),
        code="NULL" if code is None else str(int(code)),
        source=_constant(source),
        lower=f"ARRAY[{', '.join(map(_constant, lower))}]::text[]",
        provider_id="%(provider_message_id)s::bigint" if names_id else "NULL",
    )


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
    callback's common case. ``columns`` is the select list of the message's lookup over the
    row ``{row}`` and ``load(row)`` builds the :class:`Message` from its values. Returns
    ``None`` when no message has the UUID, else the message and its new event (``None``: an
    exact duplicate). A report naming another provider id than the message's goes through
    :func:`receive_report` (it adopts the id, or raises :class:`ReportMismatch`). Raises
    :class:`ReceiveFunctionMissing` (nothing written) before migration 0008 has run."""
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
    sql = _by_uuid_sql(columns, new, source, provider_message_id is not None)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
    except ProgrammingError as error:
        cause = error.__cause__
        if (getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)) != (
            _UNDEFINED_FUNCTION
        ):
            raise
        raise ReceiveFunctionMissing from error
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
