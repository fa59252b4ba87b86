"""Bulk sending (``django_whatsapp.bulk``): validation first, one message per recipient, a pool of
threads over one pooled session, one shared pause on 429.

A bulk send commits each message before its request goes out, so these tests commit
(``transactional_db``).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.backends.signals import connection_created
from django.test.utils import CaptureQueriesContext
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from django_whatsapp import bulk, services, signals
from django_whatsapp.client import SharedBackoff
from django_whatsapp.models import Message, Template
from tests.conftest import SEND_PATH, FakeGateway, SleepRecorder
from tests.threads import HelperThreads
from tests.waiting import LIMIT

pytestmark = pytest.mark.django_db(transaction=True)

IMAGE = "https://cdn.example.com/img/photo.png"


def numbers(count: int, start: int = 380500000000) -> list[str]:
    return [f"+{start + n}" for n in range(count)]


@pytest.fixture
def threaded_gateway(settings: Any) -> Iterator[FakeGateway]:
    """A fake gateway that answers requests in parallel (the shared one answers one at a time)."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    fake = FakeGateway(server)
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "BASE_URL": fake.base_url}
    yield fake
    server.clear()
    server.stop()


def test_fifty_recipients_fifty_accepted_messages(gateway: FakeGateway) -> None:
    gateway.accept()
    recipients = numbers(50)
    result = bulk.send_bulk(recipients, text="Spring sale: 20% off", concurrency=8)
    assert result.invalid == {}
    assert result.duplicates == []
    assert result.errors == {}
    assert result.counts == {"accepted": 50}
    stored = list(Message.objects.order_by("pk"))
    assert len(stored) == 50
    assert {m.status for m in stored} == {"accepted"}
    assert len({m.provider_message_id for m in stored}) == 50
    assert [m.destination_addr for m in stored] == [r.lstrip("+") for r in recipients]
    assert [m.pk for m in result.messages] == [m.pk for m in stored]
    bodies = gateway.sent_bodies()
    assert len(bodies) == 50
    assert sorted(b["destination_addr"] for b in bodies) == [int(r) for r in recipients]
    assert {b["text"] for b in bodies} == {"Spring sale: 20% off"}
    assert len({b["callback_url"] for b in bodies}) == 50
    assert all(m.events.get().source == "send" for m in stored)


