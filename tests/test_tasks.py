"""Queued sending (``SEND_ASYNC``) through Django's task framework, in process.

The task backend is the framework's dummy backend, which keeps what was enqueued; a test then runs
the task itself, as a worker would. ``tests/test_tasks_worker.py`` runs real workers.
These tests commit (``transactional_db``) so that ``transaction.on_commit`` really runs.
"""

from __future__ import annotations

import io
from datetime import timedelta
from importlib.util import find_spec
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from django_whatsapp import services, signals, status_rule
from django_whatsapp.models import Message, Template
from tests.conftest import FakeGateway

pytestmark = pytest.mark.django_db(transaction=True)

if find_spec("django.tasks"):  # Django 6.0+
    from django.tasks import default_task_backend

    DUMMY = "django.tasks.backends.dummy.DummyBackend"
else:
    pytest.importorskip("django_tasks")
    from django_tasks import default_task_backend  # type: ignore[no-redef,unused-ignore]

    DUMMY = "django_tasks.backends.dummy.DummyBackend"

from django_whatsapp.tasks import send_message_task  # noqa: E402 - after the framework check

TO = "+380 50 123 45 67"
IMAGE = "https://cdn.example.com/img/photo.png"
Status = Message.Status


class Abort(Exception):
    """Rolls a transaction back."""


@pytest.fixture(autouse=True)
def queued(settings: Any, gateway: FakeGateway) -> None:
    settings.TASKS = {"default": {"BACKEND": DUMMY}}
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "SEND_ASYNC": True}


def enqueued() -> list[Any]:
    return list(default_task_backend.results)  # type: ignore[attr-defined]


def run_queue() -> list[Any]:
    """Run every enqueued task, as a worker would, and forget them."""
    results = enqueued()
    default_task_backend.clear()  # type: ignore[attr-defined]
    return [result.task.call(*result.args, **result.kwargs) for result in results]


def test_a_send_is_stored_queued_and_sent_by_the_task(gateway: FakeGateway) -> None:
    gateway.accept()
    message = services.send_text(TO, "Your order has shipped.")
    assert message.pk is not None
    assert message.status == Status.QUEUED
    stored = Message.objects.get()
    assert (stored.status, stored.destination_addr) == (Status.QUEUED, "380501234567")
    assert stored.status_changed_at is not None
    assert gateway.requests == []
    [job] = enqueued()
    assert job.task.name == "send_message_task"
    assert (job.args, job.kwargs) == ([message.pk], {})
    assert run_queue() == ["accepted"]
    stored.refresh_from_db()
    assert (stored.status, stored.provider_message_id) == (Status.ACCEPTED, 1001)
    [body] = gateway.sent_bodies()
    assert body["text"] == "Your order has shipped."


def test_a_rolled_back_transaction_sends_nothing(gateway: FakeGateway) -> None:
    gateway.accept()

    def send_then_fail() -> None:
        with transaction.atomic():
            services.send_text(TO, "Never")
            assert enqueued() == []  # not before the commit
            raise Abort

    with pytest.raises(Abort):
        send_then_fail()
    assert enqueued() == []
    assert Message.objects.count() == 0
    assert gateway.requests == []


def test_the_task_is_enqueued_when_the_transaction_commits(gateway: FakeGateway) -> None:
    gateway.accept()
    with transaction.atomic():
        message = services.send_media(TO, IMAGE, "A photo")
        assert enqueued() == []
    [job] = enqueued()
    assert job.args == [message.pk]
    run_queue()
    assert Message.objects.get().status == Status.ACCEPTED


def test_two_workers_with_the_same_job_submit_once(gateway: FakeGateway) -> None:
    gateway.accept()
    sending: list[int] = []

    def count(sender: Any, message: Message, **kwargs: Any) -> None:
        sending.append(message.pk)

    message = services.send_text(TO, "Once")
    signals.message_sending.connect(count, weak=False)
    try:
        first = send_message_task.call(message.pk)
        second = send_message_task.call(message.pk)
    finally:
        signals.message_sending.disconnect(count)
    assert (first, second) == ("accepted", "accepted")
    assert len(gateway.sent_bodies()) == 1
    assert sending == [message.pk]
    assert Message.objects.get().events.count() == 1


