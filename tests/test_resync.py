"""The resync use case (``django_whatsapp.resync``, re-exported by the services): what
``whatsapp_resync`` runs, called as a project's own scheduled task would call it, with no command
and no output."""

from __future__ import annotations

import io
import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.utils import timezone
from werkzeug import Request, Response

from django_whatsapp import resync, services
from django_whatsapp.client import WhatsAppClient
from django_whatsapp.exceptions import WhatsAppError
from django_whatsapp.models import Message
from tests.conftest import STATUS_PATH, FakeGateway
from tests.threads import HelperThreads
from tests.waiting import LIMIT, wait_until

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_retries(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "MAX_RETRIES": 0}


def message(status: str, provider_message_id: int | None, **fields: Any) -> Message:
    return Message.objects.create(
        source_addr="TestCo",
        destination_addr="380501234567",
        text="hi",
        status=status,
        provider_message_id=provider_message_id,
        **fields,
    )


def polled_ids(gateway: FakeGateway) -> list[int]:
    return [json.loads(r.get_data())["message_id"] for r in gateway.requests]


def test_the_services_offer_the_resync_for_a_projects_own_task() -> None:
    assert services.resync_statuses is resync.resync_statuses
    assert services.resync_selection is resync.resync_selection
    assert {"resync_statuses", "resync_selection", "Polled", "ResyncSummary"} <= set(
        services.__all__
    )


def test_a_resync_polls_what_is_not_final_and_reports_each_in_order(
    gateway: FakeGateway,
) -> None:
    accepted, sent, delivered = (
        message("accepted", 11),
        message("sent", 12),
        message("delivered", 13),
    )
    message("failed", 14)  # final: never polled
    message("not_sent", None)  # no provider id: nothing to poll
    gateway.status(11, 1)
    gateway.status(12, 7)
    gateway.status(13, 1)
    gateway.answer({"name": "Internal server error", "code": 2}, 500, path=STATUS_PATH)
    reported: list[resync.Polled] = []
    summary = services.resync_statuses(on_polled=reported.append)
    assert summary == resync.ResyncSummary(total=3, changed=2, unchanged=1, failed=0)
    assert polled_ids(gateway) == [11, 12, 13]
    assert [(p.index, p.total, p.message.pk, p.old_status, p.message.status) for p in reported] == [
        (1, 3, accepted.pk, "accepted", "delivered"),
        (2, 3, sent.pk, "sent", "seen"),
        (3, 3, delivered.pk, "delivered", "delivered"),
    ]
    assert [p.changed for p in reported] == [True, True, False]
    assert Message.objects.get(pk=accepted.pk).events.get().source == "poll"


def test_a_failed_poll_is_reported_and_the_resync_goes_on(gateway: FakeGateway) -> None:
    first, second = message("accepted", 21), message("accepted", 22)
    gateway.status(22, 1)
    gateway.answer({"name": "Internal server error", "code": 2}, 500, path=STATUS_PATH)
    reported: list[resync.Polled] = []
    summary = services.resync_statuses(on_polled=reported.append)
    assert summary == resync.ResyncSummary(total=2, changed=1, unchanged=0, failed=1)
    assert [p.message.pk for p in reported] == [first.pk, second.pk]
    assert isinstance(reported[0].error, WhatsAppError)
    assert not reported[0].changed
    assert Message.objects.get(pk=first.pk).status == "accepted"  # nothing changed
    assert Message.objects.get(pk=second.pk).status == "delivered"


def test_the_selection_and_the_limit(gateway: FakeGateway) -> None:
    old = message("accepted", 31)
    Message.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    recent = [message("accepted", 32 + n) for n in range(3)]
    for n in range(3):
        gateway.status(32 + n, 1)
    selection = services.resync_selection(since=timedelta(days=2))
    assert list(selection) == recent
    assert list(services.resync_selection(ids=[old.pk, recent[0].pk])) == [old, recent[0]]
    summary = services.resync_statuses(selection, limit=2)
    assert summary.total == 2
    assert polled_ids(gateway) == [32, 33]
    # Delivered is not final: all four are still candidates, read in id order up to a limit.
    assert list(resync.resync_candidates(services.resync_selection(), limit=3)) == [
        old,
        *recent[:2],
    ]


