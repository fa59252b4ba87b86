"""Data retention: delete what the project no longer needs to keep (``whatsapp_purge`` runs it;
a project's own scheduled task can call it too).

:func:`purge_older_than` deletes the messages created before a period ago that nothing will
change any more: final ones (``not_sent``, ``rejected``, ``error``, ``failed``, ``deleted``),
``delivered`` and ``seen`` ones, and received ones, with their status events, and the inbound
reports received before then. Messages still on their way (``draft`` to ``sent``) are kept
unless ``include_unsettled``.

:func:`erase_contact` erases everything about one customer (a data-subject request), found by
the normalised number, never by a part of it: see :func:`erase_contact`.

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
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import models, transaction
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .conf import get_settings
from .metadata import forget
from .models import (
    FINAL_STATUSES,
    CampaignRejection,
    ConsentChange,
    Contact,
    Conversation,
    InboundReport,
    Message,
    StatusEvent,
)
from .numbers import is_whole_number, mentions, near_pattern, normalize_number

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
        if model is Contact:
            counts[_name(ConsentChange)] = ConsentChange.objects.filter(
                contact__in=queryset.values("pk")
            ).count()
        return +counts
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


# -- one customer: a data-subject erasure ---------------------------------------------------------

#: What a number becomes in a text that is kept (another person's report, a log entry).
ERASED = "[erased]"
#: The counts' names for what is redacted rather than deleted start with this.
REDACTED = "redacted "


def erase_contact(
    number: str,
    *,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> Counter[str]:
    """Erase everything about the customer ``number`` (written any way; what is not a whole
    number, such as ``50`` or ``+380 50 444``, raises ``ValidationError``). Everything is found
    by the normalised number written any way (:func:`~django_whatsapp.numbers.mentions`), never
    by a part of it: another number that contains its digits is not touched.

    Deleted: every message with the number (both directions, any age or status) with its status
    events; its contact, with the opt-out state and its history; every inbound report from it
    (its sender, or linked to its messages only, or one nobody could read that names it); the
    campaign rows rejected at an import that name it; the admin's log entries about those
    messages, reports and contact, or whose title names it.

    Redacted: where the number is part of someone else's data, the entry naming it is dropped
    from other messages' ``metadata``, ``tags``, template parameters and status events' payloads,
    and the number becomes ``[erased]`` in other messages' texts, other people's inbound reports
    and other admin log entries.

    ``dry_run`` counts and changes nothing (the command shows those counts before it asks).
    Returns the counts: rows deleted per model's plural name (with the rows their deletion took
    along), entries dropped, and rows redacted (names starting with ``"redacted "``)."""
    number = normalize_number(number)
    if not is_whole_number(number):
        raise ValidationError(
            _(
                "+%(number)s is only a part of a number (one that can only be dialled "
                "locally): an erasure takes a whole number."
            ),
            code="fragment",
            params={"number": number},
        )
    found = mentions(number)
    near = near_pattern(number)
    options: dict[str, Any] = {"dry_run": dry_run, "batch_size": batch_size, "progress": progress}
    counts: Counter[str] = Counter()
    theirs = Message.objects.filter(destination_addr=number)
    message_pks = list(theirs.order_by("pk").values_list("pk", flat=True))
    contact_pks = list(Contact.objects.filter(number=number).values_list("pk", flat=True))
    # Reports first: their links to the messages are how some of them are found.
    report_pks, counts["redacted inbound reports"] = _reports(number, found, near, dry_run)
    logged = _log_entries_about(message_pks, contact_pks, report_pks, found, near)
    counts += purge(InboundReport.objects.filter(pk__in=report_pks), "inbound reports", **options)
    counts += purge(theirs, "messages", **options)
    counts += purge(Contact.objects.filter(pk__in=contact_pks), "contacts", **options)
    rejected = [
        pk
        for pk, value in CampaignRejection.objects.filter(value__regex=near).values_list(
            "pk", "value"
        )
        if found.search(value)
    ]
    counts += purge(CampaignRejection.objects.filter(pk__in=rejected), "rejected rows", **options)
    if logged is not None:
        about, redact = logged
        counts += purge(about, "log entries", **options)
        counts["redacted log entries"] = _redact_texts(
            redact, ("object_repr", "change_message"), found, dry_run, batch_size
        )
    others = Message.objects.exclude(destination_addr=number)
    for field, name in (
        ("metadata", "metadata entries"),
        ("tags", "tags"),
        ("template_params", "template parameters"),
    ):
        counts[name] = _forget_in(others, field, found, near, dry_run, batch_size)
    events = StatusEvent.objects.exclude(message__destination_addr=number)
    counts["event payload entries"] = _forget_in(
        events, "payload", found, near, dry_run, batch_size
    )
    counts["redacted message texts"] = _redact_texts(
        others.filter(text__regex=near), ("text",), found, dry_run, batch_size
    )
    return +counts  # only what there was


def _reports(number: str, found: Any, near: str, dry_run: bool) -> tuple[list[int], int]:
    """The inbound reports to delete, and how many others were redacted (would be). A report is
    deleted when it is the customer's alone: from them, or linked to their messages only, or
    read by no one (no sender) and naming them; a report that also holds someone else's message,
    or another sender's that names them, is redacted: the number becomes ``[erased]``."""
    links = InboundReport.messages.through.objects
    mine = set(
        links.filter(message__destination_addr=number).values_list("inboundreport_id", flat=True)
    )
    shared = set(
        links.filter(inboundreport_id__in=mine)
        .exclude(message__destination_addr=number)
        .values_list("inboundreport_id", flat=True)
    )
    candidates = InboundReport.objects.filter(
        Q(sender=number)
        | Q(pk__in=mine)
        | Q(body__regex=near)
        | Q(query_string__regex=near)
        | Q(detail__regex=near)
    ).only("pk", "sender", "body", "query_string", "detail")
    deleted: list[int] = []
    redacted = 0
    for report in candidates.iterator(chunk_size=500):
        texts = (report.body, report.query_string, report.detail)
        named = any(found.search(text) for text in texts)
        own = report.sender == number or report.pk in mine
        if report.pk not in shared and (own or (named and not report.sender)):
            deleted.append(report.pk)
        elif own or named:
            redacted += 1
            if not dry_run:
                InboundReport.objects.filter(pk=report.pk).update(
                    sender="" if report.sender == number else report.sender,
                    body=found.sub(ERASED, report.body),
                    query_string=found.sub(ERASED, report.query_string),
                    detail=found.sub(ERASED, report.detail),
                )
    return deleted, redacted