def test_a_message_enqueued_twice_is_sent_once(gateway: FakeGateway) -> None:
    gateway.accept()
    message = services.send_text(TO, "Once")
    services.enqueue_message(message)  # e.g. re-enqueued after its task seemed lost
    assert len(enqueued()) == 2
    assert run_queue() == ["accepted", "accepted"]
    assert len(gateway.sent_bodies()) == 1


def test_a_template_and_a_draft(gateway: FakeGateway, template: Template) -> None:
    gateway.accept()
    queued_template = services.send_template(TO, "order_ready", ["Ann", "A-1"], IMAGE)
    draft = Message.objects.create(source_addr="TestCo", destination_addr="380501234567", text="d")
    queued_draft = services.send_message(draft)
    assert (queued_template.status, queued_draft.status) == (Status.QUEUED, Status.QUEUED)
    assert Message.objects.get(pk=draft.pk).status == Status.QUEUED
    assert sorted(job.args[0] for job in enqueued()) == [queued_template.pk, draft.pk]
    run_queue()
    assert set(Message.objects.values_list("status", flat=True)) == {Status.ACCEPTED}
    assert len(gateway.sent_bodies()) == 2


def test_a_message_already_past_queued_is_not_enqueued(gateway: FakeGateway) -> None:
    message = Message.objects.create(
        source_addr="TestCo", destination_addr="380501234567", text="x", status=Status.ACCEPTED
    )
    assert services.send_message(message).status == Status.ACCEPTED
    assert enqueued() == []


def test_enqueue_false_sends_now_and_enqueue_true_queues(
    gateway: FakeGateway, settings: Any
) -> None:
    gateway.accept()
    now = services.send_text(TO, "now", enqueue=False)
    assert now.status == Status.ACCEPTED
    assert enqueued() == []
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "SEND_ASYNC": False}
    later = services.send_text(TO, "later", enqueue=True)
    assert later.status == Status.QUEUED
    assert len(enqueued()) == 1


def test_an_invalid_message_is_refused_before_anything_is_stored(gateway: FakeGateway) -> None:
    with pytest.raises(ValidationError):
        services.send_text("not a number", "hi")
    assert Message.objects.count() == 0
    assert enqueued() == []


def test_a_missing_api_key_is_refused_before_anything_is_stored(
    gateway: FakeGateway, settings: Any
) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "API_KEY": None}
    with pytest.raises(ImproperlyConfigured, match="API_KEY"):
        services.send_text(TO, "hi")
    assert Message.objects.count() == 0
    assert enqueued() == []


def test_the_task_for_a_deleted_message_does_nothing(gateway: FakeGateway) -> None:
    message = services.send_text(TO, "gone")
    Message.objects.filter(pk=message.pk).delete()
    assert run_queue() == [None]
    assert gateway.requests == []


def test_a_retry_goes_back_through_the_queue(gateway: FakeGateway) -> None:
    gateway.accept()
    message = Message.objects.create(
        source_addr="TestCo", destination_addr="380501234567", text="x", status=Status.NOT_SENT
    )
    retried = services.retry_message(message, user="operator")
    assert retried.status == Status.QUEUED
    assert list(message.events.values_list("status", "source")) == [("queued", "admin")]
    run_queue()
    assert Message.objects.get(pk=message.pk).status == Status.ACCEPTED


def test_a_bulk_send_is_queued(gateway: FakeGateway) -> None:
    result = services.send_bulk(["380500000001", "380500000002", "bad"], text="Hi")
    assert result.counts == {"queued": 2}
    assert list(result.invalid) == ["bad"]
    assert sorted(job.args[0] for job in enqueued()) == sorted(m.pk for m in result.messages)
    assert gateway.requests == []
    gateway.accept()
    run_queue()
    assert result.messages[0].status == Status.QUEUED  # the caller's copy; the rows moved on
    assert set(Message.objects.values_list("status", flat=True)) == {Status.ACCEPTED}


def test_a_bulk_send_in_a_rolled_back_transaction_sends_nothing(gateway: FakeGateway) -> None:
    def send_then_fail() -> None:
        with transaction.atomic():
            services.send_bulk(["380500000001", "380500000002"], text="Hi")
            raise Abort

    with pytest.raises(Abort):
        send_then_fail()
    assert Message.objects.count() == 0
    assert enqueued() == []


# -- a worker that died mid-send ---------------------------------------------------------------


