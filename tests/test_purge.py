"""``whatsapp_purge``: retention (settled messages with their events, and inbound reports, older
than a period) and erasing one customer; in bounded batches, each its own transaction.

Run on SQLite and on PostgreSQL (``DATABASE_URL=postgres://...``).
"""

from __future__ import annotations

import io
import re
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_whatsapp import optout, services
from django_whatsapp.models import CampaignRejection, Contact, InboundReport, Message, StatusEvent

pytestmark = pytest.mark.django_db

Status = Message.Status
CUSTOMER = "380501234567"
OTHER = "380671112233"


def message(
    status: str = Status.DELIVERED,
    *,
    days: int = 200,
    to: str = CUSTOMER,
    inbound: bool = False,
    events: int = 1,
) -> Message:
    made = Message.objects.create(
        destination_addr=to,
        source_addr="TestCo",
        text="hi",
        status=status,
        direction=Message.Direction.INBOUND if inbound else Message.Direction.OUTBOUND,
    )
    Message.objects.filter(pk=made.pk).update(created_at=timezone.now() - timedelta(days=days))
    for n in range(events):
        StatusEvent.objects.create(message=made, status=status, source="send", payload={"n": n})
    return made


def report(*, days: int = 200, sender: str = CUSTOMER, body: str = "{}") -> InboundReport:
    made = InboundReport.objects.create(method="POST", body=body, sender=sender)
    InboundReport.objects.filter(pk=made.pk).update(
        received_at=timezone.now() - timedelta(days=days)
    )
    return made


def purge(*args: str) -> str:
    out = io.StringIO()
    call_command("whatsapp_purge", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def data() -> dict[str, Any]:
    made = {
        "old_delivered": message(Status.DELIVERED, events=2),
        "old_failed": message(Status.NOT_SENT),
        "old_seen": message(Status.SEEN),
        "old_inbound": message(Status.DELIVERED, inbound=True, events=0),
        "old_accepted": message(Status.ACCEPTED),
        "old_draft": message(Status.DRAFT, events=0),
        "new_delivered": message(Status.DELIVERED, days=10),
        "old_report": report(),
        "new_report": report(days=10),
    }
    made["old_report"].messages.add(made["old_inbound"])
    return made


def remaining() -> set[int]:
    return set(Message.objects.values_list("pk", flat=True))


# -- retention -----------------------------------------------------------------------------------


def test_older_than_deletes_settled_messages_with_their_events_and_old_reports(
    data: dict[str, Any],
) -> None:
    output = purge("--older-than", "180d", "--no-progress")
    kept = {data[k].pk for k in ("old_accepted", "old_draft", "new_delivered")}
    assert remaining() == kept
    assert set(StatusEvent.objects.values_list("message_id", flat=True)) == kept - {
        data["old_draft"].pk
    }
    assert set(InboundReport.objects.values_list("pk", flat=True)) == {data["new_report"].pk}
    assert "Deleted: " in output
    assert "4 messages" in output
    assert "4 status events" in output
    assert "1 inbound reports" in output


def test_a_dry_run_counts_and_deletes_nothing(data: dict[str, Any]) -> None:
    before = (remaining(), StatusEvent.objects.count(), InboundReport.objects.count())
    output = purge("--older-than", "180d", "--dry-run")
    assert (remaining(), StatusEvent.objects.count(), InboundReport.objects.count()) == before
    assert "Dry run" in output
    assert "Would delete: 1 inbound reports, 4 messages, 4 status events." in output


def test_include_unsettled_deletes_old_messages_still_on_their_way(data: dict[str, Any]) -> None:
    purge("--older-than", "180d", "--include-unsettled", "--no-progress")
    assert remaining() == {data["new_delivered"].pk}


def test_nothing_old_enough(data: dict[str, Any]) -> None:
    output = purge("--older-than", "52w", "--no-progress")
    assert "Deleted nothing." in output
    assert len(remaining()) == 7


def test_the_retention_setting_is_the_default_period(data: dict[str, Any], settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "RETENTION": "180d"}
    purge("--no-progress")
    assert data["old_delivered"].pk not in remaining()
    assert data["new_delivered"].pk in remaining()
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "RETENTION": timedelta(days=5)}
    purge("--no-progress")
    assert data["new_delivered"].pk not in remaining()


