"""Running a campaign: start (now or at ``send_at``), pause, resume, cancel; its progress, counts
and delivery funnel at any moment; its results as CSV rows.

Each change is one conditional UPDATE of the campaign's status, so two operators clicking at
once get one change and a clear error for the other. The workers read the status before each
batch of claims (at least every ``engine.CHECK_EVERY`` seconds), and the claim itself only takes
messages of a ``running`` campaign: pause and cancel take effect within a second or so.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from .. import clock, faults
from ..conf import get_settings
from ..models import Campaign, CampaignChunk, Message
from ..sending import OUTSIDE_HOURS
from ..status_rule import status_rank
from .rows import CSV_METADATA_KEY
from .states import CANCELLED_ERROR_NAME as CANCELLED_ERROR_NAME
from .states import CampaignStateError as CampaignStateError
from .states import move, pause_with_reason, sweep_cancelled

logger = logging.getLogger("django_whatsapp")

CampaignStatus = Campaign.Status
Status = Message.Status


def start_campaign(campaign: Campaign, *, send_at: datetime | None = None) -> Campaign:
    """Start a ``draft`` campaign: at once, or at ``send_at`` (given here or on the campaign)
    when that is in the future (the campaign is then ``scheduled``; starting a scheduled one
    again sends it now). Hands its chunks to the task framework when the transaction commits.
    Raises :class:`CampaignStateError` in any other status, and ``ImproperlyConfigured``
    (nothing changed) when the campaign's account is not in ``DJANGO_WHATSAPP['ACCOUNTS']``."""
    from ..tasks import enqueue_chunks, schedule_tick  # needs a task framework: on use

    get_settings(campaign.account)  # an account removed since: refused before anything moves
    now = timezone.now()
    when = send_at or campaign.send_at
    if when is not None and when > now and campaign.status == CampaignStatus.DRAFT:
        move(campaign, (CampaignStatus.DRAFT,), CampaignStatus.SCHEDULED, send_at=when)
        schedule_tick(campaign.pk, when)
        logger.info("WhatsApp campaign %s scheduled for %s", campaign.pk, when.isoformat())
        return campaign
    move(
        campaign,
        (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED),
        CampaignStatus.RUNNING,
        started_at=now,
    )
    _hand_out(campaign, enqueue_chunks, schedule_tick)
    logger.info("WhatsApp campaign %s started", campaign.pk)
    return campaign


def _hand_out(campaign: Campaign, enqueue_chunks: Any, schedule_tick: Any) -> None:
    """Hand every pending chunk out now, those that waited too (their recipients' hours or
    the daily limit are looked at again; the ones still waiting are released again)."""
    now = timezone.now()
    pending = CampaignChunk.objects.filter(campaign=campaign, state=CampaignChunk.State.PENDING)
    ids = list(pending.order_by("first_id").values_list("pk", flat=True))
    pending.update(queued_at=now, not_before=None)
    enqueue_chunks(ids)
    schedule_tick(campaign.pk, None)


def pause_campaign(campaign: Campaign) -> Campaign:
    """Pause a running (or scheduled) campaign: no message is claimed any more; messages in
    flight finish, rate-limited ones go back to ``queued``. Resume with
    :func:`resume_campaign`. Sends ``campaign_paused`` (with a blank reason: an operator's
    pause)."""
    return pause_with_reason(campaign, "")


def resume_campaign(campaign: Campaign) -> Campaign:
    """Resume a paused campaign: its remaining chunks are handed out again. When the app paused
    it because the gateway refused the account (after the top-up, or a new key), the account is
    released too: its queued sends go on (:func:`release_account`). Raises
    ``ImproperlyConfigured`` (nothing changed) when its account is no longer configured."""
    from ..tasks import enqueue_chunks, schedule_tick  # needs a task framework: on use

    get_settings(campaign.account)
    move(campaign, (CampaignStatus.PAUSED,), CampaignStatus.RUNNING, pause_reason="")
    if campaign.started_at is None:
        Campaign.objects.filter(pk=campaign.pk).update(started_at=timezone.now())
    release_account(campaign.account)
    _hand_out(campaign, enqueue_chunks, schedule_tick)
    logger.info("WhatsApp campaign %s resumed", campaign.pk)
    return campaign


def release_account(account: str) -> int:
    """Lift the account's hold (the gateway refused its balance or key, and the operator topped
    up or fixed the key) and hand its queued sends (not a campaign's: resuming the campaign does)
    to the task framework again. Returns how many were handed out."""
    from ..tasks import requeue_waiting  # needs a task framework: on use

    faults.release(account)
    return requeue_waiting(account)


