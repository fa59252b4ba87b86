"""A campaign's sending hours in each recipient's own time (SPEC 14): the zone from the number
(a setting for a country with several, a default when none is known); recipients outside their
hours wait for their morning while the campaign sends the others; progress, the command and the
campaign's page say how many wait. The engine runs in process against a fake gateway over real
TCP, with the limits' clock a shared clock the test moves (tests/clock.py). Real worker processes:
tests/test_limits_workers.py."""

from __future__ import annotations

import io
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from django_whatsapp import services, tasks
from django_whatsapp.campaigns import engine, hours
from django_whatsapp.conf import get_settings
from django_whatsapp.models import Campaign, CampaignChunk, Message

from . import test_faults_campaigns as faults_campaigns
from .clock import SharedClock, install
from .fault_gateway import FaultGateway
from .test_campaigns import framework, run_queue  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True)

#: The fake gateway over TCP that counts what it gets (tests/fault_gateway.py).
fake = faults_campaigns.fake

Status = Message.Status
CStatus = Campaign.Status
#: 20:30 in Kyiv (UTC+2 in March), 19:30 in Warsaw (UTC+1): Kyiv's hours are over, Warsaw's not.
MONDAY_EVENING = datetime(2026, 3, 2, 18, 30, tzinfo=UTC)
#: 09:00 in Kyiv the next morning.
KYIV_MORNING = datetime(2026, 3, 3, 7, 0, tzinfo=UTC)
HOURS = ("09:00", "20:00")


def kyiv(count: int) -> list[str]:
    return [f"+38050{n:07d}" for n in range(count)]


def warsaw(count: int) -> list[str]:
    return [f"+48600{n:06d}" for n in range(count)]


def mixed(count: int) -> list[str]:
    """``count`` Kyiv and ``count`` Warsaw numbers, one of each in turn (so every chunk holds
    both)."""
    return [n for pair in zip(kyiv(count), warsaw(count), strict=True) for n in pair]


def digits(numbers: list[str]) -> set[int]:
    return {int(n.lstrip("+")) for n in numbers}


@pytest.fixture
def clock(tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch) -> SharedClock:
    shared = install(tmp_path / "clock", settings, monkeypatch)
    shared.set(MONDAY_EVENING)
    return shared


def tick_and_run(campaign: Campaign) -> None:
    """What the campaign's next tick does (as the deferred tick would), and the chunk tasks it
    hands out, run as a worker would."""
    tasks.campaign_tick.call(campaign.pk)
    run_queue(ticks=False)


# -- the hours and the zones ---------------------------------------------------------------------


def test_sending_hours_are_read_from_times_or_text_and_may_cross_midnight() -> None:
    assert hours.clean(None) is None
    day = hours.clean(("09:00", time(20, 0)))
    assert day == hours.SendingHours(time(9), time(20))
    assert day is not None
    assert str(day) == "09:00-20:00"
    assert [day.contains(time(h, m)) for h, m in ((9, 0), (19, 59), (20, 0), (8, 59))] == [
        True,
        True,
        False,
        False,
    ]
    night = hours.clean(["20:00", "02:00"])
    assert night is not None
    assert [night.contains(time(h, m)) for h, m in ((23, 30), (1, 0), (2, 0))] == [
        True,
        True,
        False,
    ]
    kyiv_zone = ZoneInfo("Europe/Kyiv")
    # 20:30 in Kyiv: the day hours open at 09:00 tomorrow; the night hours are open.
    assert day.next_opening(MONDAY_EVENING, kyiv_zone) == KYIV_MORNING
    assert night.next_opening(MONDAY_EVENING, kyiv_zone) is None


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("09:00-20:00", "as a pair"),
        (("09:00",), "as a pair"),
        (("9", "20:00"), "not a time of day"),
        (("09:00", "24:00"), "not a time of day"),
        (("09:60", "20:00"), "not a time of day"),
        ((9, 20), "not a time of day"),
        (("09:00", "09:00"), "must not start where they end"),
    ],
)
def test_bad_sending_hours_are_a_validation_error_and_store_nothing(
    fake: FaultGateway, given: Any, problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem) as raised:
        services.create_campaign("Hours", kyiv(2), text="Hi", sending_hours=given)
    assert "sending_hours" in raised.value.message_dict
    assert Campaign.objects.count() == 0
    assert Message.objects.count() == 0