def test_no_period_at_all_is_an_error(data: dict[str, Any]) -> None:
    with pytest.raises(CommandError, match=r"Give --older-than .*RETENTION"):
        purge()
    assert len(remaining()) == 7


@pytest.mark.parametrize("given", ["180", "abc", "0d", "-5d", "1y"])
def test_a_bad_duration_is_named(data: dict[str, Any], given: str) -> None:
    with pytest.raises(CommandError, match="--older-than"):
        purge("--older-than", given)
    assert len(remaining()) == 7


@pytest.mark.parametrize("retention", ["6 months", 180, "0s"])
def test_a_bad_retention_setting_is_named(settings: Any, retention: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "RETENTION": retention}
    with pytest.raises(CommandError, match=r"DJANGO_WHATSAPP\['RETENTION'\]"):
        purge()


def test_an_opt_out_outlives_the_message_that_made_it(data: dict[str, Any]) -> None:
    optout.opt_out(CUSTOMER, reason="keyword: STOP", message=data["old_inbound"])
    purge("--older-than", "180d", "--no-progress")
    contact = Contact.objects.get(number=CUSTOMER)
    assert contact.opted_out_at is not None
    assert contact.opt_out_message is None
    assert optout.is_opted_out(CUSTOMER)


def test_batches_are_bounded_and_each_is_its_own_delete() -> None:
    for _ in range(25):
        message(Status.DELIVERED, events=1)
    with CaptureQueriesContext(connection) as queries:
        output = purge("--older-than", "180d", "--batch-size", "10", "--no-progress")
    assert re.findall(r"messages: batch (\d+)", output) == ["1", "2", "3"]
    assert "messages: batch 3, 25/25 deleted" in output
    assert not Message.objects.exists()
    assert not StatusEvent.objects.exists()
    selects = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("SELECT")
        and '"django_whatsapp_message"' in q["sql"].split("FROM", 1)[1][:40]
        and "COUNT(" not in q["sql"]
    ]
    assert selects, "no batch read captured"
    # Every read of the table is a page of at most --batch-size keys (or the rows of one batch).
    for sql in selects:
        assert re.search(r"LIMIT 10\b", sql) or "IN (" in sql, sql


def test_a_progress_bar_on_request() -> None:
    for _ in range(3):
        message(Status.DELIVERED)
    output = purge("--older-than", "180d", "--progress", "--batch-size", "2")
    assert "\rmessages [" in output
    assert "3/3 100%" in output
    assert "batch" not in output


# -- one customer ----------------------------------------------------------------------------------


def test_contact_erases_every_message_report_and_the_contact(data: dict[str, Any]) -> None:
    theirs_new = message(Status.QUEUED, days=0)
    other = message(Status.DELIVERED, to=OTHER)
    other_report = report(sender=OTHER, body='{"from": "380671112233"}')
    unread = report(sender="", body='{"weird": "380501234567"}', days=1)
    optout.opt_out(CUSTOMER, reason="keyword: STOP")
    output = purge("--contact", "+380 50 123 45 67", "--no-progress", "--yes")
    assert remaining() == {other.pk}
    assert theirs_new.pk not in remaining()
    assert set(InboundReport.objects.values_list("pk", flat=True)) == {other_report.pk}
    assert not InboundReport.objects.filter(pk=unread.pk).exists()
    assert not Contact.objects.filter(number=CUSTOMER).exists()
    assert set(StatusEvent.objects.values_list("message_id", flat=True)) == {other.pk}
    assert "Erasing everything about +380501234567." in output
    assert "8 messages" in output
    assert "3 inbound reports" in output
    assert "1 contacts" in output


