"""A campaign's estimate (SPEC 14): a pure function of the audience left, the rate, the daily
limit and its places taken, the sending hours and the other work of the account; checked against
a run of the real engine with the fake gateway (within 20%, the run's time counted at the gateway
on the limits' shared clock, which the test moves ten minutes at a time), and kept current while
the campaign runs (its measured throughput)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from django_whatsapp import services
from django_whatsapp.campaigns import estimate as estimates
from django_whatsapp.campaigns.estimate import Period, estimate, human_duration
from django_whatsapp.campaigns.hours import SendingHours
from django_whatsapp.models import Campaign

from . import test_faults_campaigns as faults_campaigns
from .clock import SharedClock, install
from .fault_gateway import FaultGateway
from .test_campaigns import framework, run_queue  # noqa: F401 - fixture
from .test_daily_limit import fresh_cache  # noqa: F401 - fixture
from .test_sending_hours import HOURS, MONDAY_EVENING, kyiv, tick_and_run, warsaw

#: The fake gateway over TCP that counts what it gets (tests/fault_gateway.py).
fake = faults_campaigns.fake
KYIV = ZoneInfo("Europe/Kyiv")
DAY_HOURS = SendingHours(time(9), time(20))
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def at_kyiv(day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=KYIV)


# -- the pure function ---------------------------------------------------------------------------


def test_without_limits_it_is_the_audience_at_the_rate() -> None:
    found = estimate(now=NOW, groups=[(None, 1000)], rate=50.0)
    assert found.duration == timedelta(seconds=20)
    assert found.timeline == (Period(NOW, NOW + timedelta(seconds=20), pytest.approx(1000)),)


def test_other_running_work_of_the_account_shares_the_rate() -> None:
    found = estimate(now=NOW, groups=[(None, 1000)], rate=50.0, others=1000)
    assert found.duration == timedelta(seconds=40)


def test_places_already_taken_delay_the_start() -> None:
    frees = NOW + timedelta(hours=1)
    found = estimate(now=NOW, groups=[(None, 50)], rate=50.0, daily_limit=100, taken=[(frees, 100)])
    assert found.timeline[0].start == frees
    assert found.duration == timedelta(hours=1, seconds=1)


def test_beyond_the_horizon_there_is_no_finish_time() -> None:
    found = estimate(now=NOW, groups=[(None, 1000)], rate=50.0, daily_limit=1)
    assert found.finishes_at is None
    assert found.duration is None


def test_the_worked_example_25000_recipients_tier_10000_in_kyiv_and_warsaw() -> None:
    """docs/campaigns.rst's example: 12,500 recipients in Kyiv and 12,500 in Warsaw, 09:00-20:00
    in their own time, DAILY_LIMIT 10,000, RATE_LIMIT 50/s, started on Monday at 20:30 in Kyiv
    (19:30 in Warsaw)."""
    found = estimate(
        now=at_kyiv(2, 20, 30),
        groups=[("Europe/Kyiv", 12_500), ("Europe/Warsaw", 12_500)],
        rate=50.0,
        hours=DAY_HOURS,
        daily_limit=10_000,
    )
    shown = [
        (p.start.astimezone(KYIV), p.end.astimezone(KYIV), round(p.sent)) for p in found.timeline
    ]
    assert shown == [
        # Warsaw only (Kyiv's day is over): the tier's 10,000 in 200 seconds.
        (at_kyiv(2, 20, 30), at_kyiv(2, 20, 33, 20), 10_000),
        # 24 hours after the first places' 10-minute bucket: Warsaw's last 2,500 (Kyiv's
        # hours closed at 20:00).
        (at_kyiv(3, 20, 40), at_kyiv(3, 20, 40, 50), 2_500),
        # Kyiv's morning: the 7,500 places left.
        (at_kyiv(4, 9, 0), at_kyiv(4, 9, 2, 30), 7_500),
        # Thursday: the places of Tuesday evening are free, those of Wednesday morning at 09:10.
        (at_kyiv(5, 9, 0), at_kyiv(5, 9, 0, 50), 2_500),
        (at_kyiv(5, 9, 10), at_kyiv(5, 9, 10, 50), 2_500),
    ]
    assert found.finishes_at == at_kyiv(5, 9, 10, 50)
    assert human_duration(found.duration or timedelta(0)) == "2 days 12 hours"


def test_durations_read_as_an_operator_says_them() -> None:
    assert human_duration(timedelta(seconds=20)) == "under a minute"
    assert human_duration(timedelta(minutes=4, seconds=59)) == "4 minutes"
    assert human_duration(timedelta(hours=3, minutes=20)) == "3 hours 20 minutes"
    assert human_duration(timedelta(days=1, minutes=3)) == "1 day"


# -- against a run ---------------------------------------------------------------------------------


@pytest.fixture
def clock(tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch) -> SharedClock:
    shared = install(tmp_path / "clock", settings, monkeypatch)
    shared.set(MONDAY_EVENING)
    return shared


@pytest.mark.django_db(transaction=True)
def test_the_estimate_is_within_20_percent_of_a_run_of_the_engine(
    settings: Any, fake: FaultGateway, clock: SharedClock, admin_client: Any
) -> None:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "DAILY_LIMIT": 16,
        "RATE_LIMIT": 200,
    }
    audience = [n for pair in zip(kyiv(20), warsaw(20), strict=True) for n in pair]
    campaign = services.create_campaign(
        "Estimated", audience, text="Hi", chunk_size=10, sending_hours=HOURS
    )
    before = services.campaign_estimate(campaign)
    assert (before.remaining, before.rate_source, before.places_left) == (40, "RATE_LIMIT", 16)
    assert before.duration is not None
    start = clock.now()
    services.start_campaign(campaign)
    run_queue(ticks=False)
    last_sent, sent = start, fake.total_accepted()
    assert sent == 16  # Warsaw, up to the tier
    # While it runs, the estimate keeps current: what is left, at the measured throughput.
    during = services.campaign_estimate(campaign)
    assert (during.remaining, during.rate_source) == (24, "measured")
    assert during.places_left == 0
    # The campaign's page polls it: the estimate line is replaced with the current one.
    progress = f"/admin/django_whatsapp/campaign/{campaign.pk}/progress/"
    polled = admin_client.get(progress).json()["estimate_html"]
    assert 'id="wa-campaign-estimate"' in polled
    assert f"Expected: {during.text}" in polled
    # Time passes, ten minutes a step, as the deferred ticks would find it.
    for _step in range(6 * 24 * 5):
        campaign.refresh_from_db()
        if campaign.status == Campaign.Status.DONE:
            break
        clock.advance(timedelta(minutes=10))
        tick_and_run(campaign)
        if fake.total_accepted() > sent:
            last_sent, sent = clock.now(), fake.total_accepted()
    assert campaign.status == Campaign.Status.DONE
    assert "wa-campaign-estimate" not in admin_client.get(progress).json()["estimate_html"]
    accepted = fake.accepted()
    assert len(accepted) == 40
    assert set(accepted.values()) == {1}
    took = last_sent - start
    assert abs(took - before.duration) <= before.duration * 0.2, (took, before.duration)


@pytest.mark.django_db(transaction=True)
def test_without_a_rate_limit_or_a_measure_the_rate_is_assumed(fake: FaultGateway) -> None:
    campaign = services.create_campaign("Guess", kyiv(100), text="Hi")
    found = services.campaign_estimate(campaign)
    assert found.rate_source == "assumed"
    assert found.estimate.rate == estimates.ASSUMED_RATE
    assert found.duration == timedelta(seconds=100 / estimates.ASSUMED_RATE)
    assert found.text.startswith("100 recipients left: under a minute, finishing about ")
    assert "assumed" in found.basis
