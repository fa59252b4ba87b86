"""A smaller run of the load test (``loadtest/callbacks.py``) in the suite: gunicorn workers on
127.0.0.1 serve the callback from the test database, and concurrent clients post 200 messages'
reports, 30% of the requests exact duplicates, in shuffled order.

Proven: no answer is a 5xx, one ``StatusEvent`` per distinct report, every message's status
is its highest-ranked report and every lost provider id is adopted. The full run (1,000
messages) and its figures are in docs/reliability.rst.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from django.db import connection

from django_whatsapp.models import Message
from loadtest import callbacks
from tests.waiting import LIMIT


@pytest.fixture
def database_url() -> str:
    if connection.vendor != "postgresql":
        pytest.skip(
            "the load test runs gunicorn workers against PostgreSQL: run with "
            "DATABASE_URL=postgres://... (make test and CI do)"
        )
    if importlib.util.find_spec("gunicorn") is None:
        pytest.skip("gunicorn is not installed: pip install gunicorn (it is in the test extra)")
    params: dict[str, Any] = connection.settings_dict
    auth = params["USER"] + (f":{params['PASSWORD']}" if params["PASSWORD"] else "")
    host = f"{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}"
    return f"postgres://{auth}@{host}/{params['NAME']}"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_callbacks_under_load_through_gunicorn(database_url: str) -> None:
    numbers, problems = callbacks.run(
        database_url, messages=200, workers=2, threads=4, concurrency=8, deadline=LIMIT * 5
    )
    assert problems == [], (problems, numbers)
    assert numbers["5xx"] == 0
    assert numbers["answers"] == {200: numbers["requests"]}
    assert numbers["requests"] == numbers["distinct reports"] + numbers["duplicates"]
    assert numbers["duplicates"] >= 0.25 * numbers["requests"]
    assert Message.objects.filter(source_addr="LoadTest").count() == 200


@pytest.mark.django_db
def test_the_load_test_verification_sees_a_wrong_status() -> None:
    """``verify`` is not vacuous: a message that is not at its highest-ranked report, an event
    too many and a 5xx are each reported."""
    message = Message.objects.create(
        source_addr="LoadTest", destination_addr="1", status="sent", provider_message_id=1
    )
    message.events.create(status="sent", source="callback")
    plan = callbacks.Plan(
        deliveries=[], distinct=0, duplicates=0,
        expected_status={message.pk: "seen"}, expected_id={message.pk: 1},
    )  # fmt: skip
    result = callbacks.Result()
    result.codes[503] += 1
    problems = callbacks.verify(plan, result)
    assert any("5xx" in p for p in problems)
    assert any("1 events for 0 distinct reports" in p for p in problems)
    assert any(f"message {message.pk}: sent/1, expected seen/1" in p for p in problems)
