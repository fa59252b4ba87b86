"""The daily messaging tier (SPEC 14): ``DAILY_LIMIT`` unique recipients per moving 24 hours per
account, counted in ``RATE_LIMIT_CACHE``; recipients whose own conversation is open, and those
counted in the last 24 hours, take no place; over it a single inline send ends ``not_sent``, a
queued one and a campaign wait for a place to free (never failing the tail); a cache that cannot
be reached fails closed. In process, against a fake gateway over real TCP, with the limits' clock
a shared clock the test moves (tests/clock.py). Across real worker processes:
tests/test_limits_workers.py."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.utils import timezone

from django_whatsapp import checks, services, tier
from django_whatsapp.conf import get_settings
from django_whatsapp.exceptions import RateLimitUnavailable
from django_whatsapp.models import AccountState, Campaign, CampaignChunk, Contact, Message

from . import test_faults_campaigns as faults_campaigns
from .clock import SharedClock, install
from .fault_gateway import FaultGateway
from .test_campaigns import (  # noqa: F401 - fixture
    default_task_backend,
    enqueued,
    framework,
    numbers,
    run_queue,
)
from .test_sending_hours import tick_and_run

pytestmark = pytest.mark.django_db(transaction=True)

#: The fake gateway over TCP that counts what it gets (tests/fault_gateway.py).
fake = faults_campaigns.fake

Status = Message.Status
CStatus = Campaign.Status
NOW = datetime(2026, 3, 2, 12, 3, tzinfo=UTC)


@pytest.fixture
def clock(tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch) -> SharedClock:
    shared = install(tmp_path / "clock", settings, monkeypatch)
    shared.set(NOW)
    return shared


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    """The tier lives in the test process's local-memory cache: each test starts it empty."""
    caches["default"].clear()
    yield
    caches["default"].clear()


def limit(settings: Any, places: int | None, **more: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "DAILY_LIMIT": places, **more}


def run_once() -> list[Any]:
    """Run every task enqueued now, once (a deferred one included), and forget them."""
    results = enqueued()
    default_task_backend.clear()  # type: ignore[attr-defined]
    return [result.task.call(*result.args, **result.kwargs) for result in results]


# -- the count ---------------------------------------------------------------------------------


def test_a_recipient_takes_one_place_for_24_hours_and_those_conversing_take_none(
    settings: Any,
) -> None:
    limit(settings, 3)
    conf = get_settings()
    first = tier.admit(conf, ["1", "2"], NOW)
    assert (first.admitted, first.refused) == ({"1", "2"}, set())
    # "1" was counted already; "3" takes the last place; "4" finds none.
    later = NOW + timedelta(minutes=15)
    second = tier.admit(conf, ["1", "3", "4", "4"], later)
    assert (second.admitted, second.refused) == ({"1", "3"}, {"4"})
    # The first places free 24 hours after the end of their 10-minute bucket.
    frees = datetime(2026, 3, 3, 12, 10, tzinfo=UTC)
    assert second.retry_at == frees
    assert "12:10" in str(second.error())
    # A recipient whose own conversation is open takes no place.
    assert tier.admit(conf, ["5"], later, free={"5"}).admitted == {"5"}
    state = tier.state(conf, later)
    assert (state.used, state.left, state.frees_at) == (3, 0, frees)
    assert tier.admit(conf, ["4"], frees - timedelta(seconds=1)).refused == {"4"}
    # The moving window: at that time "1" and "2" no longer count, "3" still does.
    assert tier.admit(conf, ["4", "6", "7"], frees).admitted == {"4", "6"}
    assert tier.state(conf, frees).used == 3


def test_each_account_has_its_own_tier(settings: Any, fake: FaultGateway) -> None:
    limit(
        settings,
        None,
        ACCOUNTS={"outlet": {"API_KEY": "outlet-key", "BASE_URL": fake.base_url, "DAILY_LIMIT": 1}},
    )
    default, outlet = get_settings(), get_settings("outlet")
    assert outlet.DAILY_LIMIT == 1
    assert tier.admit(outlet, ["1"], NOW).admitted == {"1"}
    assert tier.admit(outlet, ["2"], NOW).refused == {"2"}
    assert tier.admit(default, ["2", "3"], NOW).admitted == {"2", "3"}


def test_the_daily_limit_in_a_one_process_cache_is_warned_about(settings: Any) -> None:
    limit(settings, 1000)
    found = {m.id: m.msg for m in checks.check_settings()}
    assert "DAILY_LIMIT" in found["django_whatsapp.W011"]


class BreakingCache(LocMemCache):
    """A cache whose named operations fail as a cache that went away does (``failing``)."""

    failing: frozenset[str] = frozenset()

    def set_many(self, *args: Any, **kwargs: Any) -> list[str]:
        self._maybe_fail("set_many")
        return super().set_many(*args, **kwargs)

    def decr(self, *args: Any, **kwargs: Any) -> int:
        self._maybe_fail("decr")
        return super().decr(*args, **kwargs)

    def _maybe_fail(self, operation: str) -> None:
        if operation in self.failing:
            raise ConnectionError(f"{operation}: the cache at 10.0.0.9:6379 went away")


