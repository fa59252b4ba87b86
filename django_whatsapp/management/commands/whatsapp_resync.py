"""Poll the gateway for the status of messages that are not final, and apply the reports.

The polls run ``--concurrency`` at a time (fewer for a small selection: a thread per 16 messages)
on one pooled HTTP session, where a 429 pauses them all. The reports are applied here, in the
command's own thread and in id order, so the output is the same whatever the concurrency.
Messages are read in id-ordered chunks, so memory stays flat however many there are. On a
terminal a progress bar replaces the line per message. The answers are applied in batches of
``APPLY_BATCH`` (one statement per batch on PostgreSQL), while the next polls run.
"""

from __future__ import annotations

import math
import re
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet
from django.utils import timezone

from ... import services
from ...client import StatusResult
from ...conf import get_settings
from ...exceptions import WhatsAppError
from ...models import FINAL_STATUSES, Message

DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
#: Messages read from the database at a time.
CHUNK_SIZE = 500
MAX_CONCURRENCY = 64
#: Answers applied at once (one statement on PostgreSQL); the polls run this far ahead.
APPLY_BATCH = 100
#: Messages per polling thread at least: a small selection is polled by fewer threads, in order.
POLLS_PER_THREAD = 16


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
        queryset = Message.objects.filter(provider_message_id__isnull=False).exclude(
            status__in=FINAL_STATUSES
        )
        if options["ids"]:
            queryset = queryset.filter(pk__in=options["ids"])
        if options["account"] is not None:
            try:
                get_settings(options["account"])
            except ImproperlyConfigured as error:
                raise CommandError(str(error)) from error
            queryset = queryset.filter(account=options["account"])
        if options["since"] is not None:
            queryset = queryset.filter(
                created_at__gte=timezone.now() - parse_since(options["since"])
            )
        return queryset.order_by("pk")

    def handle(self, *args: Any, **options: Any) -> None:
        limit = options["limit"]
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1.")
        if options["stale_sending"] is not None:
            older_than = parse_since(options["stale_sending"], "--stale-sending")
            self.settle(older_than, dry_run=options["dry_run"])
        queryset = self.selection(options)
        total = queryset.count()
        if limit is not None:
            total = min(total, limit)
        if options["dry_run"]:
            for message in chunks(queryset, limit):
                self.stdout.write(
                    f"would poll message {message.pk} (provider id {message.provider_message_id},"
                    f" {message.status})"
                )
            self.stdout.write(f"Dry run: {total} message(s) would be polled.")
            return
        show_bar = options["progress"]
        if show_bar is None:
            show_bar = self.stdout.isatty()
        progress = Progress(self.stdout, total) if show_bar and total else None
        changed = unchanged = failed = 0
        # A thread, and its connection to the gateway (a TLS handshake), pays off only over
        # several polls: one per POLLS_PER_THREAD messages, up to --concurrency.
        threads = max(1, min(options["concurrency"], math.ceil(total / POLLS_PER_THREAD)))
        # Each account's messages go through that account's gateway and key.
        for account in accounts_of(queryset):
            try:
                get_settings(account)
            except ImproperlyConfigured as error:
                raise CommandError(
                    f"Messages of account {account!r} cannot be polled: {error} Configure it, "
                    "or poll the others with --account."
                ) from error
        polls = by_account(queryset, total, threads)
        counts = {"changed": 0, "unchanged": 0, "failed": 0}
        batch: list[tuple[int, Message, StatusResult]] = []
        for index, (message, poll) in enumerate(polls, start=1):
            try:
                batch.append((index, message, poll.result()))
            except WhatsAppError as error:
                self.apply(batch, total, counts, progress)  # the lines stay in order
                self.failed(index, total, message, error, counts, progress)
            if len(batch) >= APPLY_BATCH:
                self.apply(batch, total, counts, progress)
        self.apply(batch, total, counts, progress)
        changed, unchanged, failed = counts["changed"], counts["unchanged"], counts["failed"]
        if progress:
            progress.update(total, failed, force=True)
            self.stdout.write("")
        summary = f"Polled {total}: {changed} changed, {unchanged} unchanged, {failed} failed."
        self.stdout.write(
            self.style.SUCCESS(summary) if not failed else self.style.WARNING(summary)
        )

    def apply(
        self,
        batch: list[tuple[int, Message, StatusResult]],
        total: int,
        counts: dict[str, int],
        progress: Progress | None,
    ) -> None:
        """Apply a batch of answers (emptying it) and write a line for each, in order."""
        if not batch:
            return
        before = [message.status for _index, message, _result in batch]
        outcomes = services.apply_polls([(message, result) for _index, message, result in batch])
        for (index, message, _result), old, outcome in zip(batch, before, outcomes, strict=True):
            if isinstance(outcome, Exception):
                self.failed(index, total, message, outcome, counts, progress)
                continue
            if message.status != old:
                counts["changed"] += 1
                line = f"[{index}/{total}] message {message.pk}: {old} -> {message.status}"
            else:
                counts["unchanged"] += 1
                line = f"[{index}/{total}] message {message.pk}: {old} (unchanged)"
            if not progress:
                self.stdout.write(line)
        if progress:
            progress.update(batch[-1][0], counts["failed"])
        batch.clear()

    def failed(
        self,
        index: int,
        total: int,
        message: Message,
        error: Exception,
        counts: dict[str, int],
        progress: Progress | None,
    ) -> None:
        counts["failed"] += 1
        if progress:
            progress.clear()
        self.stderr.write(f"[{index}/{total}] message {message.pk}: failed: {error}")
        if progress:
            progress.update(index, counts["failed"])

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


def accounts_of(queryset: QuerySet[Message]) -> list[str]:
    """The accounts of the selected messages, sorted."""
    return sorted(set(queryset.order_by().values_list("account", flat=True).distinct()))


def by_account(
    queryset: QuerySet[Message], total: int, threads: int
) -> Iterator[tuple[Message, Future[StatusResult]]]:
    """The polls of the selection (at most ``total``), one account after the other, each
    through a pooled client of that account's settings (its gateway, key and limits)."""
    remaining = total
    for account in accounts_of(queryset):
        if remaining <= 0:
            return
        with services.pooled_client(threads, get_settings(account)) as client:
            selected = queryset.filter(account=account)
            polled_in_order = services.poll_statuses(
                chunks(selected, remaining), client, threads, ahead=APPLY_BATCH + 2 * threads
            )
            for polled in polled_in_order:
                remaining -= 1
                yield polled


def chunks(queryset: QuerySet[Message], limit: int | None) -> Iterator[Message]:
    """The selection in id order, read ``CHUNK_SIZE`` rows at a time (keyset pagination: each
    chunk starts after the last id seen, so memory stays flat and no row is read twice)."""
    last_pk = 0
    remaining = limit if limit is not None else sys.maxsize
    while remaining > 0:
        size = min(CHUNK_SIZE, remaining)
        batch = list(queryset.filter(pk__gt=last_pk)[:size])
        yield from batch
        if len(batch) < size:
            return
        remaining -= len(batch)
        last_pk = batch[-1].pk