def stuck(minutes: int, **fields: Any) -> Message:
    return Message.objects.create(
        source_addr="TestCo",
        destination_addr="380501234567",
        text="x",
        status=Status.SENDING,
        status_changed_at=timezone.now() - timedelta(minutes=minutes),
        **fields,
    )


def test_a_message_stuck_in_sending_is_settled_as_unknown() -> None:
    old, recent = stuck(30), stuck(2)
    changes: list[tuple[str, str]] = []

    def changed(sender: Any, old_status: str, new_status: str, **kwargs: Any) -> None:
        changes.append((old_status, new_status))

    signals.status_changed.connect(changed, weak=False)
    try:
        settled = services.settle_stale_sending(timedelta(minutes=10))
    finally:
        signals.status_changed.disconnect(changed)
    assert [m.pk for m in settled] == [old.pk]
    assert Message.objects.get(pk=old.pk).status == Status.UNKNOWN
    assert Message.objects.get(pk=recent.pk).status == Status.SENDING
    event = Message.objects.get(pk=old.pk).events.get()
    assert (event.status, event.source, event.payload["reason"]) == (
        "unknown",
        "send",
        "stale sending",
    )
    assert changes == [("sending", "unknown")]
    # Settled, it is never sent again automatically; an operator's settling is an admin event.
    assert services.settle_stale_sending(timedelta(minutes=10)) == []
    other = stuck(60)
    services.settle_stale_sending(timedelta(minutes=10), user="operator")
    assert Message.objects.get(pk=other.pk).events.get().source == "admin"


def test_a_stuck_message_that_got_its_answer_is_left_alone() -> None:
    message = stuck(30)
    Message.objects.filter(pk=message.pk).update(status=Status.ACCEPTED, provider_message_id=77)
    assert services.settle_stale_sending(timedelta(minutes=10)) == []
    # The candidate was read as sending, but the row had moved on: nothing is recorded.
    assert (
        status_rule.apply_report(message, "unknown", source="send", payload={}, expect=["sending"])
        is None
    )
    assert Message.objects.get(pk=message.pk).events.count() == 0


def test_a_settled_message_is_adopted_by_its_callback() -> None:
    message = stuck(30)
    services.settle_stale_sending(timedelta(minutes=10))
    services.receive_report(message, "delivered", source="callback", provider_message_id=4242)
    fresh = Message.objects.get(pk=message.pk)
    assert (fresh.status, fresh.provider_message_id) == (Status.DELIVERED, 4242)


def test_resync_settles_stale_sending_first(gateway: FakeGateway) -> None:
    old = stuck(30)
    out = io.StringIO()
    call_command("whatsapp_resync", "--stale-sending", "10m", stdout=out)
    assert out.getvalue().splitlines() == [
        f"message {old.pk}: sending -> unknown (stale)",
        "Settled 1 message(s) stuck in sending.",
        "Polled 0: 0 changed, 0 unchanged, 0 failed.",
    ]
    dry = io.StringIO()
    stuck(30)
    call_command("whatsapp_resync", "--stale-sending", "10m", "--dry-run", stdout=dry)
    assert dry.getvalue().splitlines()[0] == (
        "Dry run: 1 message(s) stuck in sending would be settled."
    )
    assert Message.objects.filter(status=Status.SENDING).count() == 1


def test_the_send_command_queues_and_says_so(gateway: FakeGateway) -> None:
    gateway.accept()
    out = io.StringIO()
    call_command("whatsapp_send", "--to", TO, "--text", "hi", stdout=out)
    message = Message.objects.get()
    assert message.status == Status.QUEUED
    assert "queued; a worker will send it" in out.getvalue()
    assert gateway.requests == []
    run_queue()
    message.refresh_from_db()
    assert message.status == Status.ACCEPTED
    assert len(gateway.requests) == 1


def test_without_a_task_framework_the_import_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util
    import sys

    import django_whatsapp.tasks

    spec = importlib.util.spec_from_file_location(
        "django_whatsapp._tasks_without_framework", django_whatsapp.tasks.__file__
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Neither Django's own framework (6.0+) nor the backport can be imported, for this import.
    with monkeypatch.context() as patched:
        patched.setitem(sys.modules, "django.tasks", None)
        patched.setitem(sys.modules, "django_tasks", None)
        with pytest.raises(ImproperlyConfigured, match=r"pip install django-tasks") as caught:
            spec.loader.exec_module(module)
    assert isinstance(caught.value.__cause__, ImportError)
