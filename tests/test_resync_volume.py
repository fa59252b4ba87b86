"""``whatsapp_resync`` at volume: concurrent polls on one pooled session, chunked reads, the output
in id order whatever the concurrency, a progress bar on a terminal, one shared pause on 429."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.backends.signals import connection_created
from django.test.utils import CaptureQueriesContext
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from django_whatsapp import resync
from django_whatsapp.models import Message
from tests.conftest import STATUS_PATH, FakeGateway
from tests.waiting import LIMIT

pytestmark = pytest.mark.django_db

FIRST_ID = 20000


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def no_retries(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "MAX_RETRIES": 0}


def make_messages(count: int, status: str = "accepted") -> list[Message]:
    return Message.objects.bulk_create(
        Message(
            source_addr="TestCo",
            destination_addr="380501234567",
            text="hi",
            status=status,
            provider_message_id=FIRST_ID + n,
        )
        for n in range(count)
    )


def reported(message_id: int) -> int:
    """What the fake gateway reports: even ids delivered (1), odd ids sent (0)."""
    return 1 if message_id % 2 == 0 else 0


class StatusGateway:
    """Answers each status request from its message_id; records the ids polled."""

    def __init__(self, server: HTTPServer, failing: frozenset[int] = frozenset()) -> None:
        self.polled: list[int] = []
        self.failing = failing
        self.lock = threading.Lock()
        server.expect_request(STATUS_PATH, method="POST").respond_with_handler(self.handle)

    def handle(self, request: Request) -> Response:
        message_id = json.loads(request.get_data())["message_id"]
        with self.lock:
            self.polled.append(message_id)
        if message_id in self.failing:
            body = {"name": "Internal server error", "message": "oops", "code": 2, "status": 500}
            return Response(json.dumps(body), 500, mimetype="application/json")
        answer = {"message_id": message_id, "status": reported(message_id)}
        return Response(json.dumps(answer), mimetype="application/json")


def run(*args: str, stdout: io.StringIO | None = None) -> tuple[str, str]:
    out, err = stdout or io.StringIO(), io.StringIO()
    call_command("whatsapp_resync", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_many_messages_polled_concurrently_reported_in_order(
    gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resync, "CHUNK_SIZE", 7)
    messages = make_messages(100)
    fake = StatusGateway(gateway.server)
    opened: list[str] = []
    main = threading.get_ident()

    def record(sender: Any, **kwargs: Any) -> None:
        if threading.get_ident() != main:
            opened.append(threading.current_thread().name)

    connection_created.connect(record, weak=False)
    try:
        with CaptureQueriesContext(connection) as queries:
            out, err = run("--concurrency", "8")
    finally:
        connection_created.disconnect(record)
    assert err == ""
    assert sorted(fake.polled) == [FIRST_ID + n for n in range(100)]
    expected = [
        f"[{i}/100] message {m.pk}: accepted -> "
        + ("delivered" if reported(m.provider_message_id or 0) else "sent")
        for i, m in enumerate(messages, start=1)
    ]
    assert out.splitlines() == [*expected, "Polled 100: 100 changed, 0 unchanged, 0 failed."]
    statuses = dict(Message.objects.values_list("provider_message_id", "status"))
    assert all(
        statuses[FIRST_ID + n] == ("delivered" if n % 2 == 0 else "sent") for n in range(100)
    )
    # Read in chunks of 7 (keyset pagination), never all at once: 14 of 7, then the last 2.
    chunk_reads = [
        q["sql"].rsplit("LIMIT", 1)[1].strip()
        for q in queries.captured_queries
        if '."id" ASC LIMIT' in q["sql"]
    ]
    assert chunk_reads == ["7"] * 14 + ["2"]
    # The polling threads only talk HTTP.
    assert opened == []


def test_limit_across_chunks(gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resync, "CHUNK_SIZE", 7)
    make_messages(40)
    fake = StatusGateway(gateway.server)
    out, _err = run("--limit", "20")
    assert sorted(fake.polled) == [FIRST_ID + n for n in range(20)]
    assert out.splitlines()[-1] == "Polled 20: 20 changed, 0 unchanged, 0 failed."
    assert out.splitlines()[0].startswith("[1/20] ")


def test_failures_are_counted_in_order(gateway: FakeGateway) -> None:
    messages = make_messages(40)
    failing = frozenset({FIRST_ID + 3, FIRST_ID + 17})
    StatusGateway(gateway.server, failing)
    out, err = run("--concurrency", "4")
    by_id = {m.provider_message_id: m.pk for m in messages}
    assert err.splitlines() == [
        f"[4/40] message {by_id[FIRST_ID + 3]}: failed: Internal server error: oops "
        "(code 2, status 500)",
        f"[18/40] message {by_id[FIRST_ID + 17]}: failed: Internal server error: oops "
        "(code 2, status 500)",
    ]
    assert out.splitlines()[-1] == "Polled 40: 38 changed, 0 unchanged, 2 failed."
    assert Message.objects.filter(status="accepted").count() == 2


def test_a_progress_bar_on_a_terminal(gateway: FakeGateway) -> None:
    make_messages(50)
    StatusGateway(gateway.server)
    out, _err = run(stdout=Terminal())
    assert "[1/50]" not in out
    assert "\r[" in out
    assert "50/50 100%" in out
    assert out.endswith("Polled 50: 50 changed, 0 unchanged, 0 failed.\n")


def test_progress_options(gateway: FakeGateway) -> None:
    make_messages(3)
    StatusGateway(gateway.server)
    out, _err = run("--no-progress", stdout=Terminal())
    assert "\r[" not in out
    assert out.splitlines()[0].startswith("[1/3] message ")
    Message.objects.update(status="accepted")
    out, _err = run("--progress")
    assert "3/3 100%" in out
    assert "[1/3] message" not in out


@pytest.mark.parametrize("value", ["0", "65", "many"])
def test_concurrency_is_bounded(gateway: FakeGateway, value: str) -> None:
    with pytest.raises(CommandError, match="concurrency"):
        run("--concurrency", value)


@pytest.fixture
def threaded_gateway(settings: Any) -> Iterator[FakeGateway]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    fake = FakeGateway(server)
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "BASE_URL": fake.base_url}
    yield fake
    server.clear()
    server.stop()


def test_a_rate_limit_pauses_every_poll_once(
    threaded_gateway: FakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    """The first 4 polls, in flight together, get 429: one shared pause, then every poll goes
    through (with MAX_RETRIES 0, a rate-limited poll is still retried at the shared gate)."""
    make_messages(64)
    limited = 4
    arrived = threading.Barrier(limited, timeout=LIMIT)
    lock = threading.Lock()
    answers = {"count": 0}

    def handler(request: Request) -> Response:
        message_id = json.loads(request.get_data())["message_id"]
        with lock:
            answers["count"] += 1
            number = answers["count"]
        if number <= limited:
            arrived.wait()
            body = {"name": "Too Many Requests", "message": "Rate limit exceeded", "code": 0}
            return Response(json.dumps(body), 429, {"Retry-After": "0.05"})
        answer = {"message_id": message_id, "status": 1}
        return Response(json.dumps(answer), mimetype="application/json")

    threaded_gateway.server.expect_request(STATUS_PATH, method="POST").respond_with_handler(handler)
    with caplog.at_level(logging.WARNING, logger="django_whatsapp.client"):
        out, err = run("--concurrency", "4")
    assert err == ""
    assert out.splitlines()[-1] == "Polled 64: 64 changed, 0 unchanged, 0 failed."
    assert answers["count"] == 64 + limited
    pauses = [r for r in caplog.records if "every sender pauses" in r.getMessage()]
    assert len(pauses) == 1
    assert Message.objects.filter(status="delivered").count() == 64


def test_answers_are_applied_in_batches_with_the_lines_in_order(
    gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answers go to the database ``APPLY_BATCH`` at a time (one statement per batch on
    PostgreSQL); a failed poll flushes the batch before it, so every line keeps its place."""
    monkeypatch.setattr(resync, "APPLY_BATCH", 10)
    messages = make_messages(35)
    StatusGateway(gateway.server, frozenset({FIRST_ID + 12}))
    both = io.StringIO()
    with CaptureQueriesContext(connection) as queries:
        call_command("whatsapp_resync", "--concurrency", "4", stdout=both, stderr=both)
    lines = both.getvalue().splitlines()
    assert lines[12] == (
        f"[13/35] message {messages[12].pk}: failed: Internal server error: oops "
        "(code 2, status 500)"
    )
    assert [line.split(":")[0] for line in lines[:35]] == [
        f"[{i}/35] message {m.pk}" for i, m in enumerate(messages, start=1)
    ]
    assert lines[35] == "Polled 35: 34 changed, 0 unchanged, 1 failed."
    batches = [q for q in queries.captured_queries if "unnest(" in q["sql"]]
    if connection.vendor == "postgresql":
        # 1-10, then 11-12 before the failure, 14-23, 24-33 and 34-35.
        assert len(batches) == 5
    else:
        assert batches == []