def cancel_campaign(campaign: Campaign) -> Campaign:
    """Cancel a campaign that is not finished: nothing more is sent, and its messages not sent
    yet become ``not_sent`` with the error "Campaign cancelled" (those in flight finish; a
    request still waiting on the rate limit gives its message back, and the engine cancels it
    then: :func:`sweep_cancelled`)."""
    move(
        campaign,
        (
            CampaignStatus.DRAFT,
            CampaignStatus.SCHEDULED,
            CampaignStatus.RUNNING,
            CampaignStatus.PAUSED,
        ),
        CampaignStatus.CANCELLED,
        finished_at=timezone.now(),
    )
    count = sweep_cancelled(campaign)
    logger.info("WhatsApp campaign %s cancelled; %d message(s) not sent", campaign.pk, count)
    return campaign


# -- what the campaign did ---------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignProgress:
    """A campaign's messages by status at one moment, from one aggregate query: the numbers
    every screen shows (the command's ``status``, the admin's list and page).

    ``settled``: messages past ``sending`` (the gateway answered, or they will not be sent);
    ``cancelled``: those of them the campaign's cancellation left unsent; ``sent``: the others;
    ``percent``: settled of all. The funnel counts the messages the gateway accepted, and of
    those the ones delivered and seen, as of the latest reports. ``waiting_for_hours``: of the
    messages waiting, those whose recipients wait for their sending hours to open (their
    morning).
    """

    total: int
    counts: dict[str, int] = field(default_factory=dict)
    cancelled: int = 0
    waiting_for_hours: int = 0

    @property
    def waiting(self) -> int:
        return self.counts.get(Status.DRAFT, 0) + self.counts.get(Status.QUEUED, 0)

    @property
    def in_flight(self) -> int:
        return self.counts.get(Status.SENDING, 0)

    @property
    def settled(self) -> int:
        return self.total - self.waiting - self.in_flight

    @property
    def sent(self) -> int:
        """Settled messages but those the cancellation left unsent."""
        return self.settled - self.cancelled

    @property
    def percent(self) -> float:
        return round(100 * self.settled / self.total, 1) if self.total else 100.0

    def share(self, count: int) -> int:
        """``count`` as a whole percentage of all messages (rounded down)."""
        return 100 * count // self.total if self.total else 0

    @property
    def funnel(self) -> list[tuple[str, int]]:
        """(step, count) for accepted, delivered and seen."""

        def at_least(status: str) -> int:
            low = status_rank(status)
            return sum(
                n
                for s, n in self.counts.items()
                if low <= status_rank(s) <= status_rank(Status.SEEN)
            )

        provider_final = (Status.REJECTED, Status.ERROR, Status.FAILED, Status.DELETED)
        accepted = at_least(Status.ACCEPTED) + sum(self.counts.get(s, 0) for s in provider_final)
        return [
            ("accepted", accepted),
            ("delivered", at_least(Status.DELIVERED)),
            ("seen", self.counts.get(Status.SEEN, 0)),
        ]


def _cancelled() -> Q:
    return Q(status=Status.NOT_SENT, error_name=CANCELLED_ERROR_NAME)


def _for_hours() -> Q:
    """The messages waiting for their recipients' sending hours to open (their morning)."""
    return Q(
        status__in=(Status.DRAFT, Status.QUEUED),
        send_after__gt=clock.now(),
        error_name=OUTSIDE_HOURS,
    )


def campaign_progress(campaign: Campaign) -> CampaignProgress:
    """The campaign's counts per status, progress and funnel now, and how many of its
    recipients wait for their sending hours (one aggregate query)."""
    counts = Message.objects.filter(campaign=campaign).aggregate(
        _cancelled=Count("pk", filter=_cancelled()),
        _for_hours=Count("pk", filter=_for_hours()),
        **{status: Count("pk", filter=Q(status=status)) for status in Status.values},
    )
    cancelled = counts.pop("_cancelled")
    for_hours = counts.pop("_for_hours")
    present = {status: n for status, n in counts.items() if n}
    return CampaignProgress(
        total=sum(present.values()),
        counts=present,
        cancelled=cancelled,
        waiting_for_hours=for_hours,
    )


