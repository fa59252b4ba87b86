"""Delete old messages and inbound reports (data retention), or everything about one customer
(a data-subject request): :mod:`django_whatsapp.retention` does the work, this command reads the
options and reports.

``--older-than 180d`` (or the ``RETENTION`` setting) deletes the settled messages created
before then, with their status events, and the inbound reports received before then; messages
still on their way are kept unless ``--include-unsettled``.

``--contact NUMBER`` erases everything about one number (written any way; a part of a number is
refused): it prints what it will erase and asks before it does, unless ``--yes`` (or
``--noinput``), as ``flush`` does.

Rows go in batches of ``--batch-size`` (1,000), each in its own short transaction; ``--dry-run``
counts and deletes nothing. On a terminal a progress bar shows the batches.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from ... import retention
from ...conf import get_settings, parse_duration
from ...numbers import is_whole_number, normalize_number

DEFAULT_BATCH_SIZE = retention.DEFAULT_BATCH_SIZE
MAX_BATCH_SIZE = retention.MAX_BATCH_SIZE


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
            "--yes",
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="With --contact: erase without asking first.",
        )
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
        show = options["progress"]
        self.show_bar: bool = self.stdout.isatty() if show is None else show
        self.bar: Bar | None = None
        self.label: str | None = None
        self.batches = 0
        self.counts: Counter[str] = Counter()
        how: dict[str, Any] = {
            "dry_run": self.dry_run,
            "batch_size": options["batch_size"],
            "progress": self.progress,
        }
        if options["contact"] is not None:
            if options["include_unsettled"]:
                raise CommandError("--include-unsettled goes with --older-than.")
            if not self.erase(options["contact"], how, interactive=options["interactive"]):
                return
            counts = self.counts
        else:
            period = self.period(options["older_than"])
            cutoff = timezone.now() - period
            self.stdout.write(
                f"{'Dry run: would purge' if self.dry_run else 'Purging'} what is older than "
                f"{period} (created before {cutoff.isoformat(timespec='seconds')})."
            )
            counts = retention.purge_before(
                cutoff, include_unsettled=options["include_unsettled"], **how
            )
        self.end_bar()
        self.summary(counts)

    def erase(self, given: str, how: dict[str, Any], *, interactive: bool) -> bool:
        """Erase one customer: the plan first, then (asked, unless ``--yes``) the erasure; the
        counts go to ``self.counts``. Returns False when nothing was to be done or asked for."""
        try:
            number = normalize_number(given)
            if not is_whole_number(number):
                raise ValidationError(f"+{number} could only be dialled locally.")
        except ValidationError as error:
            raise CommandError(
                f"--contact {given!r}: {' '.join(error.messages)} Give the customer's whole "
                "number, such as +380501234567: a part of a number is never erased."
            ) from error
        planned = retention.erase_contact(number, dry_run=True, batch_size=how["batch_size"])
        if self.dry_run:
            self.stdout.write(f"Dry run: would erase everything about +{number}.")
            self.counts = planned
            return True
        if not planned:
            self.stdout.write(self.style.SUCCESS(f"Nothing is stored about +{number}."))
            return False
        self.stdout.write(f"This erases everything stored about +{number}:")
        self.summary(planned, deleted="  to delete", redacted="  to redact")
        if interactive:
            answer = input("It cannot be undone. Type 'yes' to continue, or 'no' to cancel: ")
            if answer.strip().lower() != "yes":
                self.stdout.write("Erasure cancelled: nothing was changed.")
                return False
        self.stdout.write(f"Erasing everything about +{number}.")
        self.counts = retention.erase_contact(number, **how)
        return True

    def period(self, given: str | None) -> timedelta:
        try:
            if given is not None:
                return parse_duration(given, "--older-than")
            configured = get_settings().RETENTION
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from error
        if configured is None:
            raise CommandError(
                "Give --older-than (e.g. 180d) or --contact NUMBER, or set "
                "DJANGO_WHATSAPP['RETENTION'] for scheduled runs."
            )
        return configured

    def progress(self, label: str, done: int, total: int) -> None:
        """After each batch: the bar on a terminal, else a line."""
        if label != self.label:
            self.end_bar()
            self.label, self.batches = label, 0
            self.bar = Bar(self.stdout, label, total) if self.show_bar else None
        self.batches += 1
        if self.bar is not None:
            self.bar.update(done)
        else:
            self.stdout.write(f"  {label}: batch {self.batches}, {done}/{total} deleted")

    def end_bar(self) -> None:
        if self.bar is not None:
            self.bar.finish()
        self.bar = None

    def summary(
        self, counts: Counter[str], *, deleted: str | None = None, redacted: str | None = None
    ) -> None:
        """The counts: one line of what is deleted, one of what is redacted (when any)."""
        if deleted is None:
            deleted = "Would delete" if self.dry_run else "Deleted"
        if redacted is None:
            redacted = "Would redact" if self.dry_run else "Redacted"
        shown = [(name, counts[name]) for name in sorted(counts) if counts[name]]
        gone = [(n, name) for name, n in shown if not name.startswith(retention.REDACTED)]
        kept = [
            (n, name[len(retention.REDACTED) :])
            for name, n in shown
            if name.startswith(retention.REDACTED)
        ]
        if not shown:
            self.stdout.write(self.style.SUCCESS(f"{deleted} nothing."))
            return
        if gone:
            self.stdout.write(
                self.style.SUCCESS(
                    f"{deleted}: " + ", ".join(f"{n} {name}" for n, name in gone) + "."
                )
            )
        if kept:
            listed = ", ".join(f"{n} {name}" for n, name in kept)
            self.stdout.write(
                self.style.SUCCESS(f"{redacted} (the number made {retention.ERASED}): {listed}.")
            )
