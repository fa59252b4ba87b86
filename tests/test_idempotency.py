"""Idempotent sends: a second send with the same ``idempotency_key`` returns the first message
and sends nothing; a key reused with other content is an error naming what differs."""

from __future__ import annotations

import io
import json
import threading
from importlib.util import find_spec
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection, connections
from werkzeug import Request, Response

from django_whatsapp import services
from django_whatsapp.bulk import send_bulk
from django_whatsapp.exceptions import IdempotencyConflict, InsufficientBalance, WhatsAppError
from django_whatsapp.models import Message, Template
from django_whatsapp.testing import MemoryGateway
from tests.conftest import SEND_PATH, FakeGateway

TO = "+380 50 123 45 67"
Status = Message.Status


@pytest.mark.django_db
def test_a_second_send_with_the_key_returns_the_first_and_sends_nothing(
    whatsapp_gateway: MemoryGateway, template: Template
) -> None:
    first = services.send_text(TO, "Your order shipped", idempotency_key="order-42-shipped")
    again = services.send_text(TO, "Your order shipped", idempotency_key="order-42-shipped")
    assert again.pk == first.pk
    assert again.status == Status.ACCEPTED
    assert len(whatsapp_gateway.outbox) == 1
    assert Message.objects.get().idempotency_key == "order-42-shipped"
    # Each send service, and send_message with a message being built.
    image = "https://x.io/a.png"
    calls: list[Any] = [
        lambda: services.send_media(TO, image, "cap", idempotency_key="m"),
        lambda: services.send_template(TO, template, ["A", "1"], image, idempotency_key="t"),
        lambda: services.send_message(
            Message(destination_addr=TO, source_addr="TestCo", text="built"), idempotency_key="b"
        ),
    ]
    for call in calls:
        assert call().pk == call().pk
    assert len(whatsapp_gateway.outbox) == 4
    assert Message.objects.count() == 4


@pytest.mark.django_db
def test_a_failed_first_send_is_returned_as_it_is(whatsapp_gateway: MemoryGateway) -> None:
    whatsapp_gateway.fail_next(InsufficientBalance)
    first = services.send_text(TO, "hi", idempotency_key="k")
    again = services.send_text(TO, "hi", idempotency_key="k")
    assert (again.pk, again.status) == (first.pk, Status.NOT_SENT)
    assert len(whatsapp_gateway.requests) == 1  # a retry is the operator's (retry_message)


@pytest.mark.django_db
def test_a_first_message_left_as_a_draft_is_sent_once(whatsapp_gateway: MemoryGateway) -> None:
    """A crash between storing the key and claiming the message leaves a draft: the retried
    call sends it (the claim still lets one caller only)."""
    Message.objects.create(
        destination_addr="380501234567", source_addr="TestCo", text="hi", idempotency_key="k"
    )
    sent = services.send_text(TO, "hi", idempotency_key="k")
    again = services.send_text(TO, "hi", idempotency_key="k")
    assert sent.status == Status.ACCEPTED
    assert again.pk == sent.pk
    assert len(whatsapp_gateway.outbox) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("second", "fields"),
    [
        (lambda: services.send_text(TO, "other text", idempotency_key="k"), ["text"]),
        (lambda: services.send_text("380670000000", "hi", idempotency_key="k"), ["recipient"]),
        (
            lambda: services.send_media(TO, "https://x.io/a.png", "hi", idempotency_key="k"),
            ["type", "file_url"],
        ),
    ],
)
def test_a_key_reused_with_other_content_is_a_conflict_naming_the_fields(
    whatsapp_gateway: MemoryGateway, second: Any, fields: list[str]
) -> None:
    first = services.send_text(TO, "hi", idempotency_key="k")
    with pytest.raises(IdempotencyConflict) as caught:
        second()
    error = caught.value
    assert error.fields == fields
    assert error.message == first
    assert isinstance(error, ValueError)
    assert not isinstance(error, WhatsAppError)  # nothing was asked of the gateway
    assert f"{', '.join(fields)} differ" in str(error)
    assert "'k'" in str(error)
    assert Message.objects.count() == 1
    assert len(whatsapp_gateway.requests) == 1


