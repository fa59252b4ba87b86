"""A message's expiry (SPEC 14): ``expires_at=`` / ``expires_in=`` on every send service, bulk and
campaigns; a message not requested by then ends ``not_sent`` with ``MessageExpired``, never sent
late, whatever held it back (the queue, a held account, a paused campaign). The limits' clock is
a shared clock (tests/clock.py) the test moves; the gateway is a fake over real TCP that counts
every request it gets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from django_whatsapp import faults, services
from django_whatsapp.exceptions import DailyLimitReached, InsufficientBalance, MessageExpired
from django_whatsapp.faults import Fault
from django_whatsapp.models import Campaign, Message, StatusEvent, Template

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

pytestmark = pytest.mark.django_db(transaction=True)

#: The fake gateway over TCP that counts what it gets (tests/fault_gateway.py).
fake = faults_campaigns.fake

Status = Message.Status
CStatus = Campaign.Status
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
TO = "+380501112233"
IMAGE = "https://cdn.example.com/img/sale.png"


@pytest.fixture
def clock(tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch) -> SharedClock:
    shared = install(tmp_path / "clock", settings, monkeypatch)
    shared.set(NOW)
    return shared


def send(kind: str, template: Template, to: str = TO, **kwargs: Any) -> Message:
    if kind == "text":
        return services.send_text(to, "Your code is 1234", **kwargs)
    if kind == "media":
        return services.send_media(to, IMAGE, "Sale", **kwargs)
    return services.send_template(to, template, ["Ann", "A-1"], IMAGE, **kwargs)


def run_once() -> list[Any]:
    """Run every task enqueued now, once (a deferred one included), and forget them."""
    results = enqueued()
    default_task_backend.clear()  # type: ignore[attr-defined]
    return [result.task.call(*result.args, **result.kwargs) for result in results]


def nothing_requested(gateway: FaultGateway) -> bool:
    return gateway.total_accepted() == 0 and not gateway.refused


# -- what callers pass -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ({"expires_at": datetime(2026, 3, 2, 13, 0)}, "no time zone"),  # naive
        ({"expires_at": NOW, "expires_in": timedelta(hours=1)}, "not both"),
        ({"expires_in": timedelta(0)}, "longer than zero"),
        ({"expires_in": -timedelta(minutes=1)}, "longer than zero"),
        ({"expires_in": 3600}, "longer than zero"),
        ({"expires_at": "2026-03-02T13:00:00+00:00"}, "must be a datetime"),
    ],
)
def test_a_bad_expiry_is_a_validation_error_on_every_path_and_stores_nothing(
    fake: FaultGateway, template: Template, given: dict[str, Any], problem: str
) -> None:
    for kind in ("text", "media", "template"):
        with pytest.raises(ValidationError, match=problem) as raised:
            send(kind, template, **given)
        assert "expires_at" in raised.value.message_dict
    with pytest.raises(ValidationError, match=problem):
        services.send_bulk(numbers(3), text="Hi", **given)
    with pytest.raises(ValidationError, match=problem):
        services.create_campaign("Sale", numbers(3), text="Hi", **given)
    assert Message.objects.count() == 0
    assert Campaign.objects.count() == 0
    assert nothing_requested(fake)


def test_the_fault_of_an_expired_message_is_its_own_and_the_daily_limit_waits() -> None:
    assert faults.classify(MessageExpired()) is Fault.MESSAGE
    assert faults.classify(DailyLimitReached()) is Fault.LIMIT
    assert not Fault.LIMIT.is_final


# -- single sends ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["text", "media", "template"])
def test_an_expired_message_ends_not_sent_and_nothing_is_requested(
    fake: FaultGateway, clock: SharedClock, template: Template, kind: str
) -> None:
    message = send(kind, template, expires_at=NOW - timedelta(seconds=1))
    assert message.status == Status.NOT_SENT
    assert message.error_name == "Expired"
    assert "expired" in message.error_message
    assert message.submitted_at is None
    event = StatusEvent.objects.get(message=message)
    assert event.payload["exception"] == "MessageExpired"
    assert nothing_requested(fake)


@pytest.mark.parametrize("kind", ["text", "media", "template"])
def test_a_message_within_its_expiry_is_sent_and_keeps_it(
    fake: FaultGateway, clock: SharedClock, template: Template, kind: str
) -> None:
    message = send(kind, template, expires_in=timedelta(minutes=10))
    assert message.status == Status.ACCEPTED
    assert message.expires_at == NOW + timedelta(minutes=10)
    Message.objects.get(pk=message.pk, expires_at=NOW + timedelta(minutes=10))
    assert fake.total_accepted() == 1


def test_a_queued_message_not_requested_by_its_expiry_is_never_sent_late(
    fake: FaultGateway, clock: SharedClock
) -> None:
    message = services.send_text(
        TO, "Your code is 1234", expires_in=timedelta(minutes=5), enqueue=True
    )
    assert message.status == Status.QUEUED
    clock.advance(timedelta(minutes=5))  # the queue was slow
    assert run_queue() == [Status.NOT_SENT]
    message.refresh_from_db()
    assert (message.status, message.error_name) == (Status.NOT_SENT, "Expired")
    assert nothing_requested(fake)


def test_queueing_a_message_already_expired_refuses_it_at_once(
    fake: FaultGateway, clock: SharedClock
) -> None:
    message = services.send_text(TO, "Hi", expires_at=NOW - timedelta(minutes=1), enqueue=True)
    assert message.status == Status.NOT_SENT
    assert enqueued() == []
    assert nothing_requested(fake)


def test_a_message_behind_a_held_account_expires_instead_of_going_out_after_the_top_up(
    fake: FaultGateway, clock: SharedClock
) -> None:
    faults.hold("default", InsufficientBalance())
    message = services.send_text(TO, "Flash sale", expires_in=timedelta(hours=1), enqueue=True)
    assert run_once() == ["held"]
    # The task runs again at the expiry (the backend defers it), to expire the message then.
    [again] = enqueued()
    assert again.task.run_after > timezone.now() + timedelta(minutes=59)
    clock.advance(timedelta(hours=1))
    assert run_once() == [Status.NOT_SENT]
    message.refresh_from_db()
    assert message.error_name == "Expired"
    # The top-up comes later: nothing goes out late.
    services.release_account("default")
    run_queue()
    assert nothing_requested(fake)


# -- bulk ----------------------------------------------------------------------------------------


def test_bulk_inline_refuses_every_expired_message_without_a_request(
    fake: FaultGateway, clock: SharedClock
) -> None:
    result = services.send_bulk(numbers(4), text="Hi", expires_at=NOW - timedelta(seconds=1))
    assert result.counts == {Status.NOT_SENT: 4}
    assert {m.error_name for m in result.messages} == {"Expired"}
    assert nothing_requested(fake)


def test_bulk_queued_messages_expire_in_the_queue(fake: FaultGateway, clock: SharedClock) -> None:
    result = services.send_bulk(
        numbers(3), text="Hi", expires_in=timedelta(minutes=10), enqueue=True
    )
    assert {m.expires_at for m in Message.objects.all()} == {NOW + timedelta(minutes=10)}
    clock.advance(timedelta(minutes=11))
    assert run_queue() == [Status.NOT_SENT] * 3
    assert {m.status for m in Message.objects.all()} == {Status.NOT_SENT}
    assert len(result.messages) == 3
    assert nothing_requested(fake)


# -- campaigns -----------------------------------------------------------------------------------


def test_a_paused_campaign_resumed_after_its_expiry_sends_nobody_late_and_finishes(
    fake: FaultGateway, clock: SharedClock
) -> None:
    fake.balance = 5
    campaign = services.create_campaign(
        "Flash", numbers(30), text="Sale", chunk_size=10, expires_in=timedelta(hours=2)
    )
    assert campaign.expires_at == NOW + timedelta(hours=2)
    assert {m.expires_at for m in Message.objects.filter(campaign=campaign)} == {
        NOW + timedelta(hours=2)
    }
    services.start_campaign(campaign)
    run_queue()
    campaign.refresh_from_db()
    assert campaign.status == CStatus.PAUSED
    assert fake.total_accepted() == 5
    clock.advance(timedelta(hours=3))  # the top-up came too late
    fake.top_up()
    services.resume_campaign(campaign)
    run_queue()
    campaign.refresh_from_db()
    assert campaign.status == CStatus.DONE
    counts = services.campaign_progress(campaign).counts
    assert counts == {Status.ACCEPTED: 5, Status.NOT_SENT: 25}
    assert set(
        Message.objects.filter(campaign=campaign, status=Status.NOT_SENT).values_list(
            "error_name", flat=True
        )
    ) == {"Expired"}
    assert fake.total_accepted() == 5


# -- the admin -----------------------------------------------------------------------------------


def test_the_message_page_shows_its_expiry(
    fake: FaultGateway, clock: SharedClock, admin_client: Client
) -> None:
    message = services.send_text(TO, "Hi", expires_at=NOW - timedelta(minutes=1))
    page = admin_client.get(f"/admin/django_whatsapp/message/{message.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    message.refresh_from_db()
    assert message.expires_at is not None
    # The expiry, labelled, written as every date of the admin (a <time> of the moment).
    expires = html.split("field-expires_at_when", 1)[1].split("</div>", 3)
    assert "expires" in expires[0].lower() or "expires" in expires[1].lower()
    assert f'<time datetime="{message.expires_at.isoformat()}">' in html
    # What went wrong, in words, and no retry offered: late is worthless.
    assert "The message expired before it could be sent" in html
    assert "The gateway refused the message" not in html
