"""Claiming: a message goes from ``draft`` or ``queued`` to ``sending`` for exactly one caller,
however many ask for it at once, before any request.

The rule reads here, in Python: a message may be claimed while it is :data:`SENDABLE`; a
campaign's messages only while the campaign runs, in id order, each once its ``send_after`` has
come (:func:`claimable`). A single message is claimed by a conditional ``UPDATE``
(:func:`move_status`); many at once by one ``UPDATE ... RETURNING``
(:mod:`django_whatsapp.fastpaths.claim`), which a campaign's claim also makes return whether each
recipient opted out (:class:`Claim`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from django.db import connections, router
from django.db.models import Q, QuerySet
from django.utils import timezone

from .. import clock
from ..conf import WhatsAppSettings, get_settings
from ..exceptions import CampaignNotRunning
from ..fastpaths import claim
from ..models import Campaign, Message
from ..signing import callback_url
from ..validation import validate_message
from .prepare import prepare_claimed

Status = Message.Status
#: The statuses from which a message may be claimed for sending.
SENDABLE = (Status.DRAFT, Status.QUEUED)


def due(moment: datetime) -> Q:
    """Messages not waiting at ``moment``: no ``send_after``, or it has come."""
    return Q(send_after__isnull=True) | Q(send_after__lte=moment)


def claimable(campaign_id: int, first_id: int, last_id: int, due_by: datetime) -> QuerySet[Message]:
    """The rule of a campaign's claim: its messages with ids in ``[first_id, last_id]`` that are
    :data:`SENDABLE` and due by ``due_by``, in the order a claim takes them (by id). A claim
    takes them only while the campaign is ``running``
    (:data:`django_whatsapp.fastpaths.claim.CLAIM_BATCH_SQL` does it in one statement)."""
    return (
        Message.objects.filter(campaign_id=campaign_id, pk__gte=first_id, pk__lte=last_id)
        .filter(status__in=SENDABLE)
        .filter(due(due_by))
        .order_by("pk")
    )


def move_status(
    message: Message, sources: Sequence[str], status: str, now: datetime, **extra: Any
) -> bool:
    """Move the row from one of ``sources`` to ``status``, storing the validated content, in one
    conditional ``UPDATE``: of concurrent callers exactly one gets True (the claim)."""
    moved = Message.objects.filter(pk=message.pk, status__in=sources).update(
        status=status,
        status_changed_at=now,
        source_addr=message.source_addr,
        destination_addr=message.destination_addr,
        text=message.text,
        file_url=message.file_url,
        template_params=message.template_params,
        **extra,
    )
    return bool(moved)


def ensure_campaign_running(message: Message) -> None:
    """Raise :class:`~django_whatsapp.exceptions.CampaignNotRunning` for a message of a
    campaign that is not ``running``: only its running campaign sends it (its engine keeps the
    pause, the cancel and the rate limit)."""
    if message.campaign_id is None:
        return
    campaign = Campaign.objects.filter(pk=message.campaign_id).first()
    if campaign is not None and campaign.status != Campaign.Status.RUNNING:
        raise CampaignNotRunning(campaign)


def claim_for_sending(
    message: Message,
    conf: WhatsAppSettings | None = None,
    *,
    confirmation: bool = False,
    deferred: bool = False,
) -> dict[str, Any] | None:
    """Save (when unsaved), validate and claim a message; return the request body to submit, or
    ``None`` when another caller has it or it is not ``draft`` or ``queued`` (it is then
    refreshed). Raises :class:`~django_whatsapp.exceptions.CampaignNotRunning` (nothing
    changed) for a message of a campaign that is not running. Sends ``message_sending``; a
    receiver's exception marks the message ``not_sent`` and is raised. Raises
    ``ValidationError`` (nothing stored or claimed) for an invalid message.

    A message to an opted-out contact, or refused by the window policy, is refused here
    (``not_sent`` with :class:`~django_whatsapp.exceptions.OptedOut` or
    :class:`~django_whatsapp.exceptions.ServiceWindowClosed`, ``None`` returned), the opt-out
    unless ``confirmation`` says it is the opt-out's own confirmation
    (:func:`django_whatsapp.optout.confirm`). So is an expired message
    (:class:`~django_whatsapp.exceptions.MessageExpired`). The checks are
    :func:`prepare_claimed`'s; ``deferred`` (queued work) makes a message over the daily limit
    wait (``queued``) instead of failing.
    """
    conf = conf or get_settings(message.account)
    callback_url(message.uuid, conf)  # a configuration error surfaces before any row is written
    if message.pk is None:
        validate_message(message)
        message.save()
    if message.status not in SENDABLE:
        return None
    ensure_campaign_running(message)
    validate_message(message)
    now = timezone.now()
    if not move_status(message, SENDABLE, Status.SENDING, now, submitted_at=now):
        message.refresh_from_db()
        return None
    message.status, message.status_changed_at, message.submitted_at = Status.SENDING, now, now
    [ready] = prepare_claimed([message], conf, confirmation=confirmation, deferred=deferred)
    if ready.raised and ready.refusal is not None:
        raise ready.refusal
    return ready.payload


def claim_messages(messages: Sequence[Message], now: datetime | None = None) -> list[Message]:
    """Claim stored messages (``draft``/``queued`` -> ``sending``) in ONE statement; return the
    claimed ones, in the order given, updated in place. A message another caller has (or that
    is no longer sendable) is refreshed and left out: of concurrent callers, each message goes
    to exactly one. Nothing is validated and ``message_sending`` is not sent here (see
    :func:`prepare_claimed`)."""
    if not messages:
        return []
    now = now or timezone.now()
    taken = claim.claim_ids(
        router.db_for_write(Message),
        [m.pk for m in messages],
        now=now,
        sendable=SENDABLE,
        sending=Status.SENDING,
    )
    claimed = []
    for message in messages:
        if message.pk in taken:
            message.status, message.status_changed_at, message.submitted_at = (
                Status.SENDING,
                now,
                now,
            )
            claimed.append(message)
        else:
            message.refresh_from_db()
    return claimed


def _json(field: Any, value: Any, connection: Any) -> Any:
    """A JSON column's value as read by a raw query, decoded as the ORM would."""
    return field.from_db_value(value, None, connection)