@pytest.mark.django_db
def test_template_parameters_and_header_are_content(
    whatsapp_gateway: MemoryGateway, template: Template
) -> None:
    image = "https://x.io/h.jpg"
    services.send_template(TO, template, ["Ann", "1"], image, idempotency_key="t")
    with pytest.raises(IdempotencyConflict) as caught:
        services.send_template(
            TO, template, ["Bob", "1"], "https://x.io/o.jpg", idempotency_key="t"
        )
    assert caught.value.fields == ["params", "header"]
    # Metadata and tags are content too (SPEC 13): the same send with other tags is another.
    with pytest.raises(IdempotencyConflict) as caught:
        services.send_template(TO, template, ["Ann", "1"], image, idempotency_key="t", tags=["x"])
    assert caught.value.fields == ["tags"]


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "   ", "k" * 256, 42])
def test_a_bad_key_is_refused_before_anything(whatsapp_gateway: MemoryGateway, key: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        services.send_text(TO, "hi", idempotency_key=key)
    assert list(caught.value.error_dict) == ["idempotency_key"]
    assert Message.objects.count() == 0
    assert whatsapp_gateway.requests == []


@pytest.mark.django_db
def test_a_key_set_on_a_built_message_is_checked_too(whatsapp_gateway: MemoryGateway) -> None:
    built = Message(destination_addr=TO, source_addr="TestCo", text="hi", idempotency_key="k" * 256)
    with pytest.raises(ValidationError) as caught:
        services.send_message(built)
    assert list(caught.value.error_dict) == ["idempotency_key"]
    built.idempotency_key = "own-key"
    first = services.send_message(built)
    again = services.send_message(
        Message(destination_addr=TO, source_addr="TestCo", text="hi", idempotency_key="own-key")
    )
    assert again.pk == first.pk
    assert len(whatsapp_gateway.outbox) == 1


@pytest.mark.django_db
def test_an_invalid_message_with_a_key_stores_nothing(whatsapp_gateway: MemoryGateway) -> None:
    with pytest.raises(ValidationError):
        services.send_text("not a number", "hi", idempotency_key="k")
    assert Message.objects.count() == 0
    assert services.send_text(TO, "hi", idempotency_key="k").status == Status.ACCEPTED


# -- bulk and the command -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_bulk_with_a_key_sends_each_recipient_once(whatsapp_gateway: MemoryGateway) -> None:
    first = send_bulk(["380500000001", "380500000002"], text="sale", idempotency_key="spring")
    assert [m.idempotency_key for m in first.messages] == [
        "spring:380500000001",
        "spring:380500000002",
    ]
    # A retried task, with one recipient more: only the new one is sent.
    again = send_bulk(
        ["380500000001", "380500000002", "380500000003"], text="sale", idempotency_key="spring"
    )
    assert [m.pk for m in again.existing] == [m.pk for m in first.messages]
    assert [m.pk for m in again.messages[:2]] == [m.pk for m in first.messages]
    assert again.messages[2].status == Status.ACCEPTED
    # The bulk sends concurrently, so the outbox holds the requests in the order they arrived.
    assert sorted(s.to for s in whatsapp_gateway.outbox) == [
        "380500000001",
        "380500000002",
        "380500000003",
    ]
    # Other content under the same key: refused before anything is stored or sent.
    with pytest.raises(IdempotencyConflict) as caught:
        send_bulk(["380500000001", "380500000009"], text="other", idempotency_key="spring")
    assert caught.value.fields == ["text"]
    assert Message.objects.count() == 3
    assert len(whatsapp_gateway.requests) == 3
    with pytest.raises(ValidationError):
        send_bulk(["380500000001"], text="x", idempotency_key="k" * 240)


@pytest.mark.django_db
def test_whatsapp_send_with_an_idempotency_key(whatsapp_gateway: MemoryGateway) -> None:
    outs = []
    for _ in range(2):
        out = io.StringIO()
        call_command(
            "whatsapp_send", "--to", TO, "--text", "hi", "--idempotency-key", "cli-1", stdout=out
        )
        outs.append(out.getvalue())
    line = f"Message {Message.objects.get().pk} to +380501234567: accepted"
    assert outs[0].startswith(line)
    assert outs[1].startswith("Already sent with idempotency key 'cli-1': nothing was sent now")
    assert line in outs[1]
    assert len(whatsapp_gateway.outbox) == 1
    with pytest.raises(CommandError, match=r"--idempotency-key: .*text differ"):
        call_command("whatsapp_send", "--to", TO, "--text", "bye", "--idempotency-key", "cli-1")
    with pytest.raises(CommandError, match=r"--idempotency-key: .*non-empty"):
        call_command("whatsapp_send", "--to", TO, "--text", "bye", "--idempotency-key", " ")


# -- queued sending (SEND_ASYNC) -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_queued_sends_with_a_key_store_and_enqueue_once(
    whatsapp_gateway: MemoryGateway, settings: Any, admin_user: Any
) -> None:
    if find_spec("django.tasks"):
        from django.tasks import default_task_backend

        dummy = "django.tasks.backends.dummy.DummyBackend"
    else:
        pytest.importorskip("django_tasks")
        from django_tasks import default_task_backend  # type: ignore[no-redef,unused-ignore]

        dummy = "django_tasks.backends.dummy.DummyBackend"
    settings.TASKS = {"default": {"BACKEND": dummy}}
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "SEND_ASYNC": True}
    default_task_backend.clear()  # type: ignore[attr-defined]
    kwargs: dict[str, Any] = {
        "idempotency_key": "q",
        "metadata": {"o": 1},
        "tags": ["queued"],
        "target": admin_user,
    }
    first = services.send_text(TO, "hi", **kwargs)
    again = services.send_text(TO, "hi", **kwargs)
    assert (first.status, again.pk) == (Status.QUEUED, first.pk)
    results = list(default_task_backend.results)  # type: ignore[attr-defined]
    assert len(results) == 1
    default_task_backend.clear()  # type: ignore[attr-defined]
    # The worker sends the stored message with its data; a third call then sends nothing.
    assert [r.task.call(*r.args, **r.kwargs) for r in results] == ["accepted"]
    stored = Message.objects.get()
    assert (stored.metadata, stored.tags, stored.target) == ({"o": 1}, ["queued"], admin_user)
    assert services.send_text(TO, "hi", **kwargs).status == Status.ACCEPTED
    assert list(default_task_backend.results) == []  # type: ignore[attr-defined]
    assert len(whatsapp_gateway.outbox) == 1