def test_a_resync_with_nothing_to_poll_asks_nothing(gateway: FakeGateway) -> None:
    message("delivered", None)
    assert services.resync_statuses() == resync.ResyncSummary(total=0)
    assert gateway.requests == []


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"limit": 0}, "limit"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": resync.MAX_CONCURRENCY + 1}, "concurrency"),
    ],
)
def test_bad_arguments_are_refused_before_any_poll(
    gateway: FakeGateway, options: dict[str, int], words: str
) -> None:
    message("accepted", 41)
    with pytest.raises(ValueError, match=words):
        services.resync_statuses(**options)
    assert gateway.requests == []


def test_an_account_no_longer_configured_is_named_before_any_poll(gateway: FakeGateway) -> None:
    message("accepted", 51)
    message("accepted", 52, account="gone")
    with pytest.raises(ImproperlyConfigured, match="account 'gone' cannot be polled"):
        services.resync_statuses()
    with pytest.raises(ImproperlyConfigured, match="gone"):
        services.resync_selection(account="gone")
    assert gateway.requests == []


def test_a_limit_reached_in_one_account_polls_nothing_of_the_next(
    gateway: FakeGateway, settings: Any
) -> None:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        # A second account (polled after "default", in name order) on a gateway nothing listens
        # at: any poll of it would fail.
        "ACCOUNTS": {"zeta": {"API_KEY": "zeta-key", "BASE_URL": "http://127.0.0.1:9/v1"}},
    }
    for n in range(3):
        message("accepted", 61 + n)
        gateway.status(61 + n, 1)
    message("accepted", 71, account="zeta")
    reported: list[resync.Polled] = []
    summary = services.resync_statuses(limit=2, on_polled=reported.append)
    assert [p.error for p in reported] == [None, None]
    assert summary == resync.ResyncSummary(total=2, changed=2, unchanged=0, failed=0)
    assert polled_ids(gateway) == [61, 62]
    assert [p.message.account for p in reported] == ["default", "default"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_command_clears_its_progress_bar_for_a_failure(gateway: FakeGateway) -> None:
    failing = message("accepted", 91)
    gateway.answer({"name": "Internal server error", "code": 2}, 500, path=STATUS_PATH)
    out, err = Terminal(), io.StringIO()
    call_command("whatsapp_resync", stdout=out, stderr=err)
    assert err.getvalue().startswith(f"[1/1] message {failing.pk}: failed: Internal server error")
    assert "\r\033[K" in out.getvalue()  # the bar made way for the failure's line
    assert out.getvalue().endswith("Polled 1: 0 changed, 0 unchanged, 1 failed.\n")


def test_polls_not_taken_are_cancelled_when_the_caller_stops(
    gateway: FakeGateway, wa_client: WhatsAppClient, helper_threads: HelperThreads
) -> None:
    answer = threading.Event()

    def held_answer(request: Request) -> Response:
        answer.wait(LIMIT)  # the first poll stays in flight until the test lets it end
        body = {"message_id": json.loads(request.get_data())["message_id"], "status": 1}
        return Response(json.dumps(body), mimetype="application/json")

    gateway.server.expect_request(STATUS_PATH, method="POST").respond_with_handler(held_answer)
    messages = [message("accepted", 101 + n) for n in range(6)]
    # One polling thread, every poll submitted before the first is handed over.
    polls = resync.poll_statuses(messages, wa_client, 1, ahead=6)
    first, _poll = next(polls)
    assert first == messages[0]
    waiting = [future for _message, future in polls.gi_frame.f_locals["queued"]]
    assert len(waiting) == 5
    helper_threads.start(polls.close)  # the caller stops taking polls
    wait_until(lambda: all(f.cancelled() for f in waiting), what="the waiting polls to cancel")
    answer.set()
    helper_threads.join(what="the poll generator to close")
    assert polled_ids(gateway) == [101]  # only the poll already in flight reached the gateway
