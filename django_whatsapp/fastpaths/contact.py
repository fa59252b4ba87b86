"""A customer wrote: their contact's window opens in one ``INSERT ... ON CONFLICT DO UPDATE``.

**The rule** (:func:`django_whatsapp.window.record_inbound_by_rule`): a number that never wrote
gets a contact, its window opened at ``at`` and the name it gave kept; a known contact's
``last_inbound_at`` moves to ``at`` only when ``at`` is later (the latest wins: reports arrive out
of order), and a name given replaces the one kept. Nothing else of the contact changes: its
opt-out, and the time the gateway last said its window was closed, stay.

**Faster here**: the rule reads the contact, then creates it (in a savepoint, so that a contact
created meanwhile by another process is found rather than an error) or updates it (one or two
``UPDATE``): four statements for a customer who writes for the first time, two or three for one
who wrote before. The upsert is one, on every database whose ``ON CONFLICT`` names its target
(PostgreSQL, SQLite; ``features.supports_update_conflicts_with_target``), and it writes no row
when nothing changes (its ``WHERE``). A contact created meanwhile by another process is the
conflict the statement is made for: "moved meanwhile" needs nothing more.

**Not counted as a difference**: ``created_at`` and ``updated_at`` are the caller's ``now``
(``updated_at`` moves when ``last_inbound_at`` does, as with the rule; the rule's name-only
change does not move it either). The rule's ``get_or_create`` sent Django's ``pre_save`` and
``post_save`` for a new contact; the statement sends none (nothing of the app listens to them).

Held equal to the rule by ``tests/test_fastpaths.py`` (``contact``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connections

from ..models import Contact
from .binding import server_bound_cursor

#: ``{later}``: the stored time is older than the one reported (or there is none).
UPSERT_SQL = """
INSERT INTO {contact} ({columns}) VALUES ({values})
ON CONFLICT ({number}) DO UPDATE SET
    {last} = CASE WHEN {later} THEN EXCLUDED.{last} ELSE {contact}.{last} END,
    {updated} = CASE WHEN {later} THEN EXCLUDED.{updated} ELSE {contact}.{updated} END,
    {name} = CASE WHEN EXCLUDED.{name} <> '' THEN EXCLUDED.{name} ELSE {contact}.{name} END
WHERE {later} OR (EXCLUDED.{name} <> '' AND EXCLUDED.{name} <> {contact}.{name})
"""


def available(alias: str) -> bool:
    """Whether the database of ``alias`` runs :func:`record_inbound` (else the caller uses the
    rule)."""
    return bool(connections[alias].features.supports_update_conflicts_with_target)


def record_inbound(alias: str, number: str, at: datetime, name: str, *, now: datetime) -> None:
    """The customer ``number`` wrote at ``at`` (``name``: what they call themselves, or ``''``):
    as the rule, in one statement. ``name`` fits its column already."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    contact = Contact(number=number, name=name, last_inbound_at=at, created_at=now, updated_at=now)
    # Every column but the key, with the value a new contact would be inserted with (each
    # field's default for those not given above), prepared as the ORM prepares them.
    fields = [f for f in Contact._meta.concrete_fields if not f.primary_key]
    params: list[Any] = [
        field.get_db_prep_save(getattr(contact, field.attname), connection) for field in fields
    ]
    column = {field.name: quote(str(field.column)) for field in fields}
    table = quote(Contact._meta.db_table)
    later = f"({table}.{column['last_inbound_at']} IS NULL OR {table}.{column['last_inbound_at']} "
    later += f"< EXCLUDED.{column['last_inbound_at']})"
    sql = UPSERT_SQL.format(
        contact=table,
        columns=", ".join(column.values()),
        values=", ".join(["%s"] * len(fields)),
        number=column["number"],
        last=column["last_inbound_at"],
        updated=column["updated_at"],
        name=column["name"],
        later=later,
    )
    with server_bound_cursor(connection) as cursor:
        cursor.execute(sql, params)