def test_invalid_and_repeated_recipients_are_reported_not_sent(gateway: FakeGateway) -> None:
    gateway.accept()
    result = bulk.send_bulk(
        ["+380 50 000 0001", "call me", "380500000001", "", "1" * 21, "380-50-000-0002"],
        text="Hi",
        concurrency=2,
    )
    assert [m.destination_addr for m in result.messages] == ["380500000001", "380500000002"]
    assert set(result.invalid) == {"call me", "", "1" * 21}
    assert "digits only" in result.invalid["call me"][0]
    assert "at most 20" in result.invalid["1" * 21][0]
    assert result.duplicates == ["380500000001"]
    assert len(gateway.sent_bodies()) == 2
    assert Message.objects.count() == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": "x" * 4097}, "text"),
        ({"file_url": "https://cdn.example.com/a.gif"}, "file_url"),
        ({"text": "hi", "source_addr": "S" * 21}, "source_addr"),
        ({"template": "nope"}, "template"),
        ({"template": "order_ready", "params": ["only one"], "header": IMAGE}, "template_params"),
    ],
)
def test_bad_content_is_refused_before_anything_is_stored(
    gateway: FakeGateway, template: Template, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        bulk.send_bulk(numbers(3), **kwargs)
    assert field in caught.value.error_dict
    assert Message.objects.count() == 0
    assert gateway.requests == []


@pytest.mark.parametrize(
    "kwargs", [{}, {"text": "hi", "template": "order_ready"}, {"file_url": IMAGE, "template": "t"}]
)
def test_exactly_one_kind_of_content(gateway: FakeGateway, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="text"):
        bulk.send_bulk(numbers(2), **kwargs)
    assert Message.objects.count() == 0


def test_an_image_with_a_caption(gateway: FakeGateway) -> None:
    gateway.accept()
    result = bulk.send_bulk(numbers(5), file_url=IMAGE, text="New in", concurrency=3)
    assert result.counts == {"accepted": 5}
    assert {(b["message_type"], b["file_url"], b["text"]) for b in gateway.sent_bodies()} == {
        (2, IMAGE, "New in")
    }


def test_a_template_by_name(gateway: FakeGateway, template: Template) -> None:
    gateway.accept()
    result = services.send_bulk(
        numbers(6), template="order_ready", params=["Ann", 42], header=IMAGE, source_addr="Shop"
    )
    assert result.counts == {"accepted": 6}
    stored = Message.objects.all()
    assert {m.template_id for m in stored} == {template.pk}
    assert all(m.template_params == {"body": ["Ann", "42"], "header": IMAGE} for m in stored)
    for body in gateway.sent_bodies():
        assert (body["message_type"], body["template_name"], body["source_addr"]) == (
            4,
            "order_ready",
            "Shop",
        )
        inner = json.loads(body["template_params"])
        assert inner["to"] == str(body["destination_addr"])


def test_refusals_are_kept_per_message(gateway: FakeGateway) -> None:
    refusal = {"name": "Invalid Parameter: destination_addr", "message": "bad", "code": 1}
    gateway.answer(refusal, 400)
    result = bulk.send_bulk(numbers(4), text="Hi", concurrency=4)
    assert result.counts == {"not_sent": 4}
    assert set(Message.objects.values_list("error_name", flat=True)) == {
        "Invalid Parameter: destination_addr"
    }


@contextlib.contextmanager
def vetoing(number: str, error: Exception) -> Iterator[None]:
    """A ``message_sending`` receiver raises ``error`` for the message to ``number``."""

    def veto(sender: Any, message: Message, **kwargs: Any) -> None:
        if message.destination_addr == number:
            raise error

    signals.message_sending.connect(veto, weak=False)
    try:
        yield
    finally:
        signals.message_sending.disconnect(veto)


def test_a_vetoed_message_is_reported_and_the_others_go(gateway: FakeGateway) -> None:
    gateway.accept()
    vetoed = "380500000002"

    with vetoing(vetoed, ValidationError("Opted out.")):
        result = bulk.send_bulk(numbers(5), text="Hi", concurrency=2)
    assert result.counts == {"accepted": 4, "not_sent": 1}
    [(pk, error)] = result.errors.items()
    assert Message.objects.get(pk=pk).destination_addr == vetoed
    assert "Opted out" in error
    assert len(gateway.sent_bodies()) == 4


def test_a_veto_raising_a_gateway_error_is_reported_as_a_veto(gateway: FakeGateway) -> None:
    """Regression: a ``message_sending`` receiver that raised a ``WhatsAppError`` was taken for
    the opt-out or the window policy, and left out of ``BulkResult.errors``."""
    from django_whatsapp.exceptions import InvalidParameter

    gateway.accept()

    with vetoing("380500000001", InvalidParameter("Not this one.", name="Vetoed")):
        result = bulk.send_bulk(numbers(3), text="Hi", concurrency=2)
    assert result.counts == {"accepted": 2, "not_sent": 1}
    [(pk, error)] = result.errors.items()
    assert error == "InvalidParameter: Vetoed: Not this one."
    vetoed = Message.objects.get(pk=pk)
    assert (vetoed.destination_addr, vetoed.error_name, vetoed.submitted_at) == (
        "380500000001",
        "Not submitted",
        None,
    )


def test_a_rate_limit_is_one_shared_pause(
    threaded_gateway: FakeGateway, sleeps: SleepRecorder
) -> None:
    """The first 8 requests all get 429 with Retry-After: 2 while they are in flight together.
    Every message still ends accepted, after one pause that every thread kept to."""
    concurrency = limited = 8
    arrived = threading.Barrier(limited, timeout=LIMIT)
    lock = threading.Lock()
    counter = {"requests": 0, "ids": 5000}

    def handler(request: Request) -> Response:
        with lock:
            counter["requests"] += 1
            number = counter["requests"]
        if number <= limited:
            arrived.wait()  # the whole burst is on its way before any answer
            body = {"name": "Too Many Requests", "message": "Rate limit exceeded", "code": 0}
            return Response(
                json.dumps(body), 429, {"Retry-After": "2"}, mimetype="application/json"
            )
        with lock:
            counter["ids"] += 1
            return Response(json.dumps({"message_id": counter["ids"]}), mimetype="application/json")

    threaded_gateway.server.expect_request(SEND_PATH, method="POST").respond_with_handler(handler)
    gate = SharedBackoff()
    client = services.pooled_client(concurrency, sleep=sleeps, gate=gate)
    result = bulk.send_bulk(numbers(40), text="Hi", concurrency=concurrency, client=client)
    client.close()
    assert result.counts == {"accepted": 40}
    assert counter["requests"] == 48
    assert gate.pauses == 1
    assert len(sleeps.calls) == 1
    assert 1.5 < sleeps.calls[0] <= 2.0
    attempts = sorted(Message.objects.values_list("attempts", flat=True))
    assert attempts == [1] * 32 + [2] * 8
    assert len(set(Message.objects.values_list("provider_message_id", flat=True))) == 40


def test_no_more_requests_in_flight_than_the_concurrency(threaded_gateway: FakeGateway) -> None:
    """The default client's gate holds the requests in flight to ``concurrency`` even where more
    threads send (they do their database work while others' requests are out). The first four
    requests meet at a barrier: four do get in flight together."""
    concurrency = 4
    arrived = threading.Barrier(concurrency, timeout=LIMIT)
    lock = threading.Lock()
    state = {"in_flight": 0, "most": 0, "count": 0, "ids": 7000}

    def handler(request: Request) -> Response:
        with lock:
            state["in_flight"] += 1
            state["most"] = max(state["most"], state["in_flight"])
            state["count"] += 1
            number = state["count"]
        if number <= concurrency:
            arrived.wait()
        with lock:
            state["in_flight"] -= 1
            state["ids"] += 1
            body = json.dumps({"message_id": state["ids"]})
        return Response(body, mimetype="application/json")

    threaded_gateway.server.expect_request(SEND_PATH, method="POST").respond_with_handler(handler)
    result = bulk.send_bulk(numbers(40), text="Hi", concurrency=concurrency)
    assert result.counts == {"accepted": 40}
    assert state["most"] == concurrency


def test_a_burst_of_429_answers_is_one_pause(sleeps: SleepRecorder) -> None:
    gate = SharedBackoff()
    first, second = gate.wait(sleeps), gate.wait(sleeps)
    assert first == second == 0
    assert gate.pause(2.0, first) is True
    assert gate.pause(2.0, second) is False  # the same burst
    assert gate.wait(sleeps) == 1
    assert len(sleeps.calls) == 1
    assert 1.5 < sleeps.calls[0] <= 2.0
    assert gate.wait(sleeps) == 1  # served: no second sleep
    assert len(sleeps.calls) == 1
    assert gate.pause(1.0, 1) is True  # a new burst
    gate.wait(sleeps)
    assert len(sleeps.calls) == 2
    assert gate.pauses == 2


def test_a_limiting_gate_gives_its_slot_back(
    sleeps: SleepRecorder, helper_threads: HelperThreads
) -> None:
    gate = SharedBackoff(max_in_flight=1)
    gate.wait(sleeps)
    passed = threading.Event()
    helper_threads.start(lambda: (gate.wait(sleeps), passed.set()))
    gate.release()
    assert passed.wait(LIMIT)
    helper_threads.join(what="the waiter")
    gate.release()
    with pytest.raises(ValueError, match="max_in_flight"):
        SharedBackoff(max_in_flight=0)


def test_the_pooled_client_takes_the_proxy_from_the_environment_once(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "BASE_URL": "https://gateway.example.com/v1/api",
    }
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.com:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = services.pooled_client(4)
    assert client.session.proxies["https"] == "http://proxy.example.com:3128"
    assert client.session.trust_env is False
    client.close()
    monkeypatch.setenv("NO_PROXY", "gateway.example.com")
    bypassed = services.pooled_client(4)
    assert "https" not in bypassed.session.proxies
    bypassed.close()


def test_the_pool_holds_a_connection_per_thread(gateway: FakeGateway) -> None:
    client = services.pooled_client(12)
    adapter = client.session.get_adapter(gateway.base_url)
    assert adapter._pool_maxsize >= 12  # type: ignore[attr-defined]
    assert isinstance(client.gate, SharedBackoff)
    assert client.gate.max_in_flight == 12
    client.close()


def test_the_pooled_client_hands_each_send_to_the_adapter(
    gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bulk sends and campaign workers go straight to the pool's adapter, not through
    ``Session.request`` for each of thousands of identical sends."""
    gateway.accept()
    client = services.pooled_client(4)

    def not_this_way(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("Session.request was called")

    monkeypatch.setattr(requests.Session, "request", not_this_way)
    payload = {"source_addr": "TestCo", "destination_addr": 380631234567, "message_type": 1}
    assert client.send({**payload, "text": "Hi"}).message_id == 1001
    client.close()


def test_the_sending_threads_open_no_database_connection(gateway: FakeGateway) -> None:
    """The threads only talk HTTP: every claim and every result is written by the caller's
    thread, on its one connection, in batches (on every database)."""
    gateway.accept()
    opened: list[Any] = []
    main = threading.get_ident()

    def record(sender: Any, connection: Any, **kwargs: Any) -> None:
        if threading.get_ident() != main:
            opened.append(connection)

    connection_created.connect(record, weak=False)
    try:
        with CaptureQueriesContext(connection) as queries:
            result = bulk.send_bulk(numbers(12), text="Hi", concurrency=4)
    finally:
        connection_created.disconnect(record)
    assert result.counts == {"accepted": 12}
    assert opened == []
    claims = [
        q
        for q in queries.captured_queries
        if "RETURNING" in q["sql"] and "submitted_at" in q["sql"]
    ]
    assert 1 <= len(claims) <= 3  # 12 messages claimed 8 and then 4 (or 4 and 4) at a time


def test_inline_inside_a_transaction_is_refused(gateway: FakeGateway) -> None:
    with pytest.raises(transaction.TransactionManagementError), transaction.atomic():
        bulk.send_bulk(numbers(2), text="Hi")
    assert Message.objects.count() == 0
    assert gateway.requests == []


def test_nothing_valid_stores_nothing(gateway: FakeGateway) -> None:
    result = bulk.send_bulk(["abc", "x"], text="Hi")
    assert result.messages == []
    assert set(result.invalid) == {"abc", "x"}
    assert Message.objects.count() == 0


@pytest.mark.parametrize("concurrency", [0, 65])
def test_concurrency_is_bounded(gateway: FakeGateway, concurrency: int) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        bulk.send_bulk(numbers(2), text="Hi", concurrency=concurrency)


def test_parse_recipients() -> None:
    text = "+380 50 000 0001\n380500000002, 380500000003;\r\n\n  380500000004  "
    assert bulk.parse_recipients(text) == [
        "+380 50 000 0001",
        "380500000002",
        "380500000003",
        "380500000004",
    ]
    assert bulk.parse_recipients("") == []
