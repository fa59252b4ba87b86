"""Poll the gateway for the status of messages that are not final, and apply the reports.

:mod:`django_whatsapp.resync` does the work (``services.resync_statuses``, which a project can
also run as its own scheduled task): this command reads the options and reports, a line per
message in id order (whatever the concurrency) or a progress bar on a terminal, then the counts.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet
from django.utils import timezone

from ... import resync, services
from ...models import Message

DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_CONCURRENCY = resync.MAX_CONCURRENCY


def parse_since(value: str, option: str = "--since") -> timedelta:
    match = DURATION_RE.match(value or "")
    if not match:
        raise CommandError(
            f"{option} {value!r} is not a duration: use a number and a unit s, m, h, d or w "
            "(for example 2d or 12h)."
        )
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


def concurrency(value: str) -> int:
    number = int(value)
    if not 1 <= number <= MAX_CONCURRENCY:
        raise ValueError(value)
    return number


class Progress:
    """A one-line progress bar redrawn in place (only used when the output is a terminal)."""

    def __init__(self, stream: Any, total: int, *, width: int = 30) -> None:
        self.stream, self.total, self.width = stream, total, width
        self.started = self.last = time.monotonic()

    def update(self, done: int, failed: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < 0.1 and done < self.total:
            return
        self.last = now
        fraction = done / self.total if self.total else 1.0
        filled = int(self.width * fraction)
        rate = done / (now - self.started) if now > self.started else 0.0
        eta = (self.total - done) / rate if rate else 0.0
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} "
            f"{fraction:4.0%} {rate:6.0f}/s ETA {eta:4.0f}s failed {failed}",
            ending="",
        )
        self.stream.flush()

    def clear(self) -> None:
        self.stream.write("\r\033[K", ending="")


class Command(BaseCommand):
    help = (
        "Poll the status of every message that has a provider id and is not final, "
        "and apply the reports."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--ids", nargs="+", type=int, metavar="ID", help="Only these messages (database ids)."
        )
        parser.add_argument("--since", help="Only messages created within this long, e.g. 2d.")
        parser.add_argument(
            "--account",
            metavar="NAME",
            help="Only the messages of this account (ACCOUNTS); each message is polled "
            "through its own account anyway.",
        )
        parser.add_argument("--limit", type=int, help="Poll at most this many messages.")
        parser.add_argument(
            "--dry-run", action="store_true", help="List what would be polled; poll nothing."
        )
        parser.add_argument(
            "--concurrency",
            type=concurrency,
            default=8,
            metavar="N",
            help=f"Polls in flight at once, 1 to {MAX_CONCURRENCY} (default: 8).",
        )
        parser.add_argument(
            "--stale-sending",
            metavar="DURATION",
            help=(
                "First settle messages stuck in 'sending' for longer than this (e.g. 10m; a "
                "worker died mid-send): they become 'unknown', never sent again, settled later "
                "by a callback."
            ),
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
            help="A line per message instead of a progress bar.",
        )

    def selection(self, options: dict[str, Any]) -> QuerySet[Message]:
        since = parse_since(options["since"]) if options["since"] is not None else None
        try:
            return resync.resync_selection(
                ids=options["ids"] or None, since=since, account=options["account"]
            )
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from error

    def handle(self, *args: Any, **options: Any) -> None:
        limit = options["limit"]
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1.")
        if options["stale_sending"] is not None:
            older_than = parse_since(options["stale_sending"], "--stale-sending")
            self.settle(older_than, dry_run=options["dry_run"])
        queryset = self.selection(options)
        if options["dry_run"]:
            total = 0
            for message in resync.resync_candidates(queryset, limit):
                total += 1
                self.stdout.write(
                    f"would poll message {message.pk} (provider id {message.provider_message_id},"
                    f" {message.status})"
                )
            self.stdout.write(f"Dry run: {total} message(s) would be polled.")
            return
        show_bar = options["progress"]
        if show_bar is None:
            show_bar = self.stdout.isatty()
        report = Report(self, show_bar=show_bar)
        try:
            summary = resync.resync_statuses(
                queryset, limit=limit, concurrency=options["concurrency"], on_polled=report
            )
        except ImproperlyConfigured as error:
            raise CommandError(
                f"{error} Configure it, or poll the others with --account."
            ) from error
        if report.progress:
            report.progress.update(summary.total, summary.failed, force=True)
            self.stdout.write("")
        text = (
            f"Polled {summary.total}: {summary.changed} changed, {summary.unchanged} unchanged, "
            f"{summary.failed} failed."
        )
        self.stdout.write(
            self.style.SUCCESS(text) if not summary.failed else self.style.WARNING(text)
        )

    def settle(self, older_than: timedelta, *, dry_run: bool) -> None:
        if dry_run:
            stuck = Message.objects.filter(
                status=Message.Status.SENDING, status_changed_at__lt=timezone.now() - older_than
            ).count()
            self.stdout.write(f"Dry run: {stuck} message(s) stuck in sending would be settled.")
            return
        settled = services.settle_stale_sending(older_than)
        for message in settled:
            self.stdout.write(f"message {message.pk}: sending -> {message.status} (stale)")
        self.stdout.write(f"Settled {len(settled)} message(s) stuck in sending.")


class Report:
    """Writes each polled message: a line (to stderr for a failure), or the progress bar."""

    def __init__(self, command: BaseCommand, *, show_bar: bool) -> None:
        self.command = command
        self.show_bar = show_bar
        self.progress: Progress | None = None
        self.failed = 0

    def __call__(self, polled: resync.Polled) -> None:
        if self.show_bar and self.progress is None:
            self.progress = Progress(self.command.stdout, polled.total)
        head = f"[{polled.index}/{polled.total}] message {polled.message.pk}"
        if polled.error is not None:
            self.failed += 1
            if self.progress:
                self.progress.clear()
            self.command.stderr.write(f"{head}: failed: {polled.error}")
        elif not self.progress:
            if polled.changed:
                self.command.stdout.write(f"{head}: {polled.old_status} -> {polled.message.status}")
            else:
                self.command.stdout.write(f"{head}: {polled.old_status} (unchanged)")
        if self.progress:
            self.progress.update(polled.index, self.failed, force=polled.error is not None)
