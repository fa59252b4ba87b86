"""A status report applied in one statement, and a batch of them in one more (PostgreSQL).

**The rule** (:func:`django_whatsapp.status_rule.apply_by_rule`, every database): lock the
message's row and read its status; keep the report as a ``StatusEvent`` unless it is an exact
duplicate (the partial unique index turns a second ``callback`` or ``poll`` report of one status
away); raise the status to the reported one only from a lower rank. A send's result also stores
the provider's id and the attempts and clears the error, whatever the status. A batch applies
each report in turn.

**Faster here**: the rule is a transaction of four or five statements (``SELECT ... FOR
UPDATE``, the ``INSERT``, the ``UPDATE``, and the transaction's own); :data:`APPLY_SQL` is one,
all or nothing in autocommit, with no ``SELECT`` before it. :data:`APPLY_BATCH_SQL` applies a
whole batch (a resync's polls, 100 at a time) in one round trip, its values bound as four arrays
whatever the batch's size, the rows locked in id order so that two batches never wait on each
other in a cycle.

**Not counted as a difference**: the event's ``received_at`` and the new ``status_changed_at``
are the caller's ``now`` in both.

The caller (:mod:`django_whatsapp.status_rule`) decides when the fast path applies (not for a
report that must adopt a provider id, nor for one expected in a given status) and passes the
ranks in: this module knows no rule of its own. Held equal to the rule by
``tests/test_fastpaths.py`` (``report`` and ``reports``).
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

#: One report: ``cur`` locks the row and reads the status the report finds; ``ev`` keeps the
#: report unless it is an exact duplicate (``ON CONFLICT DO NOTHING``: the partial unique
#: index); ``upd`` raises the status, only from a lower rank (``lower``) and only for a new
#: report ({sent}: a send's result is stored with it, whatever the rank, ``always``).
APPLY_SQL = """
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
#: A send's result, stored with its ``accepted`` report.
SENT_SQL = """,
        provider_message_id = %(provider_message_id)s,
        attempts = {message}.attempts + %(attempts)s,
        error_code = NULL, error_name = '', error_message = ''"""


class Applied(NamedTuple):
    """What :func:`apply_one` did: the new event's id (``None``: an exact duplicate, nothing
    written), the status the report found, and with a send's result the message's attempts."""

    event_id: int | None
    old: str
    attempts: int | None


def apply_one(
    alias: str,
    message_id: int,
    status: str,
    *,
    provider_status: int | None,
    source: str,
    payload: dict[str, Any],
    now: datetime,
    lower: Sequence[str],
    sent: tuple[int, int] | None = None,
) -> Applied | None:
    """Apply one report (the ranks below ``status``: ``lower``) in :data:`APPLY_SQL`; ``sent``:
    a send's provider id and attempts. ``None`` when there is no such message. A provider id
    another message has raises ``IntegrityError`` (inside a transaction, behind a savepoint, so
    that the caller's transaction stays usable)."""
    connection = connections[alias]
    table = connection.ops.quote_name(Message._meta.db_table)
    sql = APPLY_SQL.format(
        event=connection.ops.quote_name(StatusEvent._meta.db_table),
        message=table,
        sent=SENT_SQL.format(message=table) if sent is not None else "",
    )
    params: dict[str, Any] = {
        "message": message_id,
        "status": status,
        "provider_status": provider_status,
        "source": source,
        "payload": StatusEvent._meta.get_field("payload").get_db_prep_save(payload, connection),
        "now": now,
        "lower": list(lower),
        "always": sent is not None,
    }
    if sent is not None:
        params["provider_message_id"], params["attempts"] = sent
    guard = (
        transaction.atomic(using=alias)
        if sent is not None and connection.in_atomic_block
        else nullcontext()
    )
    with guard, server_bound_cursor(connection) as cursor:
        cursor.execute(sql, params)
        event_id, old, attempts = cursor.fetchone()
    if old is None:
        return None
    return Applied(event_id, old, attempts)


#: A batch of reports from one source: the rule of :data:`APPLY_SQL` for each row of ``input``.
#: The messages are locked in id order; an exact duplicate is turned away by the partial unique
#: index; a status is raised only from a lower rank (its position in ``order``).
APPLY_BATCH_SQL = """
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


class BatchRow(NamedTuple):
    """One report of a batch: its message, status, provider code and payload."""

    message_id: int
    status: str
    provider_status: int | None
    payload: dict[str, Any]


def apply_batch(
    alias: str,
    rows: Sequence[BatchRow],
    *,
    source: str,
    now: datetime,
    order: Sequence[str],
) -> dict[int, tuple[str | None, int | None, bool]]:
    """Apply ``rows`` (one report per message; ``order``: every status by rank) in
    :data:`APPLY_BATCH_SQL`. Returns, by message id, the status the report found (``None``: no
    such message), the new event's id (``None``: an exact duplicate) and whether the status
    rose."""
    connection = connections[alias]
    sql = APPLY_BATCH_SQL.format(
        event=connection.ops.quote_name(StatusEvent._meta.db_table),
        message=connection.ops.quote_name(Message._meta.db_table),
    )
    params: dict[str, Any] = {
        "ids": [row.message_id for row in rows],
        "statuses": [row.status for row in rows],
        "codes": [row.provider_status for row in rows],
        "payloads": [json.dumps(row.payload) for row in rows],
        "source": source,
        "now": now,
        "order": list(order),
    }
    with server_bound_cursor(connection) as cursor:
        cursor.execute(sql, params)
        return {pk: (old, event_id, changed) for pk, old, event_id, changed in cursor.fetchall()}