def campaigns_progress(campaign_ids: list[int]) -> dict[int, CampaignProgress]:
    """:func:`campaign_progress` of several campaigns in one grouped query (the admin's list);
    a campaign without messages is missing from the answer."""
    rows = (
        Message.objects.filter(campaign_id__in=campaign_ids)
        .order_by()
        .values("campaign_id", "status")
        .annotate(
            count=Count("pk"),
            cancelled=Count("pk", filter=_cancelled()),
            for_hours=Count("pk", filter=_for_hours()),
        )
    )
    counts: dict[int, dict[str, int]] = {}
    cancelled: dict[int, int] = {}
    for_hours: dict[int, int] = {}
    for row in rows:
        pk = row["campaign_id"]
        counts.setdefault(pk, {})[row["status"]] = row["count"]
        cancelled[pk] = cancelled.get(pk, 0) + row["cancelled"]
        for_hours[pk] = for_hours.get(pk, 0) + row["for_hours"]
    return {
        pk: CampaignProgress(
            total=sum(by.values()),
            counts=by,
            cancelled=cancelled.get(pk, 0),
            waiting_for_hours=for_hours.get(pk, 0),
        )
        for pk, by in counts.items()
    }


#: The columns of :func:`campaign_results`.
RESULT_COLUMNS = (
    "recipient",
    "status",
    "provider_message_id",
    "error_code",
    "error_name",
    "status_changed_at",
)


def campaign_results(campaign: Campaign) -> Iterator[list[str]]:
    """The campaign's results as CSV rows (a header, then one row per message, in id order),
    read as a stream: ``csv.writer(f).writerows(campaign_results(c))``. Error names that a
    spreadsheet would read as a formula are quoted with a leading ``'``."""
    yield list(RESULT_COLUMNS)
    rows = (
        Message.objects.filter(campaign=campaign)
        .order_by("pk")
        .values_list(
            "destination_addr",
            "status",
            "provider_message_id",
            "error_code",
            "error_name",
            "status_changed_at",
        )
        .iterator(chunk_size=2000)
    )
    for number, status, provider_id, code, name, changed in rows:
        yield [
            f"+{number}",
            status,
            "" if provider_id is None else str(provider_id),
            "" if code is None else str(code),
            _cell(name),
            changed.isoformat() if changed else "",
        ]


def _cell(text: str) -> str:
    """Text from outside (the gateway's error names) made safe for a spreadsheet: a leading
    ``=``, ``+``, ``-``, ``@``, tab or carriage return would start a formula."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


#: The columns of :func:`campaign_export`.
EXPORT_COLUMNS = (
    "recipient",
    "status",
    "provider_message_id",
    "error_code",
    "error_name",
    "error_message",
    "created_at",
    "submitted_at",
    "status_changed_at",
)


def csv_columns_of(campaign: Campaign) -> list[str]:
    """The CSV columns the campaign's messages keep (its audience file's, but the number), in the
    file's order; none for a campaign not made from a file."""
    cells = (
        Message.objects.filter(campaign=campaign, metadata__has_key=CSV_METADATA_KEY)
        .order_by("pk")
        .values_list("metadata", flat=True)
        .first()
    )
    kept = (cells or {}).get(CSV_METADATA_KEY)
    return [str(name) for name in kept] if isinstance(kept, dict) else []


def campaign_export(campaign: Campaign) -> Iterator[list[str]]:
    """Like :func:`campaign_results`, with the error's text, every timestamp (created,
    submitted, status changed) and the audience file's own columns (:func:`csv_columns_of`; a
    name clashing with one of these gets `` (csv)``): a header, then one row per message in id
    order, read as a stream. For the admin's "Export CSV"."""
    own = csv_columns_of(campaign)
    header = list(EXPORT_COLUMNS)
    yield header + [f"{name} (csv)" if name in EXPORT_COLUMNS else name for name in own]
    rows = (
        Message.objects.filter(campaign=campaign)
        .order_by("pk")
        .values_list(
            "destination_addr",
            "status",
            "provider_message_id",
            "error_code",
            "error_name",
            "error_message",
            "created_at",
            "submitted_at",
            "status_changed_at",
            "metadata",
        )
        .iterator(chunk_size=2000)
    )
    for row in rows:
        number, status, provider_id, code, name, detail, created, submitted, changed, data = row
        cells = (data or {}).get(CSV_METADATA_KEY) if own else None
        cells = cells if isinstance(cells, dict) else {}
        yield [
            f"+{number}",
            status,
            "" if provider_id is None else str(provider_id),
            "" if code is None else str(code),
            name,
            detail,
            *(moment.isoformat() if moment else "" for moment in (created, submitted, changed)),
            *(str(cells.get(column, "")) for column in own),
        ]