@pytest.fixture
def breaking(settings: Any, monkeypatch: pytest.MonkeyPatch) -> type[BreakingCache]:
    settings.CACHES = {
        **settings.CACHES,
        "breaking": {"BACKEND": f"{__name__}.BreakingCache", "LOCATION": "tier-breaking"},
    }
    limit(settings, 5, RATE_LIMIT_CACHE="breaking")
    caches["breaking"].clear()
    monkeypatch.setattr(BreakingCache, "failing", frozenset())
    return BreakingCache


def test_without_a_daily_limit_nothing_is_counted(settings: Any) -> None:
    limit(settings, None)
    conf = get_settings()
    assert tier.admit(conf, ["1", "2"], NOW).admitted == {"1", "2"}
    state = tier.state(conf, NOW)
    assert (state.limit, state.used, state.left, state.frees_at) == (None, 0, None, None)


def test_a_cache_failing_half_way_gives_the_places_it_took_back(
    breaking: type[BreakingCache], monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = get_settings()
    # The places are taken (incremented), then remembering who took them fails.
    monkeypatch.setattr(breaking, "failing", frozenset({"set_many"}))
    with pytest.raises(RateLimitUnavailable) as caught:
        tier.admit(conf, ["1", "2"], NOW)
    assert "(ConnectionError)" in str(caught.value)
    assert "10.0.0.9" not in str(caught.value)  # the cache's address is not repeated
    monkeypatch.setattr(breaking, "failing", frozenset())
    assert tier.state(conf, NOW).used == 0  # nothing was admitted, nothing stays counted
    assert tier.admit(conf, ["1", "2"], NOW).admitted == {"1", "2"}
    assert tier.state(conf, NOW).used == 2


def test_places_the_cache_would_not_take_back_are_logged(
    breaking: type[BreakingCache], monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    conf = get_settings()
    monkeypatch.setattr(breaking, "failing", frozenset({"set_many", "decr"}))
    with pytest.raises(RateLimitUnavailable):
        tier.admit(conf, ["1", "2", "3"], NOW)
    [warning] = [r for r in caplog.records if "not given back" in r.getMessage()]
    assert warning.getMessage() == (
        "WhatsApp daily limit: 3 place(s) not given back (ConnectionError)"
    )
    monkeypatch.setattr(breaking, "failing", frozenset())
    # They stay taken until their bucket leaves the moving 24 hours.
    assert tier.state(conf, NOW).used == 3
    assert tier.state(conf, NOW + timedelta(hours=24, minutes=10)).used == 0


# -- single and queued sends ---------------------------------------------------------------------


def test_an_inline_send_over_the_limit_is_not_sent_unless_the_customer_is_conversing(
    settings: Any, fake: FaultGateway, clock: SharedClock
) -> None:
    limit(settings, 2)
    a, b, c, d = numbers(4)
    assert services.send_text(a, "Hi").status == Status.ACCEPTED
    assert services.send_text(b, "Hi").status == Status.ACCEPTED
    over = services.send_text(c, "Hi")
    assert (over.status, over.error_name) == (Status.NOT_SENT, "Daily limit reached")
    assert "2026-03-03T12:10" in over.error_message
    assert fake.total_accepted() == 2
    assert not fake.refused
    # Within 24 hours, a recipient counted already goes again; so does one who wrote to us.
    assert services.send_text(a, "Again").status == Status.ACCEPTED
    Contact.objects.create(number=d.lstrip("+"), last_inbound_at=NOW - timedelta(hours=2))
    assert services.send_text(d, "Your answer").status == Status.ACCEPTED
    assert fake.total_accepted() == 4
    # Once their conversation is over, they count.
    clock.advance(timedelta(hours=23))
    Contact.objects.filter(number=d.lstrip("+")).update(last_inbound_at=NOW - timedelta(hours=2))
    assert services.send_text(d, "Later").status == Status.NOT_SENT


def test_a_queued_send_over_the_limit_waits_for_a_place_and_goes_then(
    settings: Any, fake: FaultGateway, clock: SharedClock
) -> None:
    limit(settings, 1)
    first = services.send_text("+380500000001", "Hi", enqueue=True)
    waiting = services.send_text("+380500000002", "Hi", enqueue=True)
    assert run_once() == [Status.ACCEPTED, "waiting"]
    waiting.refresh_from_db()
    frees = tier.frees_at(tier.bucket_of(NOW))
    assert (waiting.status, waiting.send_after) == (Status.QUEUED, frees)
    assert waiting.error_name == "Daily limit reached"
    [again] = enqueued()  # the task runs again when the place frees
    assert again.task.run_after > timezone.now() + timedelta(hours=23)
    clock.set(frees - timedelta(minutes=1))
    assert run_once() == ["waiting"]  # run early: it waits on
    clock.set(frees)
    assert run_once() == [Status.ACCEPTED]
    first.refresh_from_db()
    assert first.status == Status.ACCEPTED
    accepted = fake.accepted()
    assert set(accepted.values()) == {1}
    assert len(accepted) == 2


@pytest.fixture
def unreachable_cache(settings: Any) -> None:
    """RATE_LIMIT_CACHE is a Redis at a port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.CACHES = {
        **settings.CACHES,
        "gone": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        },
    }
    limit(settings, 5, RATE_LIMIT_CACHE="gone", OUTAGE_MAX_PAUSE=1)


def test_the_limit_fails_closed_when_its_cache_cannot_be_reached(
    unreachable_cache: None, fake: FaultGateway, clock: SharedClock
) -> None:
    inline = services.send_text("+380500000001", "Hi")
    assert (inline.status, inline.error_name) == (Status.NOT_SENT, "Rate limit unavailable")
    assert "daily limit" in inline.error_message
    queued = services.send_text("+380500000002", "Hi", enqueue=True)
    assert run_once() == ["waiting"]
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED  # it waits; it is not failed
    assert AccountState.objects.get(account="default").waiting_since is not None
    assert fake.total_accepted() == 0
    assert not fake.refused


# -- a campaign ----------------------------------------------------------------------------------


def test_a_campaign_that_reaches_the_limit_waits_for_the_window_to_move_and_goes_on(
    settings: Any, fake: FaultGateway, clock: SharedClock
) -> None:
    limit(settings, 10)
    campaign = services.create_campaign("Tier", numbers(25), text="Hi", chunk_size=10)
    services.start_campaign(campaign)
    run_queue(ticks=False)
    assert fake.total_accepted() == 10
    campaign.refresh_from_db()
    assert campaign.status == CStatus.RUNNING
    assert "not_sent" not in services.campaign_progress(campaign).counts
    frees = tier.frees_at(tier.bucket_of(NOW))
    chunks = CampaignChunk.objects.filter(campaign=campaign)
    assert set(chunks.exclude(state="done").values_list("state", "not_before")) == {
        ("pending", frees)
    }
    # Nothing goes before the places free.
    clock.set(frees - timedelta(minutes=1))
    tick_and_run(campaign)
    assert fake.total_accepted() == 10
    clock.set(frees)
    tick_and_run(campaign)
    assert fake.total_accepted() == 20
    clock.set(tier.frees_at(tier.bucket_of(frees)))
    tick_and_run(campaign)
    campaign.refresh_from_db()
    assert campaign.status == CStatus.DONE
    assert services.campaign_progress(campaign).counts == {Status.ACCEPTED: 25}
    accepted = fake.accepted()
    assert set(accepted) == {int(n.lstrip("+")) for n in numbers(25)}
    assert set(accepted.values()) == {1}


def test_the_estimate_says_so_when_the_limits_cache_cannot_be_read(
    unreachable_cache: None, fake: FaultGateway, clock: SharedClock, admin_client: Any
) -> None:
    campaign = services.create_campaign("Blind", numbers(5), text="Hi")
    found = services.campaign_estimate(campaign)
    assert found.limit_unknown
    assert "DAILY_LIMIT 5 (its cache cannot be read)" in found.basis
    page = admin_client.get(f"/admin/django_whatsapp/campaign/{campaign.pk}/change/")
    assert page.status_code == 200
    assert "5 recipients left" in page.content.decode()


def test_a_campaign_whose_limits_cache_is_gone_waits_and_goes_on_when_it_is_back(
    unreachable_cache: None, settings: Any, fake: FaultGateway, clock: SharedClock
) -> None:
    limit(settings, 50, RATE_LIMIT_CACHE="gone", OUTAGE_MAX_PAUSE=0.5, CAMPAIGN_LEASE=0.5)
    campaign = services.create_campaign("Tier", numbers(6), text="Hi", chunk_size=3)
    services.start_campaign(campaign)
    run_queue(ticks=False)
    # Nothing was sent, and nobody failed: the recipients wait for the cache.
    assert fake.total_accepted() == 0
    campaign.refresh_from_db()
    assert campaign.status == CStatus.RUNNING
    assert set(services.campaign_progress(campaign).counts) <= {Status.QUEUED, Status.DRAFT}
    assert AccountState.objects.get(account="default").waiting_since is not None
    # The cache is back: the campaign goes on from where it was.
    limit(settings, 50, RATE_LIMIT_CACHE="default")
    clock.set(NOW + timedelta(minutes=1))
    tick_and_run(campaign)
    campaign.refresh_from_db()
    assert campaign.status == CStatus.DONE
    assert services.campaign_progress(campaign).counts == {Status.ACCEPTED: 6}
    assert set(fake.accepted().values()) == {1}
