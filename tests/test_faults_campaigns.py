"""Faults of the account and of the system never burn a campaign (SPEC 13), in process: the
engine runs in the test's thread (its requests in a pool of threads), against a fake gateway over
real TCP whose faults the test switches at a chosen message (``message_sending`` runs in the
engine's thread, before the message's request). Real worker processes meet the same faults in
tests/test_faults_workers.py."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.utils import timezone

from django_whatsapp import faults, services, signals
from django_whatsapp.campaigns import engine
from django_whatsapp.exceptions import CampaignNotRunning, InsufficientBalance
from django_whatsapp.models import AccountState, Campaign, CampaignChunk, Message
from django_whatsapp.ratelimit import SharedRateLimit
from django_whatsapp.tasks import send_message_task

from .fault_gateway import FaultGateway
from .redis_server import OwnRedis
from .test_campaigns import enqueued, framework, numbers, run_queue  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True)

Status = Message.Status
CStatus = Campaign.Status


@pytest.fixture
def fake(settings: Any) -> Iterator[FaultGateway]:
    gateway = FaultGateway()
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "BASE_URL": gateway.base_url,
        "MAX_RETRIES": 0,
        "OUTAGE_MAX_PAUSE": 1,
    }
    yield gateway
    gateway.close()


@pytest.fixture
def on_sending() -> Iterator[Callable[[Callable[[int], None]], None]]:
    """Run ``hook(n)`` as the n-th message (from 1) is about to be requested."""
    hooks: list[Any] = []

    def install(hook: Callable[[int], None]) -> None:
        count = [0]

        def receiver(sender: Any, message: Message, **kwargs: Any) -> None:
            count[0] += 1
            hook(count[0])

        hooks.append(receiver)
        signals.message_sending.connect(receiver, weak=False)

    yield install
    for receiver in hooks:
        signals.message_sending.disconnect(receiver)


def one_chunk_campaign(count: int, **kwargs: Any) -> tuple[Campaign, CampaignChunk]:
    campaign = services.create_campaign("Faults", numbers(count), text="Hi", chunk_size=count)
    services.start_campaign(campaign)
    return campaign, CampaignChunk.objects.get(campaign=campaign)


def statuses(campaign: Campaign) -> dict[str, int]:
    return services.campaign_progress(campaign).counts


def every_recipient_accepted_once(fake: FaultGateway, count: int, *others: str) -> None:
    accepted = fake.accepted()
    assert set(accepted) == {int(n.lstrip("+")) for n in [*numbers(count), *others]}
    assert set(accepted.values()) == {1}


# -- the account's faults pause ----------------------------------------------------------------


def test_an_empty_balance_pauses_the_campaign_and_resume_after_the_top_up_sends_everyone(
    fake: FaultGateway, caplog: pytest.LogCaptureFixture
) -> None:
    paused: list[str] = []
    signals.campaign_paused.connect(
        lambda sender, campaign, reason, **kw: paused.append(reason), weak=False
    )
    fake.balance = 5
    campaign = services.create_campaign("Balance", numbers(30), text="Hi", chunk_size=10)
    with caplog.at_level(logging.WARNING, logger="django_whatsapp"):
        services.start_campaign(campaign)
        run_queue()
    campaign.refresh_from_db()
    assert campaign.status == CStatus.PAUSED
    assert "balance" in campaign.pause_reason
    assert len(paused) == 1
    assert paused[0] == campaign.pause_reason
    # Nobody was failed: five accepted; those refused for the balance are queued again; the
    # others were never claimed.
    counts = statuses(campaign)
    assert counts[Status.ACCEPTED] == 5
    assert counts[Status.QUEUED] == fake.refused["balance"]
    assert set(counts) == {Status.ACCEPTED, Status.QUEUED, Status.DRAFT}
    # Requests wasted on the fault: at most the requests in flight.
    assert 1 <= fake.refused["balance"] <= engine.CONCURRENCY
    refused = fake.refused["balance"]
    # A queued send of the same account meanwhile is held: its task asks the gateway nothing.
    queued = services.send_text("+380990000001", "Your code", enqueue=True)
    assert run_queue() == ["held"]
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED
    assert fake.refused["balance"] == refused
    assert sum("is held" in r.getMessage() for r in caplog.records) == 1
    # The operator tops up and resumes: everyone is sent, exactly once.
    fake.top_up()
    services.resume_campaign(campaign)
    run_queue()
    campaign.refresh_from_db()
    assert (campaign.status, campaign.pause_reason) == (CStatus.DONE, "")
    assert statuses(campaign) == {Status.ACCEPTED: 30}
    every_recipient_accepted_once(fake, 30, "+380990000001")
    queued.refresh_from_db()
    assert queued.status == Status.ACCEPTED  # released with the account
    assert not faults.is_held("default")


def test_a_campaign_started_while_its_account_is_held_is_paused_without_a_request(
    fake: FaultGateway,
) -> None:
    faults.hold("default", InsufficientBalance())
    campaign = services.create_campaign("Held", numbers(3), text="Hi")
    services.start_campaign(campaign)
    run_queue()
    campaign.refresh_from_db()
    assert campaign.status == CStatus.PAUSED
    assert "balance" in campaign.pause_reason
    assert fake.total_accepted() == 0
    assert fake.refused == {}
    assert statuses(campaign) == {Status.DRAFT: 3}


@pytest.mark.parametrize("refusal", ["balance", "auth"])
def test_a_single_inline_send_still_fails_at_once_with_its_typed_error(
    fake: FaultGateway, refusal: str
) -> None:
    running = Campaign.objects.create(name="R", text="Hi", status=CStatus.RUNNING)
    fake.refuse = refusal
    message = services.send_text("+380501112233", "Hi")
    assert message.status == Status.NOT_SENT
    assert message.error_name in ("Topup balance is required", "Unauthorized")
    # The account is held all the same, and its running campaign paused.
    running.refresh_from_db()
    assert running.status == CStatus.PAUSED
    assert faults.is_held("default")


# -- the system's faults wait ------------------------------------------------------------------


def test_the_gateway_down_mid_campaign_makes_it_wait_and_go_on_by_itself(
    fake: FaultGateway, on_sending: Any, caplog: pytest.LogCaptureFixture
) -> None:
    seen_down: list[int] = []

    def outage(n: int) -> None:
        if n == 6:
            fake.stop()  # message 6's request meets a closed port
        elif fake.up is False:
            seen_down.append(n)
            if len(seen_down) == 2:  # the second try after the outage began
                fake.start()

    on_sending(outage)
    campaign, chunk = one_chunk_campaign(12)
    with caplog.at_level(logging.WARNING, logger="django_whatsapp"):
        run = engine.run_chunk(chunk.pk, concurrency=1)
    assert run.outcome == "done"
    assert statuses(campaign) == {Status.ACCEPTED: 12}
    every_recipient_accepted_once(fake, 12)
    row = AccountState.objects.get(account="default")
    assert row.waiting_since is None  # closed again
    messages = [r.getMessage() for r in caplog.records]
    assert sum("sends wait" in m for m in messages) == 1, messages
    assert sum("answers again" in m for m in messages) == 1, messages
    assert not any("was not sent" in m for m in messages)  # never once per message


def test_an_unreachable_rate_limit_cache_sends_nothing_over_the_limit_and_loses_nothing(
    fake: FaultGateway, on_sending: Any, settings: Any, tmp_path: Path
) -> None:
    redis = OwnRedis(tmp_path)
    settings.CACHES = {
        **settings.CACHES,
        "ratelimit": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis.url,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        },
    }
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "RATE_LIMIT": 1000,
        "RATE_LIMIT_CACHE": "ratelimit",
    }
    accepted_at_stop: list[int] = []
    tries: list[int] = []

    def outage(n: int) -> None:
        if n == 4:
            redis.stop()
            accepted_at_stop.append(fake.total_accepted())
        elif not redis.running:
            tries.append(n)
            # Nothing reached the gateway while the cache was down.
            assert fake.total_accepted() == accepted_at_stop[0]
            if len(tries) == 2:
                redis.start()

    on_sending(outage)
    try:
        campaign, chunk = one_chunk_campaign(10)
        run = engine.run_chunk(chunk.pk, concurrency=1)
    finally:
        redis.stop()
    assert run.outcome == "done"
    assert accepted_at_stop == [3]
    assert statuses(campaign) == {Status.ACCEPTED: 10}
    every_recipient_accepted_once(fake, 10)
    assert fake.refused == {}


def test_a_single_send_with_the_rate_limit_cache_down_is_not_sent_with_a_clear_error(
    fake: FaultGateway, settings: Any
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.CACHES = {
        **settings.CACHES,
        "ratelimit": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
        },
    }
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "RATE_LIMIT": 10,
        "RATE_LIMIT_CACHE": "ratelimit",
    }
    message = services.send_text("+380501112233", "Hi")
    assert message.status == Status.NOT_SENT
    assert message.error_name == "Rate limit unavailable"
    assert "nothing was sent" in message.error_message
    assert fake.total_accepted() == 0


def test_a_queued_send_waits_for_the_gateway_and_one_task_tries_when_the_pause_is_over(
    fake: FaultGateway,
) -> None:
    first = services.send_text("+380990000001", "One", enqueue=True)
    second = services.send_text("+380990000002", "Two", enqueue=True)
    fake.stop()
    assert send_message_task.call(first.pk) == "waiting"
    first.refresh_from_db()
    assert first.status == Status.QUEUED  # not failed: the system's fault
    assert "connect" in first.error_message.lower()
    row = AccountState.objects.get()
    assert row.waiting_since is not None
    # While the pause holds, another task does not even try.
    assert send_message_task.call(second.pk) == "waiting"
    assert AccountState.objects.get().failures == 1
    # The pause is over (the clock moves on) and the gateway is back: the next task tries.
    fake.start()
    AccountState.objects.update(next_try_at=timezone.now() - timedelta(seconds=1))
    assert send_message_task.call(second.pk) == Status.ACCEPTED
    assert AccountState.objects.get().waiting_since is None
    assert send_message_task.call(first.pk) == Status.ACCEPTED
    # Each waiting task asked to run again later.
    later = [r for r in enqueued() if r.task.name == "send_message_task"]
    assert len(later) >= 2


# -- the engine owns its messages --------------------------------------------------------------


def test_a_campaigns_message_is_sent_only_by_its_running_campaign(fake: FaultGateway) -> None:
    campaign = services.create_campaign("Owned", numbers(2), text="Hi")
    draft = Message.objects.filter(campaign=campaign).first()
    assert draft is not None
    with pytest.raises(CampaignNotRunning, match="Owned"):
        services.send_message(draft)
    with pytest.raises(CampaignNotRunning):
        services.enqueue_message(draft)
    draft.refresh_from_db()
    assert draft.status == Status.DRAFT
    assert fake.total_accepted() == 0
    # A message that was not sent, in a campaign that is done, cannot be retried alone either.
    Message.objects.filter(pk=draft.pk).update(status=Status.NOT_SENT)
    Campaign.objects.filter(pk=campaign.pk).update(status=CStatus.DONE)
    draft.refresh_from_db()
    with pytest.raises(CampaignNotRunning):
        services.retry_message(draft)
    draft.refresh_from_db()
    assert draft.status == Status.NOT_SENT


def test_cancel_during_a_429_storm_leaves_nothing_queued(
    fake: FaultGateway, on_sending: Any
) -> None:
    fake.refuse = "rate"
    campaign = services.create_campaign("Storm", numbers(10), text="Hi", chunk_size=10)
    services.start_campaign(campaign)

    def cancel(n: int) -> None:
        if n == 4:  # an operator cancels while requests wait on the rate limit
            services.cancel_campaign(Campaign.objects.get(pk=campaign.pk))

    on_sending(cancel)
    chunk = CampaignChunk.objects.get(campaign=campaign)
    run = engine.run_chunk(chunk.pk, concurrency=4)
    assert run.outcome == "stopped"
    assert fake.refused["rate"] >= 4
    counts = statuses(campaign)
    assert counts == {Status.NOT_SENT: 10}
    assert set(Message.objects.filter(campaign=campaign).values_list("error_name", flat=True)) == {
        "Campaign cancelled"
    }


def test_starting_a_scheduled_campaign_again_sends_it_now(fake: FaultGateway) -> None:
    later = timezone.now() + timedelta(hours=3)
    campaign = services.create_campaign("Later", numbers(3), text="Hi", send_at=later)
    services.start_campaign(campaign)
    assert campaign.status == CStatus.SCHEDULED
    services.start_campaign(campaign)
    assert campaign.status == CStatus.RUNNING
    run_queue(ticks=False)
    assert statuses(campaign) == {Status.ACCEPTED: 3}


# -- nothing sticks ----------------------------------------------------------------------------


def test_any_gateway_answer_is_stored_escaped_and_nothing_stays_sending(
    fake: FaultGateway,
) -> None:
    fake.refuse = "hostile"
    campaign = services.create_campaign("Hostile", numbers(3), text="Hi")
    services.start_campaign(campaign)
    run_queue()
    campaign.refresh_from_db()
    assert campaign.status == CStatus.DONE
    assert statuses(campaign) == {Status.NOT_SENT: 3}
    message = Message.objects.filter(campaign=campaign).first()
    assert message is not None
    assert message.error_name == "Bad\\x00name \\ud800"
    assert message.error_message == "nul\\x00 and \\udfff lone"
    event = message.events.get()
    assert event.payload["name"] == "Bad\\x00name \\ud800"
    single = services.send_text("+380501112233", "Hi")
    assert single.status == Status.NOT_SENT
    assert single.error_code == 42


# -- the rate limit --------------------------------------------------------------------------


def test_a_shorter_429_pause_never_cuts_a_longer_shared_one() -> None:
    cache = caches["default"]
    now = [1000.0]
    one = SharedRateLimit(100, cache, prefix="pauses", wall_clock=lambda: now[0])
    two = SharedRateLimit(100, cache, prefix="pauses", wall_clock=lambda: now[0])
    assert one.pause(30.0, 0)  # a 429 with Retry-After: 30 in one process
    assert two.pause(1.0, 0)  # then one with Retry-After: 1 in another
    assert cache.get(one.pause_key) == 1030.0
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # the fake clock moves on as the gate sleeps
        slept.append(seconds)
        now[0] += seconds

    now[0] = 1010.0
    two.wait(sleep)
    two.release()
    # It waited for the longer pause (its own 1-second pause counted in): until 1030.
    assert now[0] == pytest.approx(1030.0)


def test_the_shared_limit_keeps_a_running_campaigns_rate_limited_requests_trying(
    fake: FaultGateway, settings: Any
) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "RATE_LIMIT": 1000}
    # More 429s than MAX_RETRIES (0 here) and the default retries (10), then acceptance.
    fake.refuse, fake.refuse_left = "rate", 15
    campaign, chunk = one_chunk_campaign(1)
    run = engine.run_chunk(chunk.pk, concurrency=1)
    assert run.outcome == "done"
    # It waited at the gate all along: never given back, never taken for an outage.
    assert run.requeued == 0
    assert not AccountState.objects.exists()
    assert statuses(campaign) == {Status.ACCEPTED: 1}
    assert fake.refused["rate"] == 15
    assert Message.objects.get().attempts == 16


# -- a Redis of the test's own -----------------------------------------------------------------


def test_the_message_lists_send_drafts_leaves_a_campaigns_drafts_to_their_campaign(
    fake: FaultGateway, admin_client: Any
) -> None:
    from django.urls import reverse

    campaign = services.create_campaign("Drafted", numbers(2), text="Hi")
    ids = list(Message.objects.filter(campaign=campaign).values_list("pk", flat=True))
    response = admin_client.post(
        reverse("admin:django_whatsapp_message_changelist"),
        {"action": "send_drafts", "index": 0, "_selected_action": ids, "post": "yes"},
        follow=True,
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Drafted" in page
    assert "only the running campaign sends its messages" in page
    assert statuses(campaign) == {Status.DRAFT: 2}
    assert fake.total_accepted() == 0


# -- inline bulk sends -------------------------------------------------------------------------


def test_an_inline_bulk_send_stops_at_an_empty_balance_and_requests_no_more(
    fake: FaultGateway,
) -> None:
    fake.balance = 3
    result = services.send_bulk(numbers(40), text="Hi", concurrency=2)
    assert isinstance(result.stopped_by, InsufficientBalance)
    counts = result.counts
    assert counts[Status.ACCEPTED] == 3
    assert counts[Status.NOT_SENT] == 37
    # Only the requests in flight met the empty balance; the rest were never requested.
    assert 1 <= fake.refused["balance"] <= 4
    not_requested = Message.objects.filter(error_name="Not requested")
    assert not_requested.count() == 37 - fake.refused["balance"]
    assert "balance" in not_requested.first().error_message  # type: ignore[union-attr]
    assert faults.is_held("default")


# -- a fault while recording -------------------------------------------------------------------


def test_a_message_whose_outcome_cannot_be_recorded_never_stays_sending(
    fake: FaultGateway, caplog: pytest.LogCaptureFixture
) -> None:
    from django.db import DatabaseError, connection
    from django.db.models.signals import pre_save

    from django_whatsapp.models import StatusEvent

    if connection.vendor == "postgresql":
        pytest.skip(
            "on PostgreSQL the outcome is recorded by one statement (no pre_save to break): the "
            "hostile answers above cover that path"
        )

    def broken(sender: Any, instance: StatusEvent, **kwargs: Any) -> None:
        raise DatabaseError("the disk is full")

    fake.refuse = "server"
    pre_save.connect(broken, sender=StatusEvent, weak=False)
    try:
        with caplog.at_level(logging.ERROR, logger="django_whatsapp"):
            message = services.send_text("+380501112233", "Hi")
    finally:
        pre_save.disconnect(broken, sender=StatusEvent)
    message.refresh_from_db()
    assert message.status == Status.NOT_SENT
    assert message.error_name == "Outcome not recorded"
    assert "the disk is full" in message.error_message
    assert f"message {message.pk}" in caplog.text


def test_a_long_outage_gives_the_chunk_back_to_the_tick_instead_of_holding_the_worker(
    fake: FaultGateway, settings: Any
) -> None:
    # A lease of two seconds: the worker waits that long for the gateway, then lets go.
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CAMPAIGN_LEASE": 2}
    fake.stop()
    campaign, chunk = one_chunk_campaign(5)
    run = engine.run_chunk(chunk.pk, concurrency=1)
    assert run.outcome == "outage"
    chunk.refresh_from_db()
    assert (chunk.state, chunk.queued_at, chunk.lease_token) == (
        CampaignChunk.State.PENDING,
        None,
        "",
    )
    counts = statuses(campaign)
    assert set(counts) <= {Status.DRAFT, Status.QUEUED}  # nobody burned
    assert AccountState.objects.get().waiting_since is not None
    # The gateway is back: the tick hands the chunk out again and it is sent.
    fake.start()
    AccountState.objects.update(next_try_at=timezone.now() - timedelta(seconds=1))
    assert engine.tick(campaign.pk).chunk_ids == [chunk.pk]
    assert engine.run_chunk(chunk.pk, concurrency=1).outcome == "done"
    assert statuses(campaign) == {Status.ACCEPTED: 5}
