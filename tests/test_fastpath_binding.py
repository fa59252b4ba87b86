"""The fast paths' statements bind their parameters server-side on PostgreSQL with psycopg 3
(:mod:`django_whatsapp.fastpaths.binding`): psycopg no longer quotes the payload and every array
element into the text in Python. The cursor stays Django's: logged, wrapped, its errors
Django's; elsewhere it is the connection's own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import DatabaseError, connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_whatsapp.fastpaths import claim
from django_whatsapp.fastpaths.binding import server_bound_cursor
from django_whatsapp.models import Message

from .test_callback import make_message, post_callback

pytestmark = pytest.mark.django_db


def binds_server_side_here() -> bool:
    """PostgreSQL through psycopg 3, the project's cursors binding client-side (the default)."""
    if connection.vendor != "postgresql":
        return False
    from django.db.backends.postgresql.base import is_psycopg3

    return bool(is_psycopg3) and not connection.settings_dict["OPTIONS"].get("server_side_binding")


@contextmanager
def raw_cursors() -> Iterator[list[tuple[str, Any]]]:
    """Each statement's text and the driver's cursor it ran in, seen by an execute wrapper."""
    seen: list[tuple[str, Any]] = []

    def wrapper(
        execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        seen.append((sql, context["cursor"].cursor))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield seen


def own_cursor_class() -> type:
    with connection.cursor() as cursor:
        return type(cursor.cursor)


def test_the_callback_statement_binds_server_side(client: Client) -> None:
    message = make_message()

    with raw_cursors() as seen:
        response = post_callback(client, message, {"message_id": 554, "status": "delivered"})

    assert response.json()["status"] == "delivered"
    assert seen
    if binds_server_side_here():
        import psycopg

        [(sql, raw)] = seen  # the callback is one statement there
        assert "django_whatsapp_receive_report" in sql
        assert isinstance(raw, psycopg.Cursor)
        assert not isinstance(raw, psycopg.ClientCursor)
    else:  # the long way, in the connection's own cursors
        assert {type(raw) for _sql, raw in seen} == {own_cursor_class()}


def test_the_claim_binds_server_side() -> None:
    message = make_message(status=Message.Status.QUEUED)

    with raw_cursors() as seen:
        claimed = claim.claim_ids(
            "default",
            [message.pk],
            now=timezone.now(),
            sendable=[Message.Status.QUEUED],
            sending=Message.Status.SENDING,
        )

    assert claimed == {message.pk}
    assert Message.objects.get(pk=message.pk).status == Message.Status.SENDING
    [(_sql, raw)] = seen
    if binds_server_side_here():
        import psycopg

        assert not isinstance(raw, psycopg.ClientCursor)
    else:
        assert type(raw) is own_cursor_class()


def test_a_project_that_binds_server_side_keeps_its_own_cursor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``OPTIONS["server_side_binding"]`` on: the connection's cursors already bind so; the
    helper hands out ``connection.cursor()`` (here a connection made without the option, so
    its own class shows which way was taken)."""
    monkeypatch.setitem(
        connection.settings_dict,
        "OPTIONS",
        {**connection.settings_dict["OPTIONS"], "server_side_binding": True},
    )
    with server_bound_cursor(connection) as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
        assert type(cursor.cursor) is own_cursor_class()


def test_its_statements_are_logged_and_its_errors_are_djangos() -> None:
    with CaptureQueriesContext(connection) as queries, server_bound_cursor(connection) as cursor:
        cursor.execute("SELECT %s + 1", [41])
        assert cursor.fetchone() == (42,)
    [query] = queries
    # Bound server-side, Django logs the text PostgreSQL was sent (the values went apart).
    assert query["sql"] == ("SELECT $1 + 1" if binds_server_side_here() else "SELECT 41 + 1")

    # Django's class, not the driver's
    with pytest.raises(DatabaseError), server_bound_cursor(connection) as cursor:
        cursor.execute("SELECT * FROM no_such_table_here")
