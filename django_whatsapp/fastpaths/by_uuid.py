"""The callback's common case in one statement (PostgreSQL): find the message by its UUID and
apply the first report, through the function ``django_whatsapp_receive_report``.

**The rule** (every database): find the message by its UUID (:func:`find_message`, the ORM's own
query) and apply the report by :func:`django_whatsapp.status_rule.apply_by_rule`, adopting a
provider id the message does not have yet, refusing one that names another message.

**Faster here**: the lookup, the row lock, the event and the status in one round trip, in
autocommit. As one ``WITH`` statement PostgreSQL had to plan it for every callback, and planning
cost more than running it; inside a PL/pgSQL function (:data:`CREATE`, installed by migration
0008) its statements are planned once per connection, with or without prepared statements in the
project's ``DATABASES`` (Django leaves them off), behind any connection pooler. The calling
statement (:func:`call_text`) has the report's status, provider code, source and the statuses it
may raise the message from written into its text, so each kind of report is one statement text
whose parameters are the UUID, the payload and the time. A report that names another provider id
than the message's is not applied by the function: the caller applies it by the rule (it adopts
the id or refuses it).

**The select list** (:class:`Lookup`): the function returns the message row as it was under the
lock; the statement reads from it either the whole message, as the ORM's query for
:func:`find_message` lists it (its timestamps as microseconds since the epoch, one addition each
rather than parsing text), or, when no ``status_changed`` receiver will be handed the message,
only its id, status and provider id (reading and building the whole message was a sixth of the
callback view's CPU).

Held equal to the rule by ``tests/test_fastpaths.py`` (``callback``); the select list to the ORM
by ``tests/test_callback_fast_path.py``.

The function's text lives here, read by migration 0008 (one text); changing it needs a new
migration that installs the new text, and 0008 keeps the old one: ``tests/test_fastpaths.py``
pins it.
"""

from __future__ import annotations

import datetime
import functools
import uuid
import weakref
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import ProgrammingError, connections, router

from ..models import Message
from .binding import server_bound_cursor

FUNCTION = "django_whatsapp_receive_report"

#: The function (migration 0008): lock the message found by its UUID; keep the report unless it
#: is an exact duplicate or names another provider id than the message's; raise the status only
#: from a lower rank (``p_lower``). It returns the message row as it was under the lock (before
#: the report), the new event's id (``NULL``: a duplicate, or a report naming another provider
#: id, not applied) and whether the status rose; no row when no message has the UUID.
CREATE = """
CREATE OR REPLACE FUNCTION {function}(
    p_uuid uuid,
    p_status text,
    p_code integer,
    p_source text,
    p_payload jsonb,
    p_now timestamptz,
    p_lower text[],
    p_provider_message_id bigint
) RETURNS TABLE (message {message}, event_id bigint, changed boolean)
LANGUAGE plpgsql
AS $body$
#variable_conflict use_column
DECLARE
    cur {message};
BEGIN
    SELECT * INTO cur FROM {message} WHERE uuid = p_uuid FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    message := cur;
    event_id := NULL;
    changed := FALSE;
    IF p_provider_message_id IS NULL OR cur.provider_message_id = p_provider_message_id THEN
        INSERT INTO {event} (message_id, status, provider_status, source, payload, received_at)
        VALUES (cur.id, p_status, p_code, p_source, p_payload, p_now)
        ON CONFLICT DO NOTHING
        RETURNING id INTO event_id;
        IF event_id IS NOT NULL AND cur.status = ANY (p_lower) THEN
            UPDATE {message} SET status = p_status, status_changed_at = p_now
            WHERE id = cur.id;
            changed := TRUE;
        END IF;
    END IF;
    RETURN NEXT;
END
$body$
"""

DROP = (
    "DROP FUNCTION IF EXISTS {function}(uuid, text, integer, text, jsonb, timestamptz, text[], "
    "bigint)"
)

#: The calling statement: the message's columns (``{columns}``, over the function's row), the
#: new event's id and whether the status rose.
CALL_SQL = """
SELECT {columns}, r.event_id, r.changed
FROM django_whatsapp_receive_report(
    %(uuid)s, {status}, {code}, {source}, %(payload)s, %(now)s, {lower}, {provider_id}
) AS r
"""

#: PostgreSQL's SQLSTATE for a function that does not exist.
UNDEFINED_FUNCTION = "42883"


class ReceiveFunctionMissing(Exception):
    """The database has no ``django_whatsapp_receive_report`` yet (migration 0008 not applied:
    new code deployed before ``migrate``). The caller applies the report the long way."""


def sql_literal(value: str) -> str:
    """A status or source name as an SQL string literal; anything else is refused."""
    if not (value.isascii() and value.replace("_", "").isalnum()):
        raise ValueError(f"not a status or source name: {value!r}")
    return f"'{value}'"


@functools.lru_cache(maxsize=256)
def call_text(
    columns: str,
    status: str,
    code: int | None,
    source: str,
    lower: tuple[str, ...],
    names_id: bool,
) -> str:
    """:data:`CALL_SQL` for a report of ``status`` (provider ``code``) from ``source`` that may
    raise the message from the statuses ``lower``; ``names_id``: the report names a provider id.
    ``columns`` is a select list over the row ``{row}`` (see :class:`Lookup`)."""
    return CALL_SQL.format(
        columns=columns.replace("{row}", "(r.message)"),
        status=sql_literal(status),
        code="NULL" if code is None else str(int(code)),
        source=sql_literal(source),
        lower=f"ARRAY[{', '.join(map(sql_literal, lower))}]::text[]",
        provider_id="%(provider_message_id)s::bigint" if names_id else "NULL",
    )


