"""What the message screens hand out besides pages: the list's CSV export, and what compose
warns about a recipient while the number is typed."""

from __future__ import annotations

from collections.abc import Iterator

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from .. import window
from ..models import Contact, Message
from ..validation import clean_recipient
from .dates import when

#: The columns of the message list's export.
EXPORT_COLUMNS = (
    "id",
    "created_at",
    "direction",
    "account",
    "recipient",
    "sender",
    "type",
    "status",
    "text",
    "template",
    "template_parameters",
    "campaign",
    "provider_message_id",
    "error_code",
    "error_name",
    "error_message",
    "submitted_at",
    "status_changed_at",
)


def export_rows(queryset: QuerySet[Message]) -> Iterator[list[str]]:
    """A header, then one row per message of ``queryset`` (newest first), read as a stream."""
    yield list(EXPORT_COLUMNS)
    rows = (
        queryset.order_by("-created_at", "-pk")
        .values_list(
            "pk",
            "created_at",
            "direction",
            "account",
            "destination_addr",
            "source_addr",
            "message_type",
            "status",
            "text",
            "template__name",
            "template_params",
            "campaign__name",
            "provider_message_id",
            "error_code",
            "error_name",
            "error_message",
            "submitted_at",
            "status_changed_at",
        )
        .iterator(chunk_size=2000)
    )
    kinds = dict(Message.MessageType.choices)
    for row in rows:
        pk, created, direction, account, number, sender, kind, status, text, *rest = row
        template, params, campaign, provider_id, code, name, detail, submitted, changed = rest
        body = (params or {}).get("body") if isinstance(params, dict) else None
        yield [
            str(pk),
            created.isoformat() if created else "",
            direction,
            account,
            f"+{number}" if str(number).isdigit() else str(number),
            sender,
            str(kinds.get(kind, kind)),
            status,
            text,
            template or "",
            " | ".join(str(p) for p in body) if isinstance(body, list) else "",
            campaign or "",
            "" if provider_id is None else str(provider_id),
            "" if code is None else str(code),
            name,
            detail,
            submitted.isoformat() if submitted else "",
            changed.isoformat() if changed else "",
        ]


def recipient_warnings(raw: str) -> list[str]:
    """What compose warns about a recipient being typed: opted out (with when and why), or a
    closed 24-hour window under the ``warn`` and ``enforce`` policies."""
    try:
        number = clean_recipient(raw)
    except ValidationError:
        return []
    warnings = []
    contact = (
        Contact.objects.filter(number=number, opted_out_at__isnull=False)
        .only("opted_out_at", "opt_out_reason")
        .first()
    )
    if contact is not None and contact.opted_out_at is not None:
        warnings.append(
            _("+%(number)s opted out on %(time)s (%(reason)s): a message to them will not be sent.")
            % {
                "number": number,
                "time": when(contact.opted_out_at),
                "reason": contact.opt_out_reason or _("no reason kept"),
            }
        )
    elif window.policy() != window.OFF and not window.state(number).is_open:
        warnings.append(
            _(
                "The customer's 24-hour window is closed: only a template message can be sure "
                "to go out."
            )
        )
    return warnings
