"""The 24-hour customer-service window.

WhatsApp takes a free-form message (text or image) to a customer only within 24 hours of the
customer's last message to the business; after that, only a template. The app knows when each
customer last wrote from the :class:`~django_whatsapp.models.Contact` row that
:mod:`django_whatsapp.inbound` updates on every received message. When the gateway refuses a
message with :class:`~django_whatsapp.exceptions.ServiceWindowClosed`, the services call
:func:`mark_closed`: the window then stays closed until the customer writes again, whatever the
clock says (the gateway knows better).

``DJANGO_WHATSAPP["SERVICE_WINDOW_POLICY"]`` decides what a send does when the window is closed:

``off`` (default)
    nothing is checked and nothing is queried: the gateway decides.
``warn``
    the message is sent anyway; a warning is logged (and the admin shows one).
``enforce``
    a text or image is refused here, before any request: :func:`check` raises
    ``ServiceWindowClosed``, and the services store the message as ``not_sent`` with that error
    kept in ``error_name``/``error_message`` (as if the gateway had refused it, so
    ``message_failed`` is sent and the admin explains it). A number that never wrote has no
    open window.

Templates are never checked: they are what may be sent when the window is closed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import router
from django.db.models import Q
from django.utils import timezone

from .conf import WhatsAppSettings, get_settings
from .exceptions import ServiceWindowClosed
from .fastpaths import contact as contact_fastpath
from .models import Contact, Message
from .numbers import mask_number, normalize_number

logger = logging.getLogger("django_whatsapp.window")

#: How long after the customer's last message a free-form message may be sent.
WINDOW = timedelta(hours=24)
OFF, WARN, ENFORCE = "off", "warn", "enforce"
#: The message types the window restricts.
FREE_FORM = (Message.MessageType.TEXT, Message.MessageType.MEDIA)
LOCAL_ERROR_NAME = "Service window closed"


@dataclass(frozen=True)
class WindowState:
    """What the app knows of one contact's window at ``now``."""

    number: str
    last_inbound_at: datetime | None
    closed_at: datetime | None
    now: datetime

    @property
    def closed_by_gateway(self) -> bool:
        """The gateway refused a free-form message after the customer last wrote."""
        return self.closed_at is not None and (
            self.last_inbound_at is None or self.closed_at >= self.last_inbound_at
        )

    @property
    def is_open(self) -> bool:
        if self.last_inbound_at is None or self.closed_by_gateway:
            return False
        return self.now < self.last_inbound_at + WINDOW

    @property
    def closes_at(self) -> datetime | None:
        """When the open window closes (``None`` when it is not open)."""
        return self.last_inbound_at + WINDOW if self.is_open and self.last_inbound_at else None

    @property
    def remaining(self) -> timedelta | None:
        closes_at = self.closes_at
        return closes_at - self.now if closes_at is not None else None


def policy(conf: WhatsAppSettings | None = None) -> str:
    """``SERVICE_WINDOW_POLICY``, read now: ``off``, ``warn`` or ``enforce``."""
    return (conf or get_settings()).SERVICE_WINDOW_POLICY


def applies_to(message: Message) -> bool:
    """Whether the window restricts this message: an outbound text or image."""
    return message.direction != Message.Direction.INBOUND and message.message_type in FREE_FORM


def state(number: str, *, now: datetime | None = None) -> WindowState:
    """The window of the contact with this number (written any way)."""
    return states([number], now=now)[number]


def _read(number: str) -> str:
    try:
        return normalize_number(number)
    except ValidationError:
        return number  # no such contact: a window that never opened


def states(numbers: Iterable[str], *, now: datetime | None = None) -> dict[str, WindowState]:
    """The windows of several contacts, in one query, by the numbers as given (each read with
    :func:`~django_whatsapp.numbers.normalize_number`)."""
    now = now or timezone.now()
    wanted = {number: _read(number) for number in dict.fromkeys(numbers)}
    known = {
        number: (last, closed)
        for number, last, closed in Contact.objects.filter(
            number__in=set(wanted.values())
        ).values_list("number", "last_inbound_at", "window_closed_at")
    }
    return {
        given: WindowState(number, *known.get(number, (None, None)), now=now)
        for given, number in wanted.items()
    }