def call(alias: str, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
    """Run a statement of :func:`call_text`: the row, or ``None`` when no message has the
    UUID. Raises :class:`ReceiveFunctionMissing` (nothing written) before migration 0008."""
    connection = connections[alias]
    try:
        with server_bound_cursor(connection) as cursor:
            cursor.execute(sql, params)
            row: tuple[Any, ...] | None = cursor.fetchone()
    except ProgrammingError as error:
        cause = error.__cause__
        if (getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)) != (
            UNDEFINED_FUNCTION
        ):
            raise
        raise ReceiveFunctionMissing from error
    return row


# -- the select list -------------------------------------------------------------------------

#: The start of PostgreSQL's epoch, as the statement reports its instants from.
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)

#: What the callback and the status rule read of a message when no ``status_changed`` receiver
#: will be handed it: its key, its status (the answer) and its provider id (a report naming
#: another one goes the long way).
LEAN_FIELDS = ("id", "status", "provider_message_id")


@dataclass(frozen=True)
class Lookup:
    """The compiled lookup of a message by its UUID for one database connection."""

    #: the ORM's own query for ``Message.objects.filter(uuid=...).order_by()[:1]``
    sql: str
    #: the select list for the statement that also applies a report (PostgreSQL), over the
    #: row ``{row}``, the timestamps in it as microseconds since the epoch (``instants``: their
    #: positions)
    columns: str
    instants: tuple[int, ...]
    names: list[str]
    converters: dict[int, tuple[list[Any], Any]]
    #: the select list when nobody listens to ``status_changed``: only :data:`LEAN_FIELDS`
    #: (``{row}`` as in :attr:`columns`), and those fields' names
    lean_columns: str
    lean_names: list[str]

    def load(self, alias: str, connection: Any, row: Iterable[Any]) -> Message:
        """The message from a row of the select list, the ORM's converters applied."""
        values = list(row)
        for position, (converters, expression) in self.converters.items():
            for converter in converters:
                values[position] = converter(values[position], expression, connection)
        return Message.from_db(alias, self.names, values)

    def load_counted(self, alias: str, connection: Any, row: Iterable[Any]) -> Message:
        """The message from a row of :attr:`columns`: each timestamp becomes the datetime
        the driver would have made of it (aware, in the connection's time zone; naive in
        ``TIME_ZONE`` without ``USE_TZ``). Parsing a timestamp's text in Python was a
        twentieth of a callback's CPU; a count of microseconds is one addition."""
        values = list(row)
        zone = connection.timezone
        local = None if zone is not None else zoneinfo.ZoneInfo(connection.timezone_name)
        for position in self.instants:
            micros = values[position]
            if micros is not None:
                instant = _EPOCH + datetime.timedelta(microseconds=micros)
                if zone is not None:
                    values[position] = instant.astimezone(zone)
                else:
                    values[position] = instant.astimezone(local).replace(tzinfo=None)
        return self.load(alias, connection, values)

    def load_lean(self, alias: str, row: Iterable[Any]) -> Message:
        """The message from a row of :attr:`lean_columns`: its other fields deferred (none of
        them needs a converter)."""
        return Message.from_db(alias, self.lean_names, list(row))


#: Per connection object (each thread has its own), so converters never cross threads.
_LOOKUPS: weakref.WeakKeyDictionary[Any, Lookup] = weakref.WeakKeyDictionary()


def lookup_for(alias: str, connection: Any) -> Lookup:
    """The :class:`Lookup` of ``connection`` (the database ``alias``), compiled on first use:
    building the ORM's query was two fifths of a callback's CPU."""
    lookup = _LOOKUPS.get(connection)
    if lookup is None:
        query = Message.objects.using(alias).filter(uuid=uuid.UUID(int=0)).order_by()[:1].query
        compiler = query.get_compiler(alias)
        sql = compiler.as_sql()[0]
        columns = [column for column, _, _ in compiler.select]
        listed = []
        instants = []
        for position, column in enumerate(columns):
            text = "{row}." + connection.ops.quote_name(column.target.column)
            if column.target.get_internal_type() == "DateTimeField":
                # PostgreSQL 14 and later: EXTRACT gives an exact numeric, so the count is
                # exact to the microsecond. Django writes no infinite timestamp.
                text = f"(EXTRACT(EPOCH FROM {text}) * 1000000)::bigint"
                instants.append(position)
            listed.append(text)
        lean = [field for field in Message._meta.concrete_fields if field.name in LEAN_FIELDS]
        lookup = Lookup(
            sql,
            ", ".join(listed),
            tuple(instants),
            [column.target.attname for column in columns],
            compiler.get_converters(columns),
            ", ".join("{row}." + connection.ops.quote_name(field.column) for field in lean),
            [field.attname for field in lean],
        )
        _LOOKUPS[connection] = lookup
    return lookup


def find_message(key: uuid.UUID) -> Message | None:
    """The message with this UUID, or ``None``: one indexed query, the same SQL as
    ``Message.objects.filter(uuid=key).order_by()[:1]``, compiled once per connection rather
    than on every callback."""
    alias = router.db_for_read(Message)
    connection = connections[alias]
    lookup = lookup_for(alias, connection)
    value = Message._meta.get_field("uuid").get_db_prep_value(key, connection)
    with connection.cursor() as cursor:
        cursor.execute(lookup.sql, [value])
        row = cursor.fetchone()
    if row is None:
        return None
    return lookup.load(alias, connection, row)