def _log_entries_about(
    message_pks: list[int],
    contact_pks: list[int],
    report_pks: list[int],
    found: Any,
    near: str,
) -> tuple[QuerySet[Any], QuerySet[Any]] | None:
    """The admin's log entries (when the admin is installed) to delete, those about the erased
    rows or titled with the number, and those that name it elsewhere, to redact."""
    if not apps.is_installed("django.contrib.admin"):
        return None
    from django.contrib.contenttypes.models import ContentType

    log_entry = apps.get_model("admin", "LogEntry")
    types = ContentType.objects.get_for_models(
        Message, Conversation, Contact, InboundReport, for_concrete_models=False
    )
    about = Q(pk__in=[])
    for model, pks in (
        (Message, message_pks),
        (Conversation, message_pks),
        (Contact, contact_pks),
        (InboundReport, report_pks),
    ):
        ids = [str(pk) for pk in pks]
        for start in range(0, len(ids), 500):
            about |= Q(content_type=types[model], object_id__in=ids[start : start + 500])
    titled = [
        pk
        for pk, title in log_entry.objects.filter(object_repr__regex=near).values_list(
            "pk", "object_repr"
        )
        if found.search(title)
    ]
    delete = log_entry.objects.filter(about | Q(pk__in=titled))
    redact = log_entry.objects.exclude(pk__in=delete.values("pk")).filter(
        change_message__regex=near
    )
    return delete, redact


def _redact_texts(
    queryset: QuerySet[Any],
    fields: tuple[str, ...],
    found: Any,
    dry_run: bool,
    batch_size: int,
) -> int:
    """Write ``[erased]`` for the number in ``fields`` of the rows of ``queryset`` (prefiltered);
    return how many rows named it."""
    changed = 0
    last_pk: Any = None
    while True:
        page = queryset.order_by("pk").only("pk", *fields)
        if last_pk is not None:
            page = page.filter(pk__gt=last_pk)
        rows = list(page[:batch_size])
        if not rows:
            return changed
        last_pk = rows[-1].pk
        with transaction.atomic():
            for row in rows:
                new = {f: found.sub(ERASED, getattr(row, f) or "") for f in fields}
                if all(new[f] == (getattr(row, f) or "") for f in fields):
                    continue
                changed += 1
                if not dry_run:
                    type(row)._default_manager.filter(pk=row.pk).update(**new)


def _forget_in(
    queryset: QuerySet[Any],
    field: str,
    found: Any,
    near: str,
    dry_run: bool,
    batch_size: int,
) -> int:
    """Drop every entry naming the number from the JSON ``field`` of the rows of ``queryset``
    (:func:`~django_whatsapp.metadata.forget`), in batches; return the entries dropped (found,
    on a dry run)."""
    naming = queryset.annotate(_wa_text=Cast(field, TextField())).filter(_wa_text__regex=near)
    dropped = 0
    last_pk: Any = None
    while True:
        page = naming.order_by("pk").only("pk", field)
        if last_pk is not None:
            page = page.filter(pk__gt=last_pk)
        rows = list(page[:batch_size])
        if not rows:
            return dropped
        last_pk = rows[-1].pk
        with transaction.atomic():
            for row in rows:
                value, removed = forget(getattr(row, field), found)
                dropped += removed
                if removed and not dry_run:
                    type(row)._default_manager.filter(pk=row.pk).update(**{field: value})


def _name(model: type[models.Model]) -> str:
    return str(model._meta.verbose_name_plural)


def _name_of(label: str) -> str:
    """A readable name for a label in ``delete()``'s counts (``app.Model``)."""
    try:
        return _name(apps.get_model(label))
    except LookupError:
        return label