class Claim(NamedTuple):
    """A campaign's claimed messages (:func:`claim_campaign`), and the numbers among them whose
    contact opted out (as :func:`django_whatsapp.optout.opted_out_numbers` finds them), for
    :func:`~django_whatsapp.sending.prepare_claimed` to refuse without a query of its own."""

    messages: list[Message]
    opted_out: set[str]


def claim_batch(
    campaign: Any,
    first_id: int,
    last_id: int,
    limit: int,
    now: datetime | None = None,
    *,
    due_by: datetime | None = None,
) -> list[Message]:
    """Claim (``draft``/``queued`` -> ``sending``) at most ``limit`` messages of ``campaign``
    with ids in ``[first_id, last_id]``, in ONE statement, and only while the campaign is
    ``running``; return them with their content filled in from the campaign, ready for
    :func:`~django_whatsapp.payloads.message_payload`. Of concurrent callers, each message goes
    to exactly one. ``message_sending`` is not sent here (see the campaign engine). A message
    whose ``send_after`` is later than ``due_by`` (by default the clock's time,
    :func:`django_whatsapp.clock.now`) waits: it is not claimed. (:func:`claimable` is the rule;
    :func:`claim_campaign` also says who opted out.)"""
    return claim_campaign(campaign, first_id, last_id, limit, now, due_by=due_by).messages


def claim_campaign(
    campaign: Any,
    first_id: int,
    last_id: int,
    limit: int,
    now: datetime | None = None,
    *,
    due_by: datetime | None = None,
) -> Claim:
    """:func:`claim_batch`, with the numbers of the claimed messages whose contact opted out,
    read by the same statement."""
    now = now or timezone.now()
    due_by = due_by or clock.now()
    alias = router.db_for_write(Message)
    connection = connections[alias]
    rows = claim.claim_campaign_batch(
        alias,
        campaign_id=campaign.pk,
        first_id=first_id,
        last_id=last_id,
        limit=limit,
        now=now,
        due_by=due_by,
        sendable=SENDABLE,
        sending=Status.SENDING,
    )
    uuid_field = Message._meta.get_field("uuid")
    params_field = Message._meta.get_field("template_params")
    metadata_field = Message._meta.get_field("metadata")
    tags_field = Message._meta.get_field("tags")
    claimed = []
    opted_out = set()
    for row in sorted(rows):
        (
            pk,
            uuid,
            destination,
            template_params,
            attempts,
            metadata,
            tags,
            target_type,
            target,
            expires_at,
            refused,
        ) = row
        message = Message(
            pk=pk,
            uuid=uuid_field.to_python(uuid),
            campaign=campaign,
            account=campaign.account,
            message_type=campaign.message_type,
            source_addr=campaign.source_addr,
            destination_addr=destination,
            text=campaign.text,
            file_url=campaign.file_url,
            template=campaign.template,
            template_params=_json(params_field, template_params, connection),
            metadata=_json(metadata_field, metadata, connection),
            tags=_json(tags_field, tags, connection),
            target_content_type_id=target_type,
            target_object_id=target,
            attempts=attempts,
            status=Status.SENDING,
            status_changed_at=now,
            submitted_at=now,
            expires_at=_moment(expires_at),
        )
        message._state.adding = False
        message._state.db = alias
        claimed.append(message)
        if refused:
            opted_out.add(destination)
    return Claim(claimed, opted_out)


def _moment(value: Any) -> datetime | None:
    """A datetime column as a raw query reads it (SQLite: text in UTC), made aware."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return timezone.make_aware(moment, UTC) if timezone.is_naive(moment) else moment
