"""A message's expiry: not requested by its ``expires_at``, it is not sent at all.

Every send service, ``send_bulk`` and ``create_campaign`` take ``expires_at=`` (an aware
datetime) or ``expires_in=`` (a ``timedelta`` from now, by :func:`django_whatsapp.clock.now`);
:func:`clean` turns them into the one time stored on the message (and on the campaign, which
gives it to each of its messages).

The check is where every path makes a claimed message ready for its request
(``sending.prepare_claimed``): a message whose time has passed ends ``not_sent`` with
:class:`~django_whatsapp.exceptions.MessageExpired`, with no request, whatever held it back (a
queue, a campaign behind others, an account on hold, an outage, the daily limit, the night in
the recipient's time zone). Messages that wait are also swept when their time passes
(:func:`sweep`): a campaign's tick sweeps its recipients, and a queued message's task runs again
at its expiry while its account is held.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from . import clock
from .exceptions import MessageExpired
from .models import Message

logger = logging.getLogger("django_whatsapp")

__all__ = ["clean", "error", "expired", "sweep"]

Status = Message.Status
#: The statuses a message waits in before it is claimed.
WAITING = (Status.DRAFT, Status.QUEUED)


def clean(expires_at: Any = None, expires_in: Any = None) -> datetime | None:
    """The expiry a caller asked for: ``expires_at`` (an aware datetime) or ``expires_in`` (a
    positive ``timedelta`` from now), or ``None`` for neither. Raises ``ValidationError`` (key
    ``expires_at``) for both at once, a naive datetime, or anything else."""
    if expires_at is None and expires_in is None:
        return None
    if expires_at is not None and expires_in is not None:
        raise ValidationError(
            {"expires_at": _("Give expires_at or expires_in, not both.")}, code="both"
        )
    if expires_in is not None:
        if not isinstance(expires_in, timedelta) or expires_in <= timedelta(0):
            raise ValidationError(
                {"expires_at": _("expires_in must be a timedelta longer than zero.")},
                code="invalid",
            )
        return clock.now() + expires_in
    if not isinstance(expires_at, datetime):
        raise ValidationError(
            {"expires_at": _("expires_at must be a datetime with its time zone.")}, code="invalid"
        )
    if timezone.is_naive(expires_at):
        raise ValidationError(
            {
                "expires_at": _(
                    "expires_at has no time zone: give an aware datetime (for example "
                    "timezone.now() + timedelta(hours=1)), so that it means one moment."
                )
            },
            code="naive",
        )
    return expires_at


def expired(message: Message, now: datetime | None = None) -> bool:
    """Whether the message's expiry has passed (``now``: the clock's time)."""
    if message.expires_at is None:
        return False
    return message.expires_at <= (now or clock.now())


def error(message: Message) -> MessageExpired:
    """The error an expired message is refused with; its text names the expiry."""
    when = message.expires_at.isoformat(timespec="seconds") if message.expires_at else "?"
    return MessageExpired(
        _("Not requested before it expired at %(when)s: it is not sent late.") % {"when": when},
        body={"expires_at": when},
    )


def sweep(messages: QuerySet[Message], now: datetime | None = None) -> int:
    """The messages of ``messages`` still waiting (``draft`` or ``queued``) whose expiry has
    passed become ``not_sent`` with the ``Expired`` error, in one UPDATE (no request; like a
    cancel's sweep, no event or signal per message). Returns how many."""
    now = now or clock.now()
    swept = messages.filter(status__in=WAITING, expires_at__lte=now).update(
        status=Status.NOT_SENT,
        status_changed_at=timezone.now(),
        submitted_at=None,
        error_code=None,
        error_name=MessageExpired.default_name,
        error_message=_("Not requested before it expired: it is not sent late."),
    )
    if swept:
        logger.info("WhatsApp: %d waiting message(s) expired; not sent", swept)
    return swept
