"""The cursor the fast paths run their statements in: on PostgreSQL with psycopg 3, one that
sends the parameters apart from the statement's text (server-side binding), whatever the
project's ``server_side_binding`` option says.

Django binds client-side by default (``OPTIONS["server_side_binding"]`` off): psycopg quotes
every parameter into the statement's text in Python. For the callback's one statement that was
two fifths of the statement's CPU in gunicorn (the payload as an escaped JSON literal, the UUID,
the time), and for the workers' claims and recordings every element of their arrays. Bound
server-side, each parameter is dumped once and sent as is; PostgreSQL still parses and plans
the statement every time (an unnamed statement, nothing prepared), so it works behind any
connection pooler, as Django's default does.

The cursor is Django's own wrapper around it (``connection.make_cursor``, or the debug wrapper
when queries are logged): ``connection.execute_wrapper`` instrumentation, ``CaptureQueriesContext``
and Django's error wrapping see it as any other. Elsewhere (psycopg 2, SQLite, a project that
already binds server-side) it is ``connection.cursor()``.
"""

from __future__ import annotations

from typing import Any

from django.utils.asyncio import async_unsafe

__all__ = ["server_bound_cursor"]


def _server_binding_class(connection: Any) -> type | None:
    """Django's server-binding cursor class when it applies to ``connection``, else ``None``."""
    if connection.vendor != "postgresql":
        return None
    if connection.settings_dict.get("OPTIONS", {}).get("server_side_binding") is True:
        return None  # connection.cursor() binds server-side already
    from django.db.backends.postgresql import base

    # Both names exist only with psycopg 3 (django-stubs does not list them).
    if not getattr(base, "is_psycopg3", False):
        return None
    return getattr(base, "ServerBindingCursor", None)


@async_unsafe
def server_bound_cursor(connection: Any) -> Any:
    """A cursor of ``connection`` (a Django database wrapper) that binds its parameters
    server-side where it can (see the module); use it as ``connection.cursor()``."""
    cursor_class = _server_binding_class(connection)
    if cursor_class is None:
        return connection.cursor()
    # As BaseDatabaseWrapper._cursor does, with another cursor class.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        connection.validate_thread_sharing()
        raw = cursor_class(connection.connection)
        if connection.queries_logged:
            return connection.make_debug_cursor(raw)
        return connection.make_cursor(raw)
