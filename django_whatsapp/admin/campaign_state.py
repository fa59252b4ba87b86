"""What a campaign's list row, page and live JSON show, computed one way for all three: the
status badge and what holds the campaign back, the progress bar (sent and cancelled in two
colours), the buttons its status allows, the counts and funnel, and whether the page keeps
polling."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.admin.views.main import ChangeList
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ..campaigns.control import CampaignProgress, campaigns_progress
from ..campaigns.rows import reason_in_words
from ..models import AccountState, Campaign, Message
from . import accounts as admin_accounts
from .dates import short_when
from .summary import Summary, status_summary

CStatus = Campaign.Status
Status = Message.Status
#: The statuses a report may still move a message from (its page keeps polling for them).
CHANGING = (
    Status.QUEUED,
    Status.SENDING,
    Status.UNKNOWN,
    Status.ACCEPTED,
    Status.PENDING,
    Status.SENT,
    Status.DELIVERED,
)
#: How long a finished campaign's page keeps polling after the last change of a status.
LIVE_AFTER_CHANGE = timedelta(minutes=10)

#: The colour family of each campaign status badge.
CAMPAIGN_TONES: dict[str, str] = {
    CStatus.DRAFT: "quiet",
    CStatus.SCHEDULED: "quiet",
    CStatus.RUNNING: "progress",
    CStatus.PAUSED: "warn",
    CStatus.DONE: "good",
    CStatus.CANCELLED: "bad",
}


def campaign_badge(status: str) -> SafeString:
    label = CStatus(status).label if status in CStatus.values else status
    return format_html(
        '<span class="wa-badge wa-tone-{}" data-status="{}">{}</span>',
        CAMPAIGN_TONES.get(status, "quiet"),
        status,
        label,
    )


def campaign_notice(campaign: Campaign, state: AccountState | None) -> str | None:
    """What holds the campaign back, in words: the app paused it (the balance, the key), or its
    account waits for the gateway or the rate-limit cache. ``None`` when nothing does."""
    if campaign.is_finished or campaign.status == CStatus.DRAFT:
        return None
    if campaign.status == CStatus.PAUSED and campaign.pause_reason:
        since = state.held_since if state is not None and state.held_since else campaign.updated_at
        return _("Paused: %(reason)s (since %(time)s).") % {
            "reason": campaign.pause_reason,
            "time": short_when(since),
        }
    return admin_accounts.describe_state(state)


def progress_bar(progress: CampaignProgress, *, small: bool = False) -> SafeString:
    """The progress as a bar: sent (settled but not cancelled) and cancelled, in two colours."""
    sent, cancelled = progress.share(progress.sent), progress.share(progress.cancelled)
    percent = progress.share(progress.settled)
    if progress.cancelled:
        words = _("%(sent)d%% sent, %(cancelled)d%% cancelled") % {
            "sent": sent,
            "cancelled": cancelled,
        }
    else:
        words = f"{percent}%"
    return format_html(
        '<span class="wa-progress{}" data-percent="{}" data-sent="{}" data-cancelled="{}" '
        'role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="{}">'
        '<span class="wa-progress-fill" style="width: {}%"></span>'
        '<span class="wa-progress-cancelled" style="width: {}%"></span></span> '
        '<span class="wa-progress-words">{}</span>',
        " wa-progress-small" if small else "",
        percent,
        sent,
        cancelled,
        percent,
        sent,
        cancelled,
        words,
    )


def available_actions(campaign: Campaign) -> list[tuple[str, str]]:
    """(action, button label) for the changes the campaign's status allows."""
    by_status: dict[str, list[str]] = {
        CStatus.DRAFT: ["start", "cancel"],
        CStatus.SCHEDULED: ["start", "pause", "cancel"],
        CStatus.RUNNING: ["pause", "cancel"],
        CStatus.PAUSED: ["resume", "cancel"],
    }
    labels = {
        "start": _("Start now…"),
        "pause": _("Pause"),
        "resume": _("Resume"),
        "cancel": _("Cancel the campaign…"),
    }
    return [(action, labels[action]) for action in by_status.get(campaign.status, [])]


