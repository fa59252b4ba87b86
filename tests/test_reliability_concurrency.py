"""At most one send, and one event per report, under real concurrency on PostgreSQL.

Every test starts its threads together on a ``threading.Barrier``; each thread has its own
database connection (Django opens one per thread) and closes it when it ends. The fake gateway
answers slowly enough that the racers overlap while the first request is in flight, and counts
every request it gets: the promise is about what reaches the gateway.

SQLite serialises writers on one file (and the test database lives in memory, per connection),
so a race there proves nothing: these tests run in the PostgreSQL pass of ``make test``.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.test import Client
from django.urls import reverse
from werkzeug import Request, Response

from django_whatsapp import services
from django_whatsapp.models import Message, StatusEvent
from django_whatsapp.signing import callback_url
from tests.conftest import SEND_PATH, FakeGateway
from tests.waiting import LIMIT, join_all, pause

Status = Message.Status
THREADS = 20
ROUNDS = 20
LIST_URL = reverse("admin:django_whatsapp_message_changelist")

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip(
            "concurrency is proven on PostgreSQL (row locks, real parallel connections); "
            "run with DATABASE_URL=postgres://... (make test and CI do)"
        )


def race(*workers: Callable[[], Any], timeout: float = LIMIT) -> list[Any]:
    """Run the workers in threads released together by a barrier; return what each returned or
    raised. Every thread closes its own database connection when it ends."""
    barrier = threading.Barrier(len(workers))
    results: list[Any] = [None] * len(workers)

    def run(index: int, work: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=LIMIT)
            results[index] = work()
        except BaseException as error:  # kept and inspected by the test
            results[index] = error
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=run, args=(i, w), daemon=True) for i, w in enumerate(workers)
    ]
    for thread in threads:
        thread.start()
    join_all(threads, what="every racer to end (one is stuck)", timeout=timeout)
    return results


class CountingGateway:
    """Accepts every send after a short pause (so the racers overlap the request in flight),
    counting the sends it got."""

    def __init__(self, gateway: FakeGateway, *, answer: Any = None, status: int = 200) -> None:
        self.lock = threading.Lock()
        self.sends = 0
        self.answer = answer
        self.status = status
        gateway.server.expect_request(SEND_PATH, method="POST").respond_with_handler(self.handle)

    def handle(self, request: Request) -> Response:
        with self.lock:
            self.sends += 1
            number = self.sends
        pause(0.05)
        body = self.answer if self.answer is not None else {"message_id": 7000 + number}
        return Response(json.dumps(body), self.status, mimetype="application/json")


@pytest.fixture
def counting(gateway: FakeGateway) -> CountingGateway:
    return CountingGateway(gateway)


def make_message(status: str = Status.DRAFT, **fields: Any) -> Message:
    values: dict[str, Any] = {
        "source_addr": "TestCo",
        "destination_addr": "380501234567",
        "text": "hello",
        "status": status,
    }
    values.update(fields)
    return Message.objects.create(**values)


def sent_once(message: Message, counting: CountingGateway) -> Message:
    """The message went to the gateway exactly once and was accepted, with one send event."""
    fresh = Message.objects.get(pk=message.pk)
    assert counting.sends == 1
    assert fresh.status == Status.ACCEPTED
    assert fresh.provider_message_id == 7001
    sends = fresh.events.filter(source=StatusEvent.Source.SEND)
    assert [e.status for e in sends] == [Status.ACCEPTED]
    return fresh


def outcomes(results: list[Any]) -> list[str]:
    """What each racer saw: the status it got back, or the name of what it raised."""
    return [
        type(r).__name__ if isinstance(r, BaseException) else getattr(r, "status", str(r))
        for r in results
    ]


# -- at most one send --------------------------------------------------------------------------


def test_twenty_threads_sending_one_draft_make_one_request(counting: CountingGateway) -> None:
    message = make_message()

    def send() -> Message:
        # Each racer has its own copy, as separate workers would.
        return services.send_message(Message.objects.get(pk=message.pk))

    results = race(*[send] * THREADS)
    assert not [r for r in results if isinstance(r, BaseException)], outcomes(results)
    fresh = sent_once(message, counting)
    assert fresh.attempts == 1
    # The loser sees the message as the winner left it at that moment, never as sendable.
    assert set(outcomes(results)) <= {Status.SENDING, Status.ACCEPTED}


def test_twenty_threads_sending_one_stale_copy_make_one_request(counting: CountingGateway) -> None:
    """Even when every racer holds the same ``draft`` copy loaded before anyone claimed it."""
    message = make_message(status=Status.QUEUED)
    copies = [Message.objects.get(pk=message.pk) for _ in range(THREADS)]
    results = race(*[lambda c=c: services.send_message(c) for c in copies])
    assert not [r for r in results if isinstance(r, BaseException)], outcomes(results)
    assert sent_once(message, counting).attempts == 1


def test_twenty_threads_retrying_one_not_sent_message_make_one_request(
    counting: CountingGateway,
) -> None:
    message = make_message(status=Status.NOT_SENT, error_name="Topup balance is required")

    def retry() -> Message:
        return services.retry_message(Message.objects.get(pk=message.pk), user="operator")

    results = race(*[retry] * THREADS)
    seen = outcomes(results)
    assert seen.count("NotRetryable") == THREADS - 1, seen
    fresh = sent_once(message, counting)
    assert fresh.error_name == ""
    # One operator retry recorded, not twenty.
    assert list(fresh.events.filter(source="admin").values_list("status", flat=True)) == ["queued"]


def test_senders_and_retriers_mixed_make_one_request(counting: CountingGateway) -> None:
    """Half the racers retry the ``not_sent`` message, half send whatever copy they load: the
    retry puts it back to ``queued``, and only one of all of them submits it."""
    message = make_message(status=Status.NOT_SENT)

    def retry() -> Any:
        return services.retry_message(Message.objects.get(pk=message.pk))

    def send() -> Any:
        return services.send_message(Message.objects.get(pk=message.pk))

    results = race(*[retry, send] * (THREADS // 2))
    errors = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(e, services.NotRetryable) for e in errors), outcomes(results)
    assert len(errors) == THREADS // 2 - 1
    sent_once(message, counting)


def test_a_refused_retry_race_still_makes_one_request(gateway: FakeGateway) -> None:
    """When the gateway refuses the retried send, it is still refused once, not once per racer,
    and the message ends ``not_sent`` again with the refusal kept."""
    refusing = CountingGateway(
        gateway,
        answer={"name": "Topup balance is required", "message": "empty", "code": 3, "status": 402},
        status=402,
    )
    message = make_message(status=Status.NOT_SENT)
    results = race(*[lambda: services.retry_message(Message.objects.get(pk=message.pk))] * THREADS)
    # A racer arriving after the first retry failed may retry again: that is a second real
    # operator request, made after the first one's answer, never concurrent with it.
    fresh = Message.objects.get(pk=message.pk)
    retried = [r for r in results if not isinstance(r, BaseException)]
    assert refusing.sends == len(retried) >= 1
    assert fresh.status == Status.NOT_SENT
    assert fresh.error_code == 3
    assert fresh.events.filter(source="admin").count() == len(retried)


def admin_client(django_user_model: Any) -> Client:
    user = django_user_model.objects.filter(username="racer").first()
    if user is None:
        user = django_user_model.objects.create_superuser("racer", "racer@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


def test_admin_send_drafts_clicked_twenty_times_at_once_makes_one_request(
    counting: CountingGateway, django_user_model: Any
) -> None:
    message = make_message()
    clients = [admin_client(django_user_model) for _ in range(THREADS)]
    # Each click answers the confirmation ("Yes, send them": post=yes), as the page posts it.
    data = {"action": "send_drafts", "_selected_action": [str(message.pk)], "post": "yes"}
    results = race(*[lambda c=c: c.post(LIST_URL, data) for c in clients])
    assert [getattr(r, "status_code", r) for r in results] == [302] * THREADS
    assert sent_once(message, counting).attempts == 1


def test_admin_action_services_and_retry_view_racing_make_one_request(
    counting: CountingGateway, django_user_model: Any
) -> None:
    """The ``retry_not_sent`` action, the message page's Retry button and ``retry_message`` in
    code, all at once on one ``not_sent`` message."""
    message = make_message(status=Status.NOT_SENT)
    action = {"action": "retry_not_sent", "_selected_action": [str(message.pk)]}
    retry_url = reverse("admin:django_whatsapp_message_retry", args=[message.pk])
    clients = [admin_client(django_user_model) for _ in range(THREADS)]

    def in_code() -> Any:
        try:
            return services.retry_message(Message.objects.get(pk=message.pk))
        except services.NotRetryable:
            return "refused"

    workers: list[Callable[[], Any]] = []
    for index, client in enumerate(clients):
        if index % 3 == 0:
            workers.append(lambda c=client: c.post(LIST_URL, action).status_code)
        elif index % 3 == 1:
            workers.append(lambda c=client: c.post(retry_url).status_code)
        else:
            workers.append(in_code)
    results = race(*workers)
    assert not [r for r in results if isinstance(r, BaseException)], outcomes(results)
    sent_once(message, counting)


def test_whatsapp_send_commands_in_parallel_each_send_their_own_message_once(
    counting: CountingGateway,
) -> None:
    """``whatsapp_send`` makes a new message per run: ten runs at once are ten messages, each
    submitted exactly once."""

    def run(index: int) -> str:
        out = io.StringIO()
        call_command("whatsapp_send", "--to", f"38050123{index:04d}", "--text", "hi", stdout=out)
        return "done" if "accepted" in out.getvalue() else out.getvalue()

    results = race(*[lambda i=i: run(i) for i in range(10)])
    assert results == ["done"] * 10
    assert counting.sends == 10
    assert Message.objects.filter(status=Status.ACCEPTED).count() == 10
    assert StatusEvent.objects.filter(source="send", status="accepted").count() == 10


# -- one event per report ----------------------------------------------------------------------


def post_json(client: Client, path: str, body: str) -> Callable[[], Any]:
    return lambda: client.post(path, body, content_type="application/json")


def callback_path(message: Message) -> str:
    url = callback_url(message.uuid)
    assert url is not None
    return urlsplit(url).path


def test_the_same_callback_twice_at_the_same_instant_is_one_event() -> None:
    for round_ in range(ROUNDS):
        message = make_message(status=Status.ACCEPTED, provider_message_id=9000 + round_)
        path = callback_path(message)
        body = json.dumps({"message_id": 9000 + round_, "status": 1})
        clients = [Client(), Client()]
        results = race(*[post_json(c, path, body) for c in clients])
        answers = sorted(
            (r.status_code, r.json()["applied"], r.json()["duplicates"]) for r in results
        )
        assert answers == [(200, 0, 1), (200, 1, 0)], (round_, answers)
        fresh = Message.objects.get(pk=message.pk)
        assert fresh.status == Status.DELIVERED
        assert list(fresh.events.values_list("status", "source")) == [("delivered", "callback")]


def test_two_callbacks_adopting_the_id_at_once_are_one_event_each() -> None:
    """The send's answer was lost (``unknown``, no id): two different reports carrying the id
    race; both are kept, the id is adopted once, the higher-ranked status wins."""
    for round_ in range(ROUNDS):
        message = make_message(status=Status.UNKNOWN)
        path = callback_path(message)
        provider_id = 9500 + round_
        bodies = [
            json.dumps({"message_id": provider_id, "status": "sent"}),
            json.dumps({"message_id": provider_id, "status": "seen"}),
        ]
        results = race(*[post_json(Client(), path, b) for b in bodies])
        assert [r.status_code for r in results] == [200, 200], round_
        fresh = Message.objects.get(pk=message.pk)
        assert (fresh.status, fresh.provider_message_id) == (Status.SEEN, provider_id)
        assert sorted(fresh.events.values_list("status", flat=True)) == ["seen", "sent"]


def test_a_callback_and_a_poll_of_the_same_status_at_once_are_two_events() -> None:
    """Different sources are different reports: both kept, neither lost."""
    for round_ in range(ROUNDS):
        message = make_message(status=Status.ACCEPTED, provider_message_id=9800 + round_)
        path = callback_path(message)
        body = json.dumps({"status": "delivered"})

        def poll(m: Message = message) -> Any:
            return services.receive_report(
                Message.objects.get(pk=m.pk), "delivered", source="poll", payload={"status": 1}
            )

        results = race(post_json(Client(), path, body), poll)
        assert results[0].status_code == 200
        assert isinstance(results[1], StatusEvent)
        fresh = Message.objects.get(pk=message.pk)
        assert fresh.status == Status.DELIVERED
        assert sorted(fresh.events.values_list("source", flat=True)) == ["callback", "poll"]