def test_the_zone_is_the_numbers_own_else_the_countrys_setting_else_the_default(
    settings: Any,
) -> None:
    conf = get_settings()
    assert hours.zone_name("380501234567", conf) == "Europe/Kyiv"
    assert hours.zone_name("48601234567", conf) == "Europe/Warsaw"
    # The US by area code: New York and San Francisco.
    assert hours.zone_name("12125550100", conf) == "America/New_York"
    assert hours.zone_name("14155550100", conf) == "America/Los_Angeles"
    # A Russian mobile number has many zones: the setting chooses, else the default, else
    # the project's TIME_ZONE.
    settings.TIME_ZONE = "UTC"
    assert hours.zone_name("79161234567", get_settings()) == "UTC"
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "RECIPIENT_DEFAULT_TIME_ZONE": "Europe/Berlin",
    }
    assert hours.zone_name("79161234567", get_settings()) == "Europe/Berlin"
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "RECIPIENT_TIME_ZONES": {"ru": "Europe/Moscow"},
    }
    assert hours.zone_name("79161234567", get_settings()) == "Europe/Moscow"
    # A number's own single zone is not overridden by its country's setting.
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "RECIPIENT_TIME_ZONES": {"US": "America/New_York"},
    }
    assert hours.zone_name("14155550100", get_settings()) == "America/Los_Angeles"
    assert hours.zone_name("18005550100", get_settings()) == "America/New_York"  # toll-free


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("RECIPIENT_TIME_ZONES", {"XX": "Europe/Kyiv"}, "country codes"),
        ("RECIPIENT_TIME_ZONES", {"UA": "Mars/Olympus"}, "time zone"),
        ("RECIPIENT_TIME_ZONES", ["UA"], "must be a dict"),
        ("RECIPIENT_DEFAULT_TIME_ZONE", "Nowhere/Else", "time zone"),
        ("DAILY_LIMIT", 0, "at least 1"),
        ("DAILY_LIMIT", 10.5, "whole number"),
        ("DAILY_LIMIT", True, "whole number"),
        ("CLOCK", "now", "dotted path"),
    ],
)
def test_the_limits_settings_are_checked(settings: Any, key: str, value: Any, problem: str) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, key: value}
    with pytest.raises(ImproperlyConfigured, match=problem):
        get_settings()


# -- a campaign ----------------------------------------------------------------------------------


def test_recipients_outside_their_hours_wait_for_their_morning_while_the_others_are_sent(
    fake: FaultGateway, clock: SharedClock, admin_client: Client
) -> None:
    campaign = services.create_campaign(
        "Evening", mixed(6), text="Hi", chunk_size=4, sending_hours=HOURS
    )
    assert (campaign.sending_hours_start, campaign.sending_hours_end) == (time(9), time(20))
    services.start_campaign(campaign)
    run_queue(ticks=False)
    # Warsaw (19:30) is sent; Kyiv (20:30) waits for 09:00.
    assert set(fake.accepted()) == digits(warsaw(6))
    campaign.refresh_from_db()
    assert campaign.status == CStatus.RUNNING
    progress = services.campaign_progress(campaign)
    assert progress.counts == {Status.ACCEPTED: 6, Status.QUEUED: 6}
    assert progress.waiting_for_hours == 6
    waiting = Message.objects.filter(campaign=campaign, status=Status.QUEUED)
    assert set(waiting.values_list("send_after", flat=True)) == {KYIV_MORNING}
    assert set(waiting.values_list("error_name", flat=True)) == {"Outside sending hours"}
    chunks = CampaignChunk.objects.filter(campaign=campaign)
    assert set(chunks.values_list("state", "not_before")) == {("pending", KYIV_MORNING)}
    # What the operator sees: the command and the campaign's page.
    out = io.StringIO()
    call_command("whatsapp_campaign", "status", str(campaign.pk), stdout=out)
    assert "waiting for their sending hours: 6" in out.getvalue()
    assert "6 recipients left" in out.getvalue()
    assert "sending hours 09:00-20:00, 6 waiting for them" in out.getvalue()
    page = admin_client.get(f"/admin/django_whatsapp/campaign/{campaign.pk}/change/")
    assert 'id="wa-campaign-estimate"' in page.content.decode()
    assert "6 recipients left" in page.content.decode()
    # A tick before the morning hands nothing out.
    clock.set(KYIV_MORNING - timedelta(minutes=1))
    assert engine.tick(campaign.pk).chunk_ids == []
    tick_and_run(campaign)
    assert fake.total_accepted() == 6
    # 09:00 in Kyiv: the rest go, and the campaign is done.
    clock.set(KYIV_MORNING)
    tick_and_run(campaign)
    campaign.refresh_from_db()
    assert campaign.status == CStatus.DONE
    accepted = fake.accepted()
    assert set(accepted) == digits(mixed(6))
    assert set(accepted.values()) == {1}
    assert services.campaign_progress(campaign).waiting_for_hours == 0


