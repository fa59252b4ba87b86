"""One message sent now, in the caller's thread: claimed, submitted and recorded
(:func:`send_now`); and the one message an opted-out contact gets, the opt-out's confirmation
(:func:`send_opt_out_confirmation`)."""

from __future__ import annotations

import logging
from typing import Any

from ..client import WhatsAppClient
from ..conf import account_for_sender, get_settings
from ..models import Message, Template
from ..numbers import mask_number
from .claim import claim_for_sending
from .clients import get_client
from .record import record_send

logger = logging.getLogger("django_whatsapp")


def send_now(
    message: Message,
    *,
    client: WhatsAppClient | None = None,
    confirmation: bool = False,
    deferred: bool = False,
) -> Message:
    """Claim, submit and record one message now, whatever ``SEND_ASYNC`` says (see
    :func:`django_whatsapp.services.send_message`), through the message's account.
    ``confirmation`` is for :func:`django_whatsapp.optout.confirm` only (see
    :func:`claim_for_sending`); ``deferred`` for queued work that can send the message later
    (see :func:`record_send`)."""
    conf = get_settings(message.account)
    # A configuration error (no API key, no callback secret) surfaces before any row is written.
    client = client or get_client(conf)
    payload = claim_for_sending(message, conf, confirmation=confirmation, deferred=deferred)
    if payload is None:
        return message
    try:
        result = client.send(payload)
    except Exception as exc:
        return record_send(message, exc, deferred=deferred)
    return record_send(message, result, deferred=deferred)


def send_opt_out_confirmation(inbound: Message, confirmation: dict[str, Any]) -> Message | None:
    """Send ``OPT_OUT_CONFIRMATION`` (``confirmation``) to the customer who wrote ``inbound``,
    now, through the account whose sender they wrote to: the one message an opted-out contact
    gets. A failure is logged and kept on the message; it never undoes the opt-out or the
    inbound message."""
    account = account_for_sender(inbound.source_addr)
    outgoing = Message(
        destination_addr=inbound.destination_addr,
        source_addr=get_settings(account).DEFAULT_SOURCE_ADDR or inbound.source_addr or "",
        account=account,
    )
    if "text" in confirmation:
        outgoing.message_type, outgoing.text = Message.MessageType.TEXT, confirmation["text"]
    else:
        template = Template.objects.filter(name=confirmation["template"], is_active=True).first()
        if template is None:
            logger.error(
                "WhatsApp opt-out confirmation not sent: no active template %r",
                confirmation["template"],
            )
            return None
        outgoing.message_type, outgoing.template = Message.MessageType.TEMPLATE, template
        outgoing.template_params = {
            "body": [str(p) for p in confirmation["params"]],
            "header": confirmation.get("header"),
        }
    try:
        return send_now(outgoing, confirmation=True)
    except Exception:
        # A configuration error, an invalid message or a message_sending receiver's veto: the
        # customer's message is stored and the opt-out holds whatever becomes of the reply.
        logger.exception(
            "WhatsApp opt-out confirmation to %s failed", mask_number(inbound.destination_addr)
        )
        return None
