"""Delete old messages and inbound reports (data retention), or everything about one customer
(a data-subject request).

``--older-than 180d`` (or the ``RETENTION`` setting) deletes the messages created before then
that nothing will change any more: final ones (``not_sent``, ``rejected``, ``error``,
``failed``, ``deleted``), ``delivered`` and ``seen`` ones, and received ones; with their status
events. Messages still on their way (``draft`` to ``sent``) are kept unless
``--include-unsettled``. Inbound reports received before then are deleted too.

``--contact NUMBER`` deletes every message with that number (both directions, any age or
status) with its events, every inbound report from it, linked to its messages or naming it in
its body or query string, and its contact row (the opt-out state with it).

Rows are deleted in batches of ``--batch-size`` (1,000) primary keys, each batch in its own short
transaction, walking the table by primary key: memory and lock time stay bounded however many
rows there are, and an interrupted purge is simply run again. ``--dry-run`` counts and deletes
nothing. On a terminal a progress bar shows the batches.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import models, transaction
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from ...conf import get_settings, parse_duration
from ...metadata import forget_number
from ...models import (
    FINAL_STATUSES,
    CampaignRejection,
    Contact,
    InboundReport,
    Message,
    StatusEvent,
)
from ...validation import clean_recipient

Status = Message.Status
#: Statuses no report changes any more: kept no longer than the retention period.
SETTLED = frozenset({*FINAL_STATUSES, Status.DELIVERED, Status.SEEN})
DEFAULT_BATCH_SIZE = 1000
MAX_BATCH_SIZE = 50_000


def batch_size(value: str) -> int:
    number = int(value)
    if not 1 <= number <= MAX_BATCH_SIZE:
        raise ValueError(value)
    return number


class Bar:
    """A one-line progress bar redrawn in place (only on a terminal)."""

    def __init__(self, stream: Any, label: str, total: int, *, width: int = 30) -> None:
        self.stream, self.label, self.total, self.width = stream, label, total, width
        self.last = 0.0

    def update(self, done: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        fraction = min(done / self.total, 1.0) if self.total else 1.0
        filled = int(self.width * fraction)
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
            f"{done}/{self.total} {fraction:4.0%}",
            ending="",
        )
        self.stream.flush()

    def finish(self) -> None:
        self.update(self.total, force=True)
        self.stream.write("")


class Command(BaseCommand):
    help = (
        "Delete settled messages (with their events) and inbound reports older than a period "
        "(--older-than or the RETENTION setting), or everything about one number (--contact)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        what = parser.add_mutually_exclusive_group()
        what.add_argument(
            "--older-than",
            metavar="DURATION",
            help="Delete what is older than this, e.g. 180d or 26w (default: RETENTION).",
        )
        what.add_argument(
            "--contact",
            metavar="NUMBER",
            help="Erase every message, report and the contact of this number (any age).",
        )
        parser.add_argument(
            "--include-unsettled",
            action="store_true",
            help="With --older-than: also messages still on their way (draft to sent).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Count; delete nothing.")
        parser.add_argument(
            "--batch-size",
            type=batch_size,
            default=DEFAULT_BATCH_SIZE,
            metavar="N",
            help=f"Rows per batch and transaction, 1 to {MAX_BATCH_SIZE} "
            f"(default: {DEFAULT_BATCH_SIZE}).",
        )
        parser.add_argument(
            "--progress",
            action="store_true",
            default=None,
            help="Show a progress bar (the default on a terminal).",
        )
        parser.add_argument(
            "--no-progress",
            action="store_false",
            dest="progress",
            help="A line per batch instead of a progress bar.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.dry_run: bool = options["dry_run"]
        self.size: int = options["batch_size"]
        show = options["progress"]
        self.show_bar: bool = self.stdout.isatty() if show is None else show
        if options["contact"] is not None:
            if options["include_unsettled"]:
                raise CommandError("--include-unsettled goes with --older-than.")
            self.erase_contact(options["contact"])
            return
        period = self.period(options["older_than"])
        cutoff = timezone.now() - period
        messages = Message.objects.filter(created_at__lt=cutoff)
        if not options["include_unsettled"]:
            messages = messages.filter(
                Q(status__in=SETTLED) | Q(direction=Message.Direction.INBOUND)
            )
        reports = InboundReport.objects.filter(received_at__lt=cutoff)
        self.stdout.write(
            f"{'Dry run: would purge' if self.dry_run else 'Purging'} what is older than "
            f"{period} (created before {cutoff.isoformat(timespec='seconds')})."
        )
        counts = self.purge(messages, "messages") + self.purge(reports, "inbound reports")
        self.summary(counts)

    def period(self, given: str | None) -> timedelta:
        try:
            if given is not None:
                return parse_duration(given, "--older-than")
            retention = get_settings().RETENTION
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from error
        if retention is None:
            raise CommandError(
                "Give --older-than (e.g. 180d) or --contact NUMBER, or set "
                "DJANGO_WHATSAPP['RETENTION'] for scheduled runs."
            )
        return retention

    def erase_contact(self, given: str) -> None:
        try:
            number = clean_recipient(given)
        except ValidationError as error:
            raise CommandError(f"--contact {given!r}: {' '.join(error.messages)}") from error
        messages = Message.objects.filter(destination_addr=number)
        linked = InboundReport.messages.through.objects.filter(message__destination_addr=number)
        reports = InboundReport.objects.filter(
            Q(sender=number)
            | Q(pk__in=linked.values("inboundreport_id"))
            | Q(body__contains=number)
            | Q(query_string__contains=number)
        )
        self.stdout.write(
            f"{'Dry run: would erase' if self.dry_run else 'Erasing'} everything about +{number}."
        )
        # Reports first: their links to the messages are how some of them are found.
        counts = self.purge(reports, "inbound reports") + self.purge(messages, "messages")
        counts += self.purge(Contact.objects.filter(number=number), "contact")
        # Campaign rows rejected at an import keep the number as it was given.
        rejected = CampaignRejection.objects.filter(value__contains=number)
        counts += self.purge(rejected, "rejected campaign rows")
        counts += self.forget_in_metadata(number)
        self.summary(counts)

    def forget_in_metadata(self, number: str) -> Counter[str]:
        """Drop every metadata entry naming ``number`` from the other messages (their own data
        about this customer), in batches; return the entries dropped (found, on a dry run)."""
        naming = (
            Message.objects.annotate(_wa_metadata=Cast("metadata", TextField()))
            .filter(_wa_metadata__contains=number)
            .order_by("pk")
        )
        dropped = 0
        last_pk = 0
        while True:
            page = list(naming.filter(pk__gt=last_pk).only("pk", "metadata")[: self.size])
            if not page:
                break
            last_pk = page[-1].pk
            with transaction.atomic():
                for message in page:
                    message.metadata, removed = forget_number(message.metadata, number)
                    dropped += removed
                    if removed and not self.dry_run:
                        Message.objects.filter(pk=message.pk).update(metadata=message.metadata)
        return Counter({"metadata entries": dropped}) if dropped else Counter()

    def purge(self, queryset: QuerySet[Any], label: str) -> Counter[str]:
        """Delete ``queryset`` in batches of primary keys, each in its own transaction; return
        the rows deleted per model (what would be, on a dry run)."""
        model: type[models.Model] = queryset.model
        total = queryset.count()
        if self.dry_run:
            counts: Counter[str] = Counter({_name(model): total})
            if model is Message:
                counts[_name(StatusEvent)] = StatusEvent.objects.filter(
                    message__in=queryset.values("pk")
                ).count()
            return counts
        counts = Counter()
        bar = Bar(self.stdout, label, total) if self.show_bar and total else None
        last_pk: Any = None
        done = batches = 0
        while True:
            page = queryset.order_by("pk")
            if last_pk is not None:
                page = page.filter(pk__gt=last_pk)
            pks = list(page.values_list("pk", flat=True)[: self.size])
            if not pks:
                break
            last_pk = pks[-1]
            with transaction.atomic():
                _total, per_model = model._default_manager.filter(pk__in=pks).delete()
            batches += 1
            done += per_model.get(model._meta.label, 0)
            counts.update({_name_of(label_): n for label_, n in per_model.items() if n})
            if bar is not None:
                bar.update(done)
            else:
                self.stdout.write(f"  {label}: batch {batches}, {done}/{total} deleted")
        if bar is not None:
            bar.finish()
        return counts

    def summary(self, counts: Counter[str]) -> None:
        verb = "Would delete" if self.dry_run else "Deleted"
        shown = [(name, counts[name]) for name in sorted(counts) if counts[name]]
        if not shown:
            self.stdout.write(self.style.SUCCESS(f"{verb} nothing."))
            return
        self.stdout.write(
            self.style.SUCCESS(f"{verb}: " + ", ".join(f"{n} {name}" for name, n in shown) + ".")
        )


def _name(model: type[models.Model]) -> str:
    return str(model._meta.verbose_name_plural)


def _name_of(label: str) -> str:
    """A readable name for a label in ``delete()``'s counts (``app.Model``)."""
    from django.apps import apps

    try:
        return _name(apps.get_model(label))
    except LookupError:
        return label