def test_recipients_waiting_for_their_hours_past_the_campaigns_expiry_are_swept(
    fake: FaultGateway, clock: SharedClock
) -> None:
    campaign = services.create_campaign(
        "Tonight only",
        kyiv(4),
        text="Hi",
        sending_hours=HOURS,
        expires_at=MONDAY_EVENING + timedelta(hours=6),
    )
    services.start_campaign(campaign)
    run_queue(ticks=False)
    assert services.campaign_progress(campaign).waiting_for_hours == 4
    clock.set(MONDAY_EVENING + timedelta(hours=7))  # 03:30 in Kyiv: expired before the morning
    plan = engine.tick(campaign.pk)
    assert plan.chunk_ids == []
    campaign.refresh_from_db()
    assert campaign.status == CStatus.DONE
    assert set(Message.objects.values_list("status", "error_name")) == {
        (Status.NOT_SENT, "Expired")
    }
    assert fake.total_accepted() == 0
    assert not fake.refused


def test_a_pause_and_resume_while_recipients_wait_hands_their_chunks_out_and_they_wait_on(
    fake: FaultGateway, clock: SharedClock
) -> None:
    campaign = services.create_campaign(
        "Paused", kyiv(6), text="Hi", chunk_size=3, sending_hours=HOURS
    )
    services.start_campaign(campaign)
    run_queue(ticks=False)
    services.pause_campaign(campaign)
    services.resume_campaign(campaign)
    chunks = CampaignChunk.objects.filter(campaign=campaign)
    # Resumed, every pending chunk is handed out at once (its recipients are looked at again).
    assert set(chunks.values_list("state", "not_before")) == {("pending", None)}
    assert chunks.filter(queued_at__isnull=False).count() == 2
    run_queue(ticks=False)
    assert set(chunks.values_list("state", "not_before")) == {("pending", KYIV_MORNING)}
    assert services.campaign_progress(campaign).waiting_for_hours == 6
    assert fake.total_accepted() == 0
    assert not fake.refused


def test_a_dead_workers_chunk_is_taken_over_while_other_chunks_wait_for_their_hours(
    fake: FaultGateway, clock: SharedClock
) -> None:
    campaign = services.create_campaign(
        "Dead", kyiv(6), text="Hi", chunk_size=3, sending_hours=HOURS
    )
    services.start_campaign(campaign)
    run_queue(ticks=False)
    first, second = CampaignChunk.objects.filter(campaign=campaign).order_by("first_id")
    # The first chunk's worker died holding it; the second waits for Kyiv's morning.
    CampaignChunk.objects.filter(pk=first.pk).update(
        state="leased", lease_token="1-dead", leased_until=timezone.now() - timedelta(seconds=1)
    )
    taken = engine.wait_for_a_dead_lease(campaign.pk, sleep=lambda seconds: None)
    assert taken == [first.pk]
    second.refresh_from_db()
    assert (second.state, second.not_before) == ("pending", KYIV_MORNING)


def test_the_command_creates_a_campaign_with_sending_hours_and_an_expiry(
    fake: FaultGateway, clock: SharedClock, tmp_path: Path
) -> None:
    audience = tmp_path / "audience.csv"
    audience.write_text("number\n+380500000001\n+48600000001\n")
    out = io.StringIO()
    call_command(
        "whatsapp_campaign",
        "create",
        "--name",
        "Evening",
        "--text",
        "Hi",
        "--csv",
        str(audience),
        "--sending-hours",
        "09:00-20:00",
        "--expires-at",
        "2026-03-03T12:00+00:00",
        stdout=out,
    )
    campaign = Campaign.objects.get()
    assert (campaign.sending_hours_start, campaign.sending_hours_end) == (time(9), time(20))
    assert campaign.expires_at == datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
    status = io.StringIO()
    call_command("whatsapp_campaign", "status", str(campaign.pk), stdout=status)
    assert "expires at: 2026-03-03T12:00:00+00:00" in status.getvalue()
    assert "2 recipients left" in status.getvalue()
    for hours_given in ("09:00", "9-20"):
        with pytest.raises(CommandError, match=r"HH:MM|time of day"):
            call_command(
                "whatsapp_campaign",
                "create",
                "--name",
                "Bad",
                "--text",
                "Hi",
                "--csv",
                str(audience),
                "--sending-hours",
                hours_given,
                stdout=io.StringIO(),
            )
    assert Campaign.objects.count() == 1
