"""A claimed message made ready for its request, or refused or made to wait before it, each
check recorded on the message (:func:`prepare_claimed`): its expiry, the opt-out, the window
policy, a campaign's sending hours, the daily limit, the ``message_sending`` receivers."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from django.utils import timezone
from django.utils.translation import gettext as _

from .. import clock, expiry, optout, signals, tier, window
from ..campaigns.hours import SendingHours, opens_at
from ..conf import WhatsAppSettings
from ..exceptions import RateLimitUnavailable, ServiceWindowClosed, WhatsAppError
from ..models import Message
from ..payloads import message_payload
from ..signing import callback_url, sign
from .record import record_send

Status = Message.Status


_SAMPLE_UUID = uuid.UUID(int=0)
#: (base URL and secrets, the sample URL, its signature): one tuple, replaced whole, so that a
#: thread never reads the parts of two different settings.
_url_template: tuple[tuple[str, tuple[str, ...]], str, str] | None = None


def many_callback_url(message_uuid: uuid.UUID, conf: WhatsAppSettings) -> str | None:
    """:func:`~django_whatsapp.signing.callback_url`, without resolving the URL for each of many
    messages: the URL resolved once per base and secret, with the message's UUID and signature
    put in."""
    global _url_template
    if not conf.CALLBACK_BASE_URL:
        return None
    key = (conf.CALLBACK_BASE_URL, conf.CALLBACK_SECRETS)
    template = _url_template
    if template is None or template[0] != key:
        sample = callback_url(_SAMPLE_UUID, conf) or ""
        template = _url_template = (
            key,
            sample,
            sign(_SAMPLE_UUID, conf.require_callback_secrets()[0]),
        )
    _key, sample, signature = template
    real = sign(message_uuid, conf.require_callback_secrets()[0])
    return sample.replace(str(_SAMPLE_UUID), str(message_uuid)).replace(signature, real)


class Prepared(NamedTuple):
    """A claimed message made ready (:func:`prepare_claimed`): its request ``payload``, or the
    ``refusal`` already recorded on it (``not_sent``, never submitted; or ``queued`` again for
    deferred work). ``raised``: the refusal is what a ``message_sending`` receiver (or building
    the payload) raised, not the opt-out, the window policy or a limit. ``waits_until``: the
    message went back to ``queued`` without a request, not to be claimed before then (its
    recipient's sending hours, or the daily limit: ``refusal`` is then
    :class:`~django_whatsapp.exceptions.DailyLimitReached`)."""

    message: Message
    payload: dict[str, Any] | None
    refusal: Exception | None = None
    raised: bool = False
    waits_until: datetime | None = None


#: The error name a message waiting for its recipient's sending hours carries (it is queued).
OUTSIDE_HOURS = "Outside sending hours"


def prepare_claimed(
    messages: Sequence[Message],
    conf: WhatsAppSettings,
    *,
    confirmation: bool = False,
    deferred: bool = False,
    hours: SendingHours | None = None,
    opted_out: Collection[str] | None = None,
) -> list[Prepared]:
    """Each claimed message with its request body, or with what refused it or made it wait,
    recorded on the message, in the order given. In turn:

    1. its expiry (:mod:`django_whatsapp.expiry`): an expired message is ``not_sent``;
    2. the opt-out (one query for them all, :func:`django_whatsapp.optout.opted_out_numbers`,
       unless the claim read it already: ``opted_out``, the numbers among them whose contact
       opted out; skipped for the opt-out's own ``confirmation``) and the window policy;
    3. ``hours``, a campaign's sending hours: a recipient outside them waits, ``queued`` with
       ``send_after`` at their next opening;
    4. ``DAILY_LIMIT`` (:mod:`django_whatsapp.tier`; one query of the contacts' windows and a
       few cache reads for them all): a new recipient over the limit ends ``not_sent`` with
       :class:`~django_whatsapp.exceptions.DailyLimitReached`, or with ``deferred`` (queued and
       campaign work) waits, ``queued``, until a place frees;
    5. the ``message_sending`` receivers.
    """
    now = clock.now()
    done: dict[int, Prepared] = {}
    live: list[tuple[int, Message]] = []
    for position, message in enumerate(messages):
        if expiry.expired(message, now):
            done[position] = _refuse(message, expiry.error(message), deferred=deferred)
        else:
            live.append((position, message))
    if confirmation or not live:
        opted_out = set()
    elif opted_out is None:
        opted_out = optout.opted_out_numbers(m.destination_addr for _p, m in live)
    passed: list[tuple[int, Message]] = []
    for position, message in live:
        refused: WhatsAppError | None = (
            optout.refusal(message) if message.destination_addr in opted_out else None
        )
        if refused is None:
            try:
                window.check(message, conf)  # SERVICE_WINDOW_POLICY: raises under "enforce"
            except ServiceWindowClosed as error:
                refused = error
        if refused is None:
            passed.append((position, message))
        else:
            done[position] = _refuse(message, refused, deferred=deferred)
    if hours is not None and passed:
        passed = _outside_hours(passed, hours, conf, now, done)
    if conf.DAILY_LIMIT is not None and not confirmation and passed:
        passed = _take_places(passed, conf, now, done, deferred=deferred)
    for position, message in passed:
        try:
            payload = message_payload(message, callback_url=many_callback_url(message.uuid, conf))
            signals.message_sending.send(sender=Message, message=message, payload=payload)
        except Exception as exc:
            vetoed = WhatsAppError(f"{type(exc).__name__}: {exc}", name="Not submitted")
            done[position] = _refuse(message, vetoed, deferred=deferred, shown=exc)
        else:
            done[position] = Prepared(message, payload)
    return [done[position] for position in range(len(messages))]


def _refuse(
    message: Message, error: WhatsAppError, *, deferred: bool, shown: Exception | None = None
) -> Prepared:
    """Record a refusal before any request: ``not_sent`` with the reason, never submitted (or,
    for deferred work and a fault that is not the message's, ``queued`` again). ``shown``: what
    a receiver raised, when ``error`` stands for it."""
    Message.objects.filter(pk=message.pk).update(submitted_at=None)
    message.submitted_at = None
    record_send(message, error, deferred=deferred)
    waits = message.send_after if message.status == Status.QUEUED else None
    return Prepared(message, None, shown or error, shown is not None, waits)


def _outside_hours(
    passed: list[tuple[int, Message]],
    hours: SendingHours,
    conf: WhatsAppSettings,
    now: datetime,
    done: dict[int, Prepared],
) -> list[tuple[int, Message]]:
    """Recipients outside their sending hours go back to ``queued`` until the hours open (one
    UPDATE per opening); returns the others."""
    waiting: defaultdict[datetime, list[tuple[int, Message]]] = defaultdict(list)
    rest = []
    for position, message in passed:
        opening = opens_at(message.destination_addr, hours, now, conf)
        if opening is None:
            rest.append((position, message))
        else:
            waiting[opening].append((position, message))
    changed = timezone.now()
    for opening, group in waiting.items():
        detail = _(
            "Outside the recipient's sending hours (%(hours)s in their own time): waits until "
            "%(when)s."
        ) % {"hours": str(hours), "when": opening.isoformat(timespec="minutes")}
        fields: dict[str, Any] = {
            "status": Status.QUEUED,
            "status_changed_at": changed,
            "submitted_at": None,
            "send_after": opening,
            "error_code": None,
            "error_name": OUTSIDE_HOURS,
            "error_message": detail,
        }
        Message.objects.filter(pk__in=[m.pk for _p, m in group], status=Status.SENDING).update(
            **fields
        )
        for position, message in group:
            for name, value in fields.items():
                setattr(message, name, value)
            done[position] = Prepared(message, None, waits_until=opening)
    return rest


def _take_places(
    passed: list[tuple[int, Message]],
    conf: WhatsAppSettings,
    now: datetime,
    done: dict[int, Prepared],
    *,
    deferred: bool,
) -> list[tuple[int, Message]]:
    """Take the recipients' places in the daily limit; refuse those over it, or all when the
    cache that counts it cannot be reached (fail closed). Returns the admitted ones."""
    numbers = [m.destination_addr for _p, m in passed]
    conversing = {n for n, state in window.states(numbers, now=now).items() if state.is_open}
    try:
        admission = tier.admit(conf, numbers, now, free=conversing)
    except RateLimitUnavailable as error:
        for position, message in passed:
            done[position] = _refuse(message, error, deferred=deferred)
        return []
    if not admission.refused:
        return passed
    over = admission.error()
    rest = []
    for position, message in passed:
        if message.destination_addr in admission.refused:
            done[position] = _refuse(message, over, deferred=deferred)
        else:
            rest.append((position, message))
    return rest
