"""A campaign's status moves that the engine, the sending and the faults make too, below the
control room (which also hands work to the task framework): each one conditional UPDATE, so two
callers at once get one change and a clear error for the other."""

from __future__ import annotations

import logging
from typing import Any

from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import signals
from ..models import Campaign, Message

logger = logging.getLogger("django_whatsapp")

CampaignStatus = Campaign.Status
Status = Message.Status
#: ``error_name`` of the messages a cancelled campaign leaves unsent.
CANCELLED_ERROR_NAME = "Campaign cancelled"


class CampaignStateError(ValueError):
    """The campaign is not in a status that allows this change (for example resuming a campaign
    that is not paused)."""


def move(campaign: Campaign, sources: tuple[str, ...], target: str, **changes: Any) -> None:
    moved = Campaign.objects.filter(pk=campaign.pk, status__in=sources).update(
        status=target, updated_at=timezone.now(), **changes
    )
    campaign.refresh_from_db()
    if not moved:
        raise CampaignStateError(
            _("The campaign is %(status)s: it cannot be %(action)s.")
            % {"status": campaign.get_status_display().lower(), "action": _ACTIONS[target]}
        )


_ACTIONS: dict[str, Promise] = {
    CampaignStatus.RUNNING: gettext_lazy("started"),
    CampaignStatus.SCHEDULED: gettext_lazy("scheduled"),
    CampaignStatus.PAUSED: gettext_lazy("paused"),
    CampaignStatus.CANCELLED: gettext_lazy("cancelled"),
}


def pause_with_reason(campaign: Campaign, reason: str) -> Campaign:
    """Pause a running (or scheduled) campaign (``control.pause_campaign``); ``reason`` (the
    app's: an account's fault; blank for an operator) is kept as ``pause_reason`` and sent with
    ``campaign_paused``."""
    move(
        campaign,
        (CampaignStatus.RUNNING, CampaignStatus.SCHEDULED),
        CampaignStatus.PAUSED,
        pause_reason=reason,
    )
    logger.info("WhatsApp campaign %s paused%s", campaign.pk, f": {reason}" if reason else "")
    signals.campaign_paused.send(sender=Campaign, campaign=campaign, reason=reason)
    return campaign


def pause_account_campaigns(account: str, reason: str) -> list[Campaign]:
    """Pause every running campaign of ``account`` with ``reason`` (the gateway refused the
    account's balance or key): their messages wait, ``queued``, for :func:`resume_campaign`.
    Returns the campaigns this call paused."""
    paused = []
    for campaign in Campaign.objects.filter(account=account, status=CampaignStatus.RUNNING):
        try:
            paused.append(pause_with_reason(campaign, reason))
        except CampaignStateError:
            continue  # paused, cancelled or done meanwhile
    return paused


def sweep_cancelled(campaign: Campaign) -> int:
    """The messages of a cancelled campaign not sent yet (``draft`` or ``queued``, including
    those given back while a request waited on the rate limit) become ``not_sent`` with the
    error "Campaign cancelled". Returns how many."""
    left = Message.objects.filter(campaign=campaign, status__in=(Status.DRAFT, Status.QUEUED))
    return left.update(
        status=Status.NOT_SENT,
        status_changed_at=timezone.now(),
        error_code=None,
        error_name=CANCELLED_ERROR_NAME,
        error_message=_("The campaign was cancelled before this message was sent."),
    )
