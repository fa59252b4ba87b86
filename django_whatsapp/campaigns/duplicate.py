"""Another campaign from one: a duplicate, or its failed recipients again (the admin's
"Duplicate" and "Send again to the failed")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db import models

from ..models import Campaign, Message
from .audience import create_from_rows
from .control import CANCELLED_ERROR_NAME
from .csvfile import Row
from .rows import CSV_METADATA_KEY

#: The statuses "send again to the failed" takes (not ``unknown``: the gateway may have it).
FAILED_STATUSES = (
    Message.Status.NOT_SENT,
    Message.Status.REJECTED,
    Message.Status.ERROR,
    Message.Status.FAILED,
)


def failed_messages(campaign: Campaign) -> models.QuerySet[Message]:
    """The campaign's messages that failed (not those its cancellation left unsent)."""
    return Message.objects.filter(campaign=campaign, status__in=FAILED_STATUSES).exclude(
        status=Message.Status.NOT_SENT, error_name=CANCELLED_ERROR_NAME
    )


def copy_campaign(
    campaign: Campaign, name: str, *, only_failed: bool = False, created_by: Any = None
) -> Campaign:
    """A new ``draft`` campaign with ``campaign``'s content and account, to every recipient of
    it (each with their own template parameters and CSV cells), or ``only_failed`` to those
    whose message failed (:func:`failed_messages`). Sorted and counted like any audience: a
    recipient who opted out since is rejected."""
    source = failed_messages(campaign) if only_failed else campaign.messages.all()
    per_recipient = campaign.template_id is not None and not campaign.params

    def rows() -> Iterator[Row]:
        found = source.order_by("pk").values_list("destination_addr", "template_params", "metadata")
        for line, (number, values, metadata) in enumerate(found.iterator(2000), start=1):
            body = (values or {}).get("body") if per_recipient else None
            cells = (metadata or {}).get(CSV_METADATA_KEY)
            yield Row(
                line,
                number,
                list(body) if isinstance(body, list) else None,
                columns=dict(cells) if isinstance(cells, dict) else None,
            )

    kind = Message.MessageType
    content: dict[str, Any] = {}
    if campaign.message_type == kind.TEMPLATE:
        content = {"template": campaign.template, "params": campaign.params}
        content["header"] = campaign.header or None
    elif campaign.message_type == kind.MEDIA:
        content = {"file_url": campaign.file_url, "text": campaign.text or None}
    else:
        content = {"text": campaign.text}
    return create_from_rows(
        name,
        rows(),
        source_addr=campaign.source_addr or None,
        account=campaign.account,
        created_by=created_by,
        **content,
    )
