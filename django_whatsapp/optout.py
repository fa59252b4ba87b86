"""Opt-outs: a customer who asks for no more messages gets none until they ask again.

A contact is opted out while ``Contact.opted_out_at`` is set. An inbound text equal to one of
``OPT_OUT_KEYWORDS`` opts its sender out (:func:`handle_inbound`, called by
:mod:`django_whatsapp.inbound` for every new message); one of ``OPT_IN_KEYWORDS`` back in. An
operator does the same in the admin (:func:`opt_out` / :func:`opt_in` with ``user=``).

Matching: the text and each keyword are normalised the same way (:func:`normalize`): Unicode
NFKC (full-width ``\uff33\uff34\uff2f\uff30`` is ``STOP``), invisible format characters
removed (zero-width spaces and joiners, soft hyphens, byte-order marks: ``S\u200bTOP`` is
``STOP``), punctuation, symbols and spaces stripped from both ends, inner runs of white space
(tabs, new lines) made one space, case-folded. So ``"Stop!"``, ``" stop "``, ``"«СТОП»"`` and
``"stop."`` match ``STOP``; ``"please stop"`` and ``"stop it"`` do not (the whole text must be
the keyword).

Numbers: every function here takes a number written any way and reads it with
:func:`django_whatsapp.numbers.normalize_number`, so an opt-out holds for every spelling of it.

History: every opt-out and opt-in that changed a contact is kept as a
:class:`~django_whatsapp.models.ConsentChange`, with the customer's message and the inbound report
that asked for it (a keyword), or the operator (``user=``).

Sending: :func:`refusal` is asked by :func:`django_whatsapp.sending.claim_for_sending` for every
message, whatever the path (single, bulk, reply, retry, queued, campaign): a message to an
opted-out contact is stored ``not_sent`` with :class:`~django_whatsapp.exceptions.OptedOut` as
its error, and no request is made. A batch (a bulk send, a campaign import) asks
:func:`opted_out_numbers` once for all its numbers.

The opt-out is the contact's, for every account of the project: a customer who says STOP to one
of the project's numbers gets nothing from any of them.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import signals
from .conf import WhatsAppSettings, get_settings
from .exceptions import OptedOut
from .inputs import check_input
from .models import ConsentChange, Contact, InboundReport, Message
from .numbers import normalize_number

logger = logging.getLogger("django_whatsapp.optout")

OUT, IN = "out", "in"
#: ``error_name`` of a message refused because its recipient opted out.
ERROR_NAME = "Opted out"


def normalize(text: str) -> str:
    """``text`` as keywords are compared: NFKC, format characters (Unicode category ``Cf``:
    zero-width spaces, soft hyphens...) removed, trimmed of spaces, punctuation and symbols at
    both ends, inner white space collapsed to one space, case-folded."""
    text = unicodedata.normalize("NFKC", text or "")
    text = "".join(char for char in text if unicodedata.category(char) != "Cf")
    start, end = 0, len(text)
    while start < end and _trimmed(text[start]):
        start += 1
    while end > start and _trimmed(text[end - 1]):
        end -= 1
    return " ".join(text[start:end].split()).casefold()


def _trimmed(char: str) -> bool:
    return char.isspace() or unicodedata.category(char)[0] in "PSZC"


def keyword_action(text: str, conf: WhatsAppSettings | None = None) -> str | None:
    """``"out"`` when ``text`` is an opt-out keyword, ``"in"`` when an opt-in one, else None."""
    conf = conf or get_settings()
    said = normalize(text)
    if not said:
        return None
    if said in {normalize(word) for word in conf.OPT_OUT_KEYWORDS}:
        return OUT
    if said in {normalize(word) for word in conf.OPT_IN_KEYWORDS}:
        return IN
    return None


def _read(number: Any, *, national: bool = True) -> str | None:
    try:
        return normalize_number(number, national=national)
    except ValidationError:
        return None


def is_opted_out(number: str) -> bool:
    """Whether the contact with this number (written any way) is opted out now."""
    digits = _read(number)
    return (
        digits is not None
        and Contact.objects.filter(number=digits, opted_out_at__isnull=False).exists()
    )


def opted_out_numbers(numbers: Iterable[str]) -> set[str]:
    """The numbers among ``numbers`` (normalised digits, as in ``destination_addr``; read as
    stored numbers are) whose contact is opted out, in one query: what a bulk send or a
    campaign import skips. A number that cannot be read is not among them."""
    given = list(dict.fromkeys(str(number) for number in numbers))
    if not given:
        return set()
    wanted = {number: _read(number, national=False) or number for number in given}
    found = set(
        Contact.objects.filter(
            number__in=set(wanted.values()), opted_out_at__isnull=False
        ).values_list("number", flat=True)
    )
    return {number for number, digits in wanted.items() if digits in found}


def refusal(message: Message) -> OptedOut | None:
    """The error that refuses ``message`` because its recipient opted out, or None. Inbound
    messages are never refused."""
    if message.direction == Message.Direction.INBOUND:
        return None
    number = _read(message.destination_addr, national=message.pk is None)
    contact = (
        Contact.objects.filter(
            number=number or message.destination_addr, opted_out_at__isnull=False
        )
        .only("opted_out_at", "opt_out_reason")
        .first()
    )
    at = contact.opted_out_at if contact is not None else None
    if contact is None or at is None:
        return None
    when = at.isoformat(timespec="seconds")
    reason = contact.opt_out_reason or "no reason kept"
    return OptedOut(
        f"Not sent: +{message.destination_addr} opted out at {when} ({reason}). "
        "Nothing is sent to them until they opt in again.",
        name=ERROR_NAME,
        body={"opted_out_at": at.isoformat(), "reason": reason},
    )


def _history(
    contact: Contact,
    kind: str,
    at: Any,
    *,
    reason: str = "",
    message: Message | None = None,
    report: InboundReport | None = None,
    user: Any = None,
) -> None:
    """Keep one opt-out or opt-in with what asked for it (:class:`ConsentChange`)."""
    ConsentChange.objects.create(
        contact=contact,
        kind=kind,
        at=at,
        reason=reason[:255],
        said=(message.text or "")[:255] if message is not None else "",
        message=message,
        report=report,
        user=user if getattr(user, "pk", None) is not None else None,
    )


def opt_out(
    number: str,
    *,
    reason: str = "",
    message: Message | None = None,
    user: Any = None,
    report: InboundReport | None = None,
) -> tuple[Contact, bool]:
    """Opt the contact with this number (written any way) out, created when unknown. Returns the
    contact and whether it changed (False when it was opted out already: the first opt-out is
    kept). Sends ``contact_opted_out`` and keeps the change in the history (with ``message``,
    the ``report`` it came in, or the operator ``user``) when it changed. Raises
    ``ValidationError`` for what is not a phone number, or a reason that cannot be stored."""
    check_input(reason)
    return _opt_out(
        normalize_number(number), reason=reason, message=message, user=user, report=report
    )


def _opt_out(
    number: str,
    *,
    reason: str = "",
    message: Message | None = None,
    user: Any = None,
    report: InboundReport | None = None,
) -> tuple[Contact, bool]:
    """:func:`opt_out` for a number already normalised."""
    now = timezone.now()
    with transaction.atomic():
        contact, _created = Contact.objects.get_or_create(number=number)
        changed = bool(
            Contact.objects.filter(pk=contact.pk, opted_out_at__isnull=True).update(
                opted_out_at=now,
                opt_out_reason=reason[:255],
                opt_out_message=message,
                updated_at=now,
            )
        )
        if changed:
            _history(
                contact,
                ConsentChange.Kind.OPTED_OUT,
                now,
                reason=reason,
                message=message,
                report=report,
                user=user,
            )
    contact.refresh_from_db()
    if changed:
        logger.info("WhatsApp contact %s opted out (%s)", contact.pk, reason or "no reason")
        signals.contact_opted_out.send(sender=Message, contact=contact, message=message, user=user)
    return contact, changed


def opt_in(
    number: str,
    *,
    message: Message | None = None,
    user: Any = None,
    report: InboundReport | None = None,
) -> tuple[Contact | None, bool]:
    """Opt the contact with this number (written any way) back in. Returns the contact (None when
    unknown) and whether it changed. Sends ``contact_opted_in`` and keeps the change in the
    history when it changed. Raises ``ValidationError`` for what is not a phone number."""
    return _opt_in(normalize_number(number), message=message, user=user, report=report)


def _opt_in(
    number: str,
    *,
    message: Message | None = None,
    user: Any = None,
    report: InboundReport | None = None,
) -> tuple[Contact | None, bool]:
    """:func:`opt_in` for a number already normalised."""
    now = timezone.now()
    with transaction.atomic():
        changed = bool(
            Contact.objects.filter(number=number)
            .filter(~Q(opted_out_at=None))
            .update(opted_out_at=None, opt_out_reason="", opt_out_message=None, updated_at=now)
        )
        contact = Contact.objects.filter(number=number).first()
        if changed and contact is not None:
            _history(
                contact,
                ConsentChange.Kind.OPTED_IN,
                now,
                message=message,
                report=report,
                user=user,
            )
    if changed and contact is not None:
        logger.info("WhatsApp contact %s opted in", contact.pk)
        signals.contact_opted_in.send(sender=Message, contact=contact, message=message, user=user)
    return contact, changed


def handle_inbound(
    message: Message,
    conf: WhatsAppSettings | None = None,
    *,
    confirm: Callable[[Message, dict[str, Any]], object] | None = None,
    report: InboundReport | None = None,
) -> str | None:
    """Act on an inbound message that is an opt-out or opt-in keyword; returns ``"out"``,
    ``"in"`` or None. The change is kept in the history with the message and the ``report`` it
    came in. When a contact opts out and ``OPT_OUT_CONFIRMATION`` is set, ``confirm`` is called
    with the inbound message and that setting
    (:func:`django_whatsapp.sending.send_opt_out_confirmation` sends it)."""
    conf = conf or get_settings()
    action = keyword_action(message.text, conf)
    # The customer's number as stored (normalised when it came in).
    number = normalize_number(message.destination_addr, national=False)
    if action == OUT:
        _contact, changed = _opt_out(
            number,
            reason=f"keyword: {message.text.strip()[:200]}",
            message=message,
            report=report,
        )
        if changed and conf.OPT_OUT_CONFIRMATION is not None and confirm is not None:
            confirm(message, conf.OPT_OUT_CONFIRMATION)
    elif action == IN:
        _opt_in(number, message=message, report=report)
    return action
