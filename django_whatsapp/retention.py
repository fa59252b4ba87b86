"""Data retention: delete what the project no longer needs to keep (``whatsapp_purge`` runs it;
a project's own scheduled task can call it too).

:func:`purge_older_than` deletes the messages created before a period ago that nothing will
change any more: final ones (``not_sent``, ``rejected``, ``error``, ``failed``, ``deleted``),
``delivered`` and ``seen`` ones, and received ones, with their status events, and the inbound
reports received before then. Messages still on their way (``draft`` to ``sent``) are kept
unless ``include_unsettled``.

:func:`erase_contact` deletes everything about one customer (a data-subject request): every
message with the number (both directions, any age or status) with its events, every inbound
report from it, linked to its messages or naming it in its body or query string, its contact
row (the opt-out state with it), the campaign rows rejected at an import that name it, and
every entry naming it in other messages' ``metadata``.

Rows are deleted in batches of ``batch_size`` primary keys, each batch in its own short
transaction, walking the table by primary key: memory and lock time stay bounded however many
rows there are, and an interrupted purge is simply run again. ``dry_run`` counts and deletes
nothing. Each function returns the rows deleted (or that would be) per model's plural name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import models, transaction
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from .conf import get_settings
from .metadata import forget_number
from .models import (
    FINAL_STATUSES,
    CampaignRejection,
    Contact,
    InboundReport,
    Message,
    StatusEvent,
)
from .validation import clean_recipient

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "MAX_BATCH_SIZE",
    "SETTLED",
    "erase_contact",
    "purge",
    "purge_before",
    "purge_older_than",
]

Status = Message.Status
#: Statuses no report changes any more: kept no longer than the retention period.
SETTLED = frozenset({*FINAL_STATUSES, Status.DELIVERED, Status.SEEN})
DEFAULT_BATCH_SIZE = 1000
MAX_BATCH_SIZE = 50_000

#: Called after each batch with what is being deleted, how many so far, and how many in all.
Progress = Callable[[str, int, int], None]


def purge_older_than(
    period: timedelta | None = None,
    *,
    include_unsettled: bool = False,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> Counter[str]:
    """Delete what is older than ``period`` (by default the ``RETENTION`` setting;
    ``ImproperlyConfigured`` when neither is given): see the module's docstring."""
    if period is None:
        period = get_settings().RETENTION
        if period is None:
            raise ImproperlyConfigured(
                "No period: give one, or set DJANGO_WHATSAPP['RETENTION'] (e.g. '180d')."
            )
    return purge_before(
        timezone.now() - period,
        include_unsettled=include_unsettled,
        dry_run=dry_run,
        batch_size=batch_size,
        progress=progress,
    )


def purge_before(
    cutoff: datetime,
    *,
    include_unsettled: bool = False,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> Counter[str]:
    """:func:`purge_older_than` for what was created (received) before ``cutoff``."""
    messages = Message.objects.filter(created_at__lt=cutoff)
    if not include_unsettled:
        messages = messages.filter(Q(status__in=SETTLED) | Q(direction=Message.Direction.INBOUND))
    reports = InboundReport.objects.filter(received_at__lt=cutoff)
    options: dict[str, Any] = {"dry_run": dry_run, "batch_size": batch_size, "progress": progress}
    return purge(messages, "messages", **options) + purge(reports, "inbound reports", **options)


def erase_contact(
    number: str,
    *,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> Counter[str]:
    """Erase everything about ``number`` (any form :func:`clean_recipient` takes;
    ``ValidationError`` otherwise): see the module's docstring."""
    number = clean_recipient(number)
    messages = Message.objects.filter(destination_addr=number)
    linked = InboundReport.messages.through.objects.filter(message__destination_addr=number)
    reports = InboundReport.objects.filter(
        Q(sender=number)
        | Q(pk__in=linked.values("inboundreport_id"))
        | Q(body__contains=number)
        | Q(query_string__contains=number)
    )
    options: dict[str, Any] = {"dry_run": dry_run, "batch_size": batch_size, "progress": progress}
    # Reports first: their links to the messages are how some of them are found.
    counts = purge(reports, "inbound reports", **options) + purge(messages, "messages", **options)
    counts += purge(Contact.objects.filter(number=number), "contact", **options)
    # Campaign rows rejected at an import keep the number as it was given.
    rejected = CampaignRejection.objects.filter(value__contains=number)
    counts += purge(rejected, "rejected campaign rows", **options)
    counts += _forget_in_metadata(number, dry_run=dry_run, batch_size=batch_size)
    return counts


def purge(
    queryset: QuerySet[Any],
    label: str,
    *,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> Counter[str]:
    """Delete ``queryset`` in batches of primary keys, each in its own transaction; return the
    rows deleted per model (what would be, on a dry run: with a message's status events)."""
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}")
    model: type[models.Model] = queryset.model
    total = queryset.count()
    if dry_run:
        counts: Counter[str] = Counter({_name(model): total})
        if model is Message:
            counts[_name(StatusEvent)] = StatusEvent.objects.filter(
                message__in=queryset.values("pk")
            ).count()
        return counts
    counts = Counter()
    last_pk: Any = None
    done = 0
    while True:
        page = queryset.order_by("pk")
        if last_pk is not None:
            page = page.filter(pk__gt=last_pk)
        pks = list(page.values_list("pk", flat=True)[:batch_size])
        if not pks:
            break
        last_pk = pks[-1]
        with transaction.atomic():
            _total, per_model = model._default_manager.filter(pk__in=pks).delete()
        done += per_model.get(model._meta.label, 0)
        counts.update({_name_of(label_): n for label_, n in per_model.items() if n})
        if progress is not None:
            progress(label, done, total)
    return counts


def _forget_in_metadata(number: str, *, dry_run: bool, batch_size: int) -> Counter[str]:
    """Drop every metadata entry naming ``number`` from the other messages (their own data about
    this customer), in batches; return the entries dropped (found, on a dry run)."""
    naming = (
        Message.objects.annotate(_wa_metadata=Cast("metadata", TextField()))
        .filter(_wa_metadata__contains=number)
        .order_by("pk")
    )
    dropped = 0
    last_pk = 0
    while True:
        page = list(naming.filter(pk__gt=last_pk).only("pk", "metadata")[:batch_size])
        if not page:
            break
        last_pk = page[-1].pk
        with transaction.atomic():
            for message in page:
                message.metadata, removed = forget_number(message.metadata, number)
                dropped += removed
                if removed and not dry_run:
                    Message.objects.filter(pk=message.pk).update(metadata=message.metadata)
    return Counter({"metadata entries": dropped}) if dropped else Counter()


def _name(model: type[models.Model]) -> str:
    return str(model._meta.verbose_name_plural)


def _name_of(label: str) -> str:
    """A readable name for a label in ``delete()``'s counts (``app.Model``)."""
    try:
        return _name(apps.get_model(label))
    except LookupError:
        return label