# -- twenty threads at once on PostgreSQL ------------------------------------------------------

THREADS = 20


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_threads_with_one_key_make_exactly_one_gateway_request(
    gateway: FakeGateway,
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("a race is proven on PostgreSQL (real parallel connections): DATABASE_URL")
    lock = threading.Lock()
    sends: list[int] = []
    returned: list[Any] = []
    losers_done = threading.Event()

    def handler(request: Request) -> Response:
        with lock:
            sends.append(json.loads(request.get_data())["destination_addr"])
        # The one request stays in flight until every other caller has its answer: none of
        # them waited for this send, and none sent its own.
        losers_done.wait(timeout=60)
        return Response(json.dumps({"message_id": 9001}), 200, mimetype="application/json")

    gateway.server.expect_request(SEND_PATH, method="POST").respond_with_handler(handler)
    barrier = threading.Barrier(THREADS)

    def racer() -> None:
        try:
            barrier.wait(timeout=30)
            result: Any = services.send_text(TO, "hi", idempotency_key="race-1")
        except BaseException as error:  # kept and inspected below
            result = error
        finally:
            connections.close_all()
        with lock:
            returned.append(result)
            if len(returned) == THREADS - 1:
                losers_done.set()

    threads = [threading.Thread(target=racer, daemon=True) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a racer is stuck"
    errors = [r for r in returned if isinstance(r, BaseException)]
    assert errors == []
    assert sends == [380501234567]
    stored = Message.objects.get()
    assert (stored.status, stored.provider_message_id) == (Status.ACCEPTED, 9001)
    assert {r.pk for r in returned} == {stored.pk}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_bulk_sends_racing_with_one_key_send_each_recipient_once(
    whatsapp_gateway: MemoryGateway,
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("a race is proven on PostgreSQL (real parallel connections): DATABASE_URL")
    recipients = [f"38050000{i:04d}" for i in range(30)]
    racers = 6
    barrier = threading.Barrier(racers)
    results: list[Any] = []
    lock = threading.Lock()

    def racer() -> None:
        try:
            barrier.wait(timeout=30)
            result: Any = send_bulk(recipients, text="sale", idempotency_key="race", concurrency=2)
        except BaseException as error:  # kept and inspected below
            result = error
        finally:
            connections.close_all()
        with lock:
            results.append(result)

    threads = [threading.Thread(target=racer, daemon=True) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a racer is stuck"
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert sorted(s.to for s in whatsapp_gateway.outbox) == recipients
    assert Message.objects.count() == len(recipients)
    # Every racer got one message per recipient, the same ones.
    assert {tuple(m.pk for m in r.messages) for r in results} == {
        tuple(Message.objects.order_by("destination_addr").values_list("pk", flat=True))
    }