def closed_error(window: WindowState) -> ServiceWindowClosed:
    """The error a message gets when ``enforce`` refuses it (its text names the 24 hours, so it
    reads like the gateway's own refusal wherever errors are explained)."""
    if window.last_inbound_at is None:
        last = "the customer has never written to this number"
    else:
        last = f"the customer last wrote at {window.last_inbound_at.isoformat(timespec='seconds')}"
    return ServiceWindowClosed(
        f"Not sent: more than 24 hours have passed since the customer last replied ({last}), so "
        "only a template message can be sent. Refused before sending because "
        "SERVICE_WINDOW_POLICY is 'enforce'.",
        name=LOCAL_ERROR_NAME,
        body={
            "policy": ENFORCE,
            "last_inbound_at": window.last_inbound_at.isoformat()
            if window.last_inbound_at
            else None,
            "closed_by_gateway": window.closed_by_gateway,
        },
    )


def closed_for(message: Message, conf: WhatsAppSettings | None = None) -> WindowState | None:
    """The closed window this message would go out into, or ``None`` (window open, a template,
    an inbound message, or the policy is ``off``: then nothing is queried)."""
    if policy(conf) == OFF or not applies_to(message):
        return None
    window = state(message.destination_addr)
    return None if window.is_open else window


def check(message: Message, conf: WhatsAppSettings | None = None) -> str | None:
    """Apply ``SERVICE_WINDOW_POLICY`` to a message about to be sent (the services call it
    before any request). Raises ``ServiceWindowClosed`` under ``enforce``; under ``warn`` logs
    and returns the warning; returns ``None`` when there is nothing to say."""
    conf = conf or get_settings()
    window = closed_for(message, conf)
    if window is None:
        return None
    if conf.SERVICE_WINDOW_POLICY == ENFORCE:
        logger.info(
            "WhatsApp message %s refused: the 24-hour window of %s is closed",
            message.pk,
            mask_number(message.destination_addr),
        )
        raise closed_error(window)
    logger.warning(
        "The 24-hour window of %s is closed: WhatsApp may refuse message %s; only a template is "
        "sure to go out.",
        mask_number(message.destination_addr),
        message.pk,
    )
    return (
        f"The 24-hour window of +{message.destination_addr} is closed: WhatsApp may refuse "
        f"message {message.pk}; only a template is sure to go out."
    )


def mark_closed(number: str, *, at: datetime | None = None) -> bool:
    """The gateway said the window of ``number`` is closed: keep it closed until the customer
    writes again. Returns whether the app knew the contact (one that never wrote has no open
    window anyway, so nothing needs storing for it)."""
    return bool(Contact.objects.filter(number=number).update(window_closed_at=at or timezone.now()))


def record_inbound(number: str, at: datetime, *, name: str = "") -> None:
    """The customer ``number`` wrote at ``at``: the window opens (or stays open) until 24 hours
    later. Safe with concurrent calls, and with reports arriving out of order (the latest wins).
    A name given replaces the one kept.

    One statement on PostgreSQL and SQLite (:mod:`django_whatsapp.fastpaths.contact`); elsewhere
    :func:`record_inbound_by_rule`, which it equals."""
    alias = router.db_for_write(Contact)
    if contact_fastpath.available(alias):
        contact_fastpath.record_inbound(alias, number, at, name[:255], now=timezone.now())
        return
    record_inbound_by_rule(number, at, name=name)


def record_inbound_by_rule(number: str, at: datetime, *, name: str = "") -> None:
    """The rule of :func:`record_inbound`, in the ORM: on every database."""
    contact, created = Contact.objects.get_or_create(
        number=number, defaults={"last_inbound_at": at, "name": name[:255]}
    )
    if created:
        return
    Contact.objects.filter(pk=contact.pk).filter(
        Q(last_inbound_at__isnull=True) | Q(last_inbound_at__lt=at)
    ).update(last_inbound_at=at, updated_at=timezone.now())
    if name and name[:255] != contact.name:
        Contact.objects.filter(pk=contact.pk).update(name=name[:255])
