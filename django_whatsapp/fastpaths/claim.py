"""Claims in one statement: ``draft``/``queued`` -> ``sending`` by ``UPDATE ... RETURNING``, on
every database (Django's ``update()`` returns a count, not the rows).

**The rule** (:mod:`django_whatsapp.sending.claim`): a message may be claimed while it is
sendable (:data:`~django_whatsapp.sending.SENDABLE`); a campaign's messages only while the
campaign runs, in id order, each once its ``send_after`` has come
(:func:`~django_whatsapp.sending.claim.claimable`); whether its recipient opted out is
:func:`django_whatsapp.optout.opted_out_numbers` (the number as stored: normalised digits, which
read again give themselves back).

**Faster here**: by the ORM, a claim of a campaign's batch would be a ``SELECT`` of the
campaign's status, one of the ids, the ``UPDATE``, one more ``SELECT`` of the rows claimed and
one of the recipients' opt-outs; it is one statement, which returns what the payloads need and
whether each recipient opted out (a refused recipient's reason is read on its own, rarely). On
PostgreSQL the inner ``SELECT`` skips the rows another transaction holds (``FOR UPDATE SKIP
LOCKED``), so two workers never wait on each other's rows. The status is checked again on the
rows updated, so a message another caller took meanwhile is not taken twice.

Held equal to the rule by ``tests/test_fastpaths.py`` (``claim`` and ``claim by id``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connections

from ..models import Campaign, Contact, Message
from .binding import server_bound_cursor

#: The columns a campaign's claim returns, in this order: what a payload needs beyond the
#: campaign's own content, and whether the recipient opted out.
CLAIMED_COLUMNS = (
    "id",
    "uuid",
    "destination_addr",
    "template_params",
    "attempts",
    "metadata",
    "tags",
    "target_content_type_id",
    "target_object_id",
    "expires_at",
    "opted_out",
)

#: At most ``limit`` sendable, due messages of a campaign within an id range, in id order, only
#: while the campaign runs; each with whether its recipient opted out.
CLAIM_BATCH_SQL = """
UPDATE {message} SET status = %s, status_changed_at = %s, submitted_at = %s
WHERE id IN (
    SELECT id FROM {message}
    WHERE campaign_id = %s AND id >= %s AND id <= %s AND status IN ({sendable})
        AND (send_after IS NULL OR send_after <= %s)
    ORDER BY id LIMIT %s{lock}
)
AND status IN ({sendable})
AND EXISTS (SELECT 1 FROM {campaign} WHERE id = %s AND status = %s)
RETURNING id, uuid, destination_addr, template_params, attempts, metadata, tags,
    target_content_type_id, target_object_id, expires_at,
    EXISTS (
        SELECT 1 FROM {contact}
        WHERE {contact}.number = {message}.destination_addr
            AND {contact}.opted_out_at IS NOT NULL
    )
"""


def claim_campaign_batch(
    alias: str,
    *,
    campaign_id: int,
    first_id: int,
    last_id: int,
    limit: int,
    now: datetime,
    due_by: datetime,
    sendable: Sequence[str],
    sending: str,
) -> list[tuple[Any, ...]]:
    """Claim in :data:`CLAIM_BATCH_SQL`; returns the claimed rows (:data:`CLAIMED_COLUMNS`),
    in no particular order."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    sql = CLAIM_BATCH_SQL.format(
        message=quote(Message._meta.db_table),
        campaign=quote(Campaign._meta.db_table),
        contact=quote(Contact._meta.db_table),
        sendable=", ".join("%s" for _ in sendable),
        lock=" FOR UPDATE SKIP LOCKED"
        if connection.features.has_select_for_update_skip_locked
        else "",
    )
    stamp = connection.ops.adapt_datetimefield_value(now)
    params = [
        sending,
        stamp,
        stamp,
        campaign_id,
        first_id,
        last_id,
        *sendable,
        connection.ops.adapt_datetimefield_value(due_by),
        limit,
        *sendable,
        campaign_id,
        Campaign.Status.RUNNING,
    ]
    with server_bound_cursor(connection) as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


#: The stored messages given, still sendable.
CLAIM_IDS_SQL = """
UPDATE {message} SET status = %s, status_changed_at = %s, submitted_at = %s
WHERE id IN ({pks}) AND status IN ({sendable})
RETURNING id
"""


def claim_ids(
    alias: str, ids: Sequence[int], *, now: datetime, sendable: Sequence[str], sending: str
) -> set[int]:
    """Claim in :data:`CLAIM_IDS_SQL`; returns the ids claimed."""
    connection = connections[alias]
    sql = CLAIM_IDS_SQL.format(
        message=connection.ops.quote_name(Message._meta.db_table),
        pks=", ".join("%s" for _ in ids),
        sendable=", ".join("%s" for _ in sendable),
    )
    stamp = connection.ops.adapt_datetimefield_value(now)
    with server_bound_cursor(connection) as cursor:
        cursor.execute(sql, [sending, stamp, stamp, *ids, *sendable])
        return {row[0] for row in cursor.fetchall()}
