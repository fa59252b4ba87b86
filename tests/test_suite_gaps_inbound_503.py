"""The inbound endpoint answers 503 (JSON, ``Retry-After``) when the database fails, and the
gateway's next delivery of the same report is stored exactly once.

Mirrors the callback's tests in ``test_reliability_faults.py``: a database that refuses writes
(a trigger that raises, on SQLite and PostgreSQL), a failure after the raw report was committed,
and, on PostgreSQL, the connection killed under the request with ``pg_terminate_backend``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test import Client

from django_whatsapp import inbound
from django_whatsapp.models import InboundReport, Message

pytestmark = pytest.mark.django_db(transaction=True)

JSON = "application/json"
CUSTOMER = "380501110003"
BODY = json.dumps({"from": CUSTOMER, "text": "Is my order ready?", "message_id": "wamid.503"})
Outcome = InboundReport.Outcome


def inbound_path() -> str:
    url = inbound.inbound_url()
    assert url is not None
    return urlsplit(url).path


def deliver() -> Any:
    """The gateway delivers the customer's message to the signed inbound URL."""
    return Client().post(inbound_path(), BODY, content_type=JSON)


def assert_try_again_later(response: Any) -> None:
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == JSON
    answer = response.json()
    assert answer["ok"] is False
    assert answer["error"]
    assert int(response["Retry-After"]) > 0


def assert_stored_once() -> None:
    """The customer's message is there exactly once, read from an understood report."""
    inbound_messages = Message.objects.filter(direction=Message.Direction.INBOUND)
    assert list(inbound_messages.values_list("destination_addr", "text")) == [
        (CUSTOMER, "Is my order ready?")
    ]
    assert InboundReport.objects.filter(outcome=Outcome.UNDERSTOOD).count() == 1


@contextlib.contextmanager
def failing_inserts(table: str) -> Iterator[None]:
    """Every INSERT into ``table`` fails inside the database (a trigger that raises), as a full
    disk or a constraint added by a migration would."""
    name = f"dw_suite_refuse_{table}"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger AS $$ "
                "BEGIN RAISE EXCEPTION 'the disk is full (simulated)'; END; $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                f"CREATE TRIGGER {name} BEFORE INSERT ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {name}()"
            )
        else:
            cursor.execute(
                f"CREATE TRIGGER {name} BEFORE INSERT ON {table} "
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER {name} ON {table}")
                cursor.execute(f"DROP FUNCTION {name}()")
            else:
                cursor.execute(f"DROP TRIGGER {name}")


@pytest.fixture(params=[False, True], ids=["autocommit", "ATOMIC_REQUESTS"])
def atomic_requests(request: pytest.FixtureRequest) -> Iterator[bool]:
    setting = connection.settings_dict["ATOMIC_REQUESTS"]
    connection.settings_dict["ATOMIC_REQUESTS"] = request.param
    yield request.param
    connection.settings_dict["ATOMIC_REQUESTS"] = setting


def test_a_database_refusing_the_raw_report_answers_503_and_stores_nothing(
    atomic_requests: bool,
) -> None:
    with failing_inserts(InboundReport._meta.db_table):
        assert_try_again_later(deliver())
        assert not InboundReport.objects.exists()
        assert not Message.objects.exists()

    # The database is back: the gateway's next delivery is stored, once.
    again = deliver()
    assert again.status_code == 200, again.content
    assert again.json()["received"] == 1
    assert_stored_once()


def test_a_failure_after_the_raw_report_answers_503_and_keeps_the_raw_report(
    atomic_requests: bool,
) -> None:
    with failing_inserts(Message._meta.db_table):
        assert_try_again_later(deliver())
        # Raw first: the body is kept for an operator even though it could not be read into a
        # message; no message is half-stored.
        (raw,) = InboundReport.objects.all()
        assert json.loads(raw.body) == json.loads(BODY)
        assert raw.outcome != Outcome.UNDERSTOOD
        assert not Message.objects.exists()

    again = deliver()
    assert again.status_code == 200, again.content
    assert again.json()["received"] == 1
    assert_stored_once()


@pytest.mark.postgres
def test_a_lost_database_connection_answers_503_and_the_next_delivery_is_stored() -> None:
    """The connection is killed under the request (the server restarted, a proxy cut it)."""
    if connection.vendor != "postgresql":
        pytest.skip(
            "needs PostgreSQL: a server-side connection is killed with pg_terminate_backend"
        )
    import psycopg

    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    params = dict(connection.get_connection_params())
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])

    try:
        assert_try_again_later(deliver())
    finally:
        connection.close()  # the killed connection: the next query opens a new one
    assert not Message.objects.exists()
    again = deliver()
    assert again.status_code == 200, again.content
    assert_stored_once()