def test_contact_dry_run(data: dict[str, Any]) -> None:
    output = purge("--contact", CUSTOMER, "--dry-run")
    assert len(remaining()) == 7
    assert "Would delete: 2 inbound reports, 7 messages, 6 status events." in output


def test_contact_must_be_a_number(data: dict[str, Any]) -> None:
    with pytest.raises(CommandError, match="--contact 'abc'"):
        purge("--contact", "abc")
    with pytest.raises(CommandError, match="--include-unsettled goes with --older-than"):
        purge("--contact", CUSTOMER, "--include-unsettled")
    assert len(remaining()) == 7


def test_contact_erases_metadata_naming_the_number_on_other_messages(
    data: dict[str, Any],
) -> None:
    about = message(Status.DELIVERED, to=OTHER)
    Message.objects.filter(pk=about.pk).update(
        metadata={
            "referred_by": "+380501234567",
            "order": 17,
            "people": ["380501234567", "380671112233"],
            "nested": {"phone": "380501234567", "city": "Kyiv"},
        }
    )
    untouched = message(Status.DELIVERED, to=OTHER)
    Message.objects.filter(pk=untouched.pk).update(metadata={"order": 18})

    dry = purge("--contact", CUSTOMER, "--dry-run")
    assert "3 metadata entries" in dry
    assert Message.objects.get(pk=about.pk).metadata["referred_by"] == "+380501234567"

    output = purge("--contact", CUSTOMER, "--no-progress", "--noinput")
    assert "3 metadata entries" in output
    assert Message.objects.get(pk=about.pk).metadata == {
        "order": 17,
        "people": ["380671112233"],
        "nested": {"city": "Kyiv"},
    }
    assert Message.objects.get(pk=untouched.pk).metadata == {"order": 18}


def test_contact_erases_rejected_campaign_rows_naming_the_number() -> None:
    campaign = services.create_campaign(
        "News", ["+380501234567", "380 67 111 22 33", "not-a-number"], text="Hi"
    )
    CampaignRejection.objects.create(campaign=campaign, line=9, value="+380501234567x", reason="x")
    output = purge("--contact", CUSTOMER, "--no-progress", "--yes")
    assert list(CampaignRejection.objects.values_list("value", flat=True)) == ["not-a-number"]
    assert "Deleted: 1 messages, 1 rejected rows." in output


# -- the module behind the command, for a project's own scheduled task ---------------------------


def test_the_retention_module_purges_without_the_command(settings: Any) -> None:
    """``django_whatsapp.retention`` does what the command does, with a progress callback."""
    from django.core.exceptions import ImproperlyConfigured, ValidationError

    from django_whatsapp import retention

    old, kept = message(days=200, events=2), message(days=10)
    unsettled = message(Status.ACCEPTED, days=200)
    report(days=200)
    with pytest.raises(ImproperlyConfigured, match="RETENTION"):
        retention.purge_older_than()
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "RETENTION": "180d"}
    dry = retention.purge_older_than(dry_run=True)
    assert dry == {"messages": 1, "status events": 2, "inbound reports": 1}
    assert Message.objects.count() == 3
    seen: list[tuple[str, int, int]] = []
    counts = retention.purge_older_than(batch_size=1, progress=lambda *a: seen.append(a))
    assert counts == {"messages": 1, "status events": 2, "inbound reports": 1}
    assert seen == [("messages", 1, 1), ("inbound reports", 1, 1)]
    assert set(Message.objects.values_list("pk", flat=True)) == {kept.pk, unsettled.pk}
    assert not Message.objects.filter(pk=old.pk).exists()
    with pytest.raises(ValueError, match="batch_size"):
        retention.purge(Message.objects.all(), "messages", batch_size=0)
    with pytest.raises(ValidationError):
        retention.erase_contact("not a number")
    assert retention.erase_contact(f"+{CUSTOMER}") == {"messages": 2, "status events": 2}
    assert not Message.objects.exists()
