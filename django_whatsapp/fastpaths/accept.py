"""A batch of sends the gateway took, recorded together: one statement on PostgreSQL, one
``UPDATE`` and one ``INSERT`` in a transaction elsewhere.

**The rule** (:func:`django_whatsapp.sending.record_send` of each accepted send, one at a time):
the message moves to ``accepted`` by the status rule
(:func:`django_whatsapp.status_rule.apply_by_rule` with the send's result): its provider id and
attempts are stored, its error cleared, and a ``send`` event kept. The batch statements take the
messages still ``sending`` (the common case, where the rule and they do the same); every other
message of the batch is left to the caller, which records it by the rule. That is what keeps them
equal when a message **moved meanwhile**: a callback settled it, a cancel made it ``not_sent``, a
worker that took the chunk over made it ``unknown``: the rule does not lower its status, and
adopts the provider id.

**Faster here**: the rule is a transaction of four or five statements for each message; a batch
of 8 is one statement on PostgreSQL (the events inserted by the same statement, the values bound
as four arrays whatever the batch's size), two elsewhere.

**Not counted as a difference**: ``status_changed_at`` and the events' ``received_at`` are the
caller's ``now``.

Either statement fails whole (``IntegrityError``) when a provider id belongs to another message
(the caller then records each send by the rule, where the clash is that message's own error),
or (``DataError``) when one does not fit the column. Held equal to the rule by
``tests/test_fastpaths.py`` (``accept``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import nullcontext
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connections, transaction

from ..models import Message, StatusEvent
from .binding import server_bound_cursor


class Accepted(NamedTuple):
    """One send the gateway took: the message, its provider id, the attempts it took and the
    gateway's answer as the event keeps it."""

    message_id: int
    provider_message_id: int
    attempts: int
    payload: Any


#: PostgreSQL: the messages still ``sending`` become ``accepted`` (``upd``) and their events are
#: inserted by the same statement (``ev``); a message that moved meanwhile is in neither.
ACCEPT_PG_SQL = """
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
    SELECT upd.id, %(accepted)s, %(provider_status)s::integer, %(source)s, input.payload::jsonb,
           %(now)s
    FROM upd JOIN input ON input.id = upd.id
    RETURNING id, message_id
)
SELECT upd.id, upd.attempts, ev.id FROM upd JOIN ev ON ev.message_id = upd.id
"""

#: Every other database: each row's provider id and attempts by ``CASE``, only for rows still
#: ``sending``; the events follow in one ``INSERT`` in the same transaction.
ACCEPT_SQL = """
UPDATE {message} SET status = %s, status_changed_at = %s,
    error_code = NULL, error_name = '', error_message = '',
    provider_message_id = CASE id {ids} END,
    attempts = attempts + CASE id {attempts} END
WHERE id IN ({pks}) AND status = %s
RETURNING id, attempts
"""


def accept(
    alias: str,
    sent: Sequence[Accepted],
    *,
    now: datetime,
    accepted: str,
    sending: str,
    source: str,
    provider_status: int | None,
) -> list[tuple[int, int, int]]:
    """Record ``sent`` (the messages still ``sending`` become ``accepted``, with one ``source``
    event each), all or nothing; returns ``(message id, attempts, event id)`` for each message
    recorded. The others moved meanwhile: the caller records them by the rule."""
    if connections[alias].vendor == "postgresql":
        return _in_one_statement(
            alias,
            sent,
            now=now,
            accepted=accepted,
            sending=sending,
            source=source,
            provider_status=provider_status,
        )
    return _in_a_transaction(
        alias,
        sent,
        now=now,
        accepted=accepted,
        sending=sending,
        source=source,
        provider_status=provider_status,
    )


def _in_one_statement(
    alias: str,
    sent: Sequence[Accepted],
    *,
    now: datetime,
    accepted: str,
    sending: str,
    source: str,
    provider_status: int | None,
) -> list[tuple[int, int, int]]:
    connection = connections[alias]
    sql = ACCEPT_PG_SQL.format(
        message=connection.ops.quote_name(Message._meta.db_table),
        event=connection.ops.quote_name(StatusEvent._meta.db_table),
    )
    params: dict[str, Any] = {
        "ids": [s.message_id for s in sent],
        # numeric: any integer binds; one the column cannot hold fails the statement (DataError)
        "provider_ids": [s.provider_message_id for s in sent],
        "attempts": [s.attempts for s in sent],
        "payloads": [json.dumps(s.payload) for s in sent],
        "accepted": accepted,
        "sending": sending,
        "source": source,
        "provider_status": provider_status,
        "now": now,
    }
    # Inside a caller's transaction, a savepoint keeps a clash from breaking it.
    guard = transaction.atomic(using=alias) if connection.in_atomic_block else nullcontext()
    with guard, server_bound_cursor(connection) as cursor:
        cursor.execute(sql, params)
        return [(int(pk), int(attempts), int(event)) for pk, attempts, event in cursor.fetchall()]


def _in_a_transaction(
    alias: str,
    sent: Sequence[Accepted],
    *,
    now: datetime,
    accepted: str,
    sending: str,
    source: str,
    provider_status: int | None,
) -> list[tuple[int, int, int]]:
    connection = connections[alias]
    sql = ACCEPT_SQL.format(
        message=connection.ops.quote_name(Message._meta.db_table),
        ids=" ".join("WHEN %s THEN %s" for _ in sent),
        attempts=" ".join("WHEN %s THEN %s" for _ in sent),
        pks=", ".join("%s" for _ in sent),
    )
    params: list[Any] = [accepted, connection.ops.adapt_datetimefield_value(now)]
    params += [v for s in sent for v in (s.message_id, s.provider_message_id)]
    params += [v for s in sent for v in (s.message_id, s.attempts)]
    params += [s.message_id for s in sent]
    params.append(sending)
    payloads = {s.message_id: s.payload for s in sent}
    with transaction.atomic(using=alias):
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            updated = dict(cursor.fetchall())
        events = StatusEvent.objects.using(alias).bulk_create(
            StatusEvent(
                message_id=pk,
                status=accepted,
                provider_status=provider_status,
                source=source,
                payload=payloads[pk],
                received_at=now,
            )
            for pk in updated
        )
    return [
        (pk, attempts, event.pk)
        for (pk, attempts), event in zip(updated.items(), events, strict=True)
    ]