def campaign_summary(campaign: Campaign) -> Summary:
    """The campaign's counts per status and funnel (one query), each status linking to its
    messages in the message list."""
    messages_url = reverse("admin:django_whatsapp_message_changelist")

    def link(status: str) -> str:
        query = urlencode({"campaign__id__exact": str(campaign.pk), "status__exact": status})
        return f"{messages_url}?{query}"

    return status_summary(Message.objects.filter(campaign=campaign), link)


def is_live(campaign: Campaign, progress: CampaignProgress) -> bool:
    """Whether the page should keep polling: the campaign was started and is not finished, or a
    status of its messages changed lately and may change again (delivered, then seen)."""
    if campaign.status == CStatus.DRAFT:
        return False  # nothing moves before it is started (its page reloads then)
    if not campaign.is_finished:
        return True
    recent = timezone.now() - LIVE_AFTER_CHANGE
    return Message.objects.filter(
        campaign=campaign, status__in=CHANGING, status_changed_at__gte=recent
    ).exists()


def progress_state(
    campaign: Campaign, progress: CampaignProgress, summary: Summary, notice: str | None
) -> dict[str, Any]:
    """What the page shows live: the status, the progress (settled: past ``sending``; of them
    sent and cancelled), the counts per status and the delivery funnel."""
    return {
        "status": campaign.status,
        "status_label": str(campaign.get_status_display()),
        "status_badge": str(campaign_badge(campaign.status)),
        "finished": campaign.is_finished,
        "live": is_live(campaign, progress),
        "total": progress.total,
        "settled": progress.settled,
        "sent": progress.sent,
        "cancelled": progress.cancelled,
        "waiting": progress.waiting,
        "in_flight": progress.in_flight,
        "percent": progress.share(progress.settled),
        "sent_percent": progress.share(progress.sent),
        "cancelled_percent": progress.share(progress.cancelled),
        "bar": str(progress_bar(progress)),
        "notice": notice or "",
        "counts": [
            {"status": i.status, "label": i.label, "count": i.count, "url": i.url}
            for i in summary.statuses
        ],
        "submitted": summary.submitted,
        "refused": summary.refused,
        "funnel": [{"key": f.key, "count": f.count, "percent": f.percent} for f in summary.funnel],
    }


class CampaignChangeList(ChangeList):
    """The list, with each campaign's progress counted as its page counts it (one grouped
    query for the page's campaigns) and what holds it back (one query of account states)."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        campaigns = list(self.result_list)
        started = [c.pk for c in campaigns if c.status not in (CStatus.DRAFT, CStatus.SCHEDULED)]
        progress = campaigns_progress(started) if started else {}
        states = admin_accounts.states() if campaigns else {}
        for campaign in campaigns:
            # A campaign not started has its messages all drafts (none counted).
            waiting = campaign.recipients_count
            campaign.wa_progress = progress.get(
                campaign.pk, CampaignProgress(total=waiting, counts={Status.DRAFT: waiting})
            )
            campaign.wa_notice = campaign_notice(campaign, states.get(campaign.account))
        self.result_list = campaigns


def created_message(campaign: Campaign) -> str:
    """ "Campaign X created: ...", its counts as the page shows them."""
    return ngettext(
        "Campaign %(name)s created as a draft: %(count)d recipient, %(rejected)d rejected rows, "
        "%(repeated)d repeated numbers (sent once).",
        "Campaign %(name)s created as a draft: %(count)d recipients, %(rejected)d rejected rows, "
        "%(repeated)d repeated numbers (sent once).",
        campaign.recipients_count,
    ) % {
        "name": campaign.name,
        "count": campaign.recipients_count,
        "rejected": campaign.rejected_count,
        "repeated": campaign.duplicates_count,
    }


def account_state(campaign: Campaign) -> AccountState | None:
    return AccountState.objects.filter(account=campaign.account).first()


def with_reasons(rows: Any) -> list[dict[str, Any]]:
    """Rejected or repeated rows with their reasons in the reader's language."""
    return [
        {"line": row.line, "value": row.value, "reason": reason_in_words(row.reason)}
        for row in rows
    ]
