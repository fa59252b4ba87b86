"""Poll the gateway for the status of messages that are not final, and apply the reports."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet
from django.utils import timezone

from ... import services
from ...exceptions import WhatsAppError
from ...models import FINAL_STATUSES, Message

DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str) -> timedelta:
    match = DURATION_RE.match(value or "")
    if not match:
        raise CommandError(
            f"--since {value!r} is not a duration: use a number and a unit s, m, h, d or w "
            "(for example 2d or 12h)."
        )
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


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
        parser.add_argument("--limit", type=int, help="Poll at most this many messages.")
        parser.add_argument(
            "--dry-run", action="store_true", help="List what would be polled; poll nothing."
        )

    def selection(self, options: dict[str, Any]) -> QuerySet[Message]:
        queryset = Message.objects.filter(provider_message_id__isnull=False).exclude(
            status__in=FINAL_STATUSES
        )
        if options["ids"]:
            queryset = queryset.filter(pk__in=options["ids"])
        if options["since"] is not None:
            queryset = queryset.filter(
                created_at__gte=timezone.now() - parse_since(options["since"])
            )
        queryset = queryset.order_by("pk")
        if options["limit"] is not None:
            if options["limit"] < 1:
                raise CommandError("--limit must be at least 1.")
            queryset = queryset[: options["limit"]]
        return queryset

    def handle(self, *args: Any, **options: Any) -> None:
        messages = list(self.selection(options))
        total = len(messages)
        if options["dry_run"]:
            for message in messages:
                self.stdout.write(
                    f"would poll message {message.pk} (provider id {message.provider_message_id},"
                    f" {message.status})"
                )
            self.stdout.write(f"Dry run: {total} message(s) would be polled.")
            return
        changed = unchanged = failed = 0
        for index, message in enumerate(messages, start=1):
            before = message.status
            try:
                services.refresh_status(message)
            except (WhatsAppError, services.ReportMismatch) as error:
                failed += 1
                self.stderr.write(f"[{index}/{total}] message {message.pk}: failed: {error}")
                continue
            if message.status != before:
                changed += 1
                self.stdout.write(
                    f"[{index}/{total}] message {message.pk}: {before} -> {message.status}"
                )
            else:
                unchanged += 1
                self.stdout.write(f"[{index}/{total}] message {message.pk}: {before} (unchanged)")
        summary = f"Polled {total}: {changed} changed, {unchanged} unchanged, {failed} failed."
        self.stdout.write(
            self.style.SUCCESS(summary) if not failed else self.style.WARNING(summary)
        )
