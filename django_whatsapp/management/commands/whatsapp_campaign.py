"""Create and run campaigns from the command line.

``create`` reads the audience from a CSV file as a stream (any size) and reports the rows it
rejected; ``start``, ``pause``, ``resume`` and ``cancel`` change a campaign's status; ``status``
prints its counts per status, its progress, how many recipients wait for their sending hours,
and the expected duration and finish time (with ``--watch`` on a terminal, a progress bar
redrawn until the campaign is finished).
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ... import services
from ...campaigns.csvfile import Utf8Lines
from ...campaigns.rows import REPEATED_REASON, reason_in_words
from ...models import Campaign
from .whatsapp_resync import Progress

#: Rejected rows printed by ``create`` (all are counted, and kept on the campaign).
SHOW_REJECTIONS = 20


def parse_send_at(value: str) -> datetime:
    """An ISO 8601 date and time; without an offset, in the current time zone."""
    parsed = parse_datetime(value.strip()) if value else None
    if parsed is None:
        raise CommandError(
            f"--send-at {value!r} is not an ISO 8601 date and time (e.g. 2026-12-24T09:00+02:00)."
        )
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


def parse_hours(value: str) -> tuple[str, str]:
    """``HH:MM-HH:MM`` as the pair ``create_campaign(sending_hours=...)`` takes."""
    start, sep, end = value.partition("-")
    if not sep:
        raise CommandError(f"--sending-hours {value!r} is not HH:MM-HH:MM (e.g. 09:00-20:00).")
    return start.strip(), end.strip()


def _describe(error: ValidationError) -> str:
    if not hasattr(error, "error_dict"):
        return " ".join(error.messages)
    return "; ".join(
        f"{field}: {' '.join(str(m) for e in errors for m in e.messages)}"
        for field, errors in error.error_dict.items()
    )


class Command(BaseCommand):
    help = "Create a WhatsApp campaign from a CSV file, start, pause, resume or cancel one, or "
    help += "show its progress."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        create = actions.add_parser("create", help="Create a campaign from a CSV file.")
        create.add_argument("--name", required=True, help="The campaign's name.")
        kind = create.add_mutually_exclusive_group(required=True)
        kind.add_argument("--text", help="Send a text message.")
        kind.add_argument("--image", metavar="URL", help="Send an image (.jpg, .jpeg or .png).")
        kind.add_argument("--template", metavar="NAME", help="Send a registered template.")
        create.add_argument("--caption", default="", help="Caption of an --image campaign.")
        create.add_argument("--header", help="A template's header text or image URL.")
        create.add_argument(
            "--csv", required=True, metavar="FILE", help="The audience: a CSV file with a header."
        )
        create.add_argument(
            "--number-column",
            default="number",
            metavar="COL",
            help="The CSV column with the recipient's number (default: number).",
        )
        create.add_argument(
            "--param-column",
            action="append",
            default=[],
            dest="param_columns",
            metavar="COL",
            help="A CSV column with a template body parameter, in order; repeat for each.",
        )
        create.add_argument("--from", dest="source_addr", help="Sender (DEFAULT_SOURCE_ADDR).")
        create.add_argument(
            "--account",
            metavar="NAME",
            help="Send through this account of ACCOUNTS (default: the top-level settings).",
        )
        create.add_argument("--start", action="store_true", help="Start it once created.")
        create.add_argument(
            "--send-at", metavar="ISO", help="Send it at this time (with --start, or later)."
        )
        create.add_argument(
            "--expires-at",
            metavar="ISO",
            help="Recipients not sent by this time are not sent at all.",
        )
        create.add_argument(
            "--sending-hours",
            metavar="HH:MM-HH:MM",
            help="Send each recipient only between these hours in their own time zone.",
        )
        for name, text in (
            ("start", "Start a draft campaign (now, or at its send-at time)."),
            ("pause", "Pause a running campaign."),
            ("resume", "Resume a paused campaign."),
            ("cancel", "Cancel a campaign: what was not sent yet is not sent."),
            ("status", "Show a campaign's counts per status and progress."),
        ):
            action = actions.add_parser(name, help=text)
            action.add_argument("campaign_id", metavar="CAMPAIGN_ID", type=int)
            if name == "status":
                action.add_argument(
                    "--watch",
                    action="store_true",
                    help="On a terminal, redraw a progress bar until the campaign is finished.",
                )

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "create":
            self.create(options)
            return
        campaign = Campaign.objects.filter(pk=options["campaign_id"]).first()
        if campaign is None:
            raise CommandError(f"There is no campaign {options['campaign_id']}.")
        if action == "status":
            self.status(campaign, watch=options.get("watch", False))
            return
        change = {
            "start": services.start_campaign,
            "pause": services.pause_campaign,
            "resume": services.resume_campaign,
            "cancel": services.cancel_campaign,
        }[action]
        try:
            change(campaign)
        except services.CampaignStateError as error:
            raise CommandError(str(error)) from error
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"Campaign {campaign.pk} is {campaign.status}.")

    def create(self, options: dict[str, Any]) -> None:
        send_at = parse_send_at(options["send_at"]) if options["send_at"] else None
        path = Path(options["csv"])
        content: dict[str, Any] = {
            "source_addr": options["source_addr"],
            "send_at": send_at,
            "account": options["account"],
        }
        if options.get("expires_at"):
            content["expires_at"] = parse_send_at(options["expires_at"])
        if options.get("sending_hours"):
            content["sending_hours"] = parse_hours(options["sending_hours"])
        if options["template"]:
            content.update(template=options["template"], header=options["header"])
        elif options["image"]:
            content.update(file_url=options["image"], text=options["caption"])
        else:
            content.update(text=options["text"])
        try:
            with Utf8Lines(path.open("rb")) as file:
                campaign = services.campaign_from_csv(
                    options["name"],
                    file,
                    number_column=options["number_column"],
                    param_columns=options["param_columns"],
                    **content,
                )
        except OSError as error:
            raise CommandError(f"--csv {path}: {error.strerror or error}.") from error
        except ValidationError as error:
            # All or nothing: no campaign was stored.
            raise CommandError(f"{_describe(error)} Nothing was stored.") from error
        except ImproperlyConfigured as error:  # an unknown --account
            raise CommandError(f"Nothing was stored. {error}") from error
        repeated = campaign.duplicates_count
        self.stdout.write(
            f"Campaign {campaign.pk} ({campaign.name}) created: {campaign.recipients_count} "
            f"recipients, {campaign.rejected_count} rejected rows, {repeated} duplicates "
            f"({campaign.rows_read} rows read)."
        )
        rows = campaign.rejections.order_by("line")
        piles = (
            ("Rejected rows", rows.exclude(reason=REPEATED_REASON), campaign.rejected_count),
            ("Repeated numbers (sent once)", rows.filter(reason=REPEATED_REASON), repeated),
        )
        for title, listed, count in piles:
            if not count:
                continue
            self.stdout.write(f"{title}:")
            for rejection in listed[:SHOW_REJECTIONS]:
                reason = reason_in_words(rejection.reason)
                self.stdout.write(f"  line {rejection.line}: {rejection.value!r}: {reason}")
            if count > SHOW_REJECTIONS:
                self.stdout.write(f"  ... and {count - SHOW_REJECTIONS} more.")
        if options["start"]:
            try:
                services.start_campaign(campaign)
            except ImproperlyConfigured as error:
                raise CommandError(str(error)) from error
            when = f" for {campaign.send_at.isoformat()}" if campaign.send_at else ""
            self.stdout.write(f"Campaign {campaign.pk} is {campaign.status}{when}.")

    def status(self, campaign: Campaign, *, watch: bool) -> None:
        progress = services.campaign_progress(campaign)
        self.stdout.write(f"Campaign {campaign.pk} ({campaign.name}): {campaign.status}")
        for status, count in sorted(progress.counts.items()):
            self.stdout.write(f"  {status:<10} {count}")
        self.stdout.write(
            f"  {progress.settled}/{progress.total} settled ({progress.percent}%), "
            f"{progress.in_flight} in flight, {progress.waiting} waiting"
        )
        funnel = ", ".join(f"{step} {count}" for step, count in progress.funnel)
        self.stdout.write(f"  funnel: {funnel}")
        if campaign.rejected_count:
            self.stdout.write(f"  rejected rows at import: {campaign.rejected_count}")
        if campaign.expires_at is not None:
            self.stdout.write(f"  expires at: {campaign.expires_at.isoformat()}")
        if progress.waiting_for_hours:
            self.stdout.write(f"  waiting for their sending hours: {progress.waiting_for_hours}")
        if not campaign.is_finished:
            estimate = services.campaign_estimate(campaign)
            self.stdout.write(f"  expected: {estimate.text}")
            self.stdout.write(f"  (from {estimate.basis})")
        if watch and self.stdout.isatty() and progress.total:
            self.watch(campaign, progress.total)

    def watch(self, campaign: Campaign, total: int) -> None:
        bar = Progress(self.stdout, total)
        tick = threading.Event()
        while True:
            campaign.refresh_from_db()
            progress = services.campaign_progress(campaign)
            failed = sum(
                progress.counts.get(s, 0)
                for s in ("not_sent", "unknown", "rejected", "error", "failed")
            )
            bar.update(progress.settled, failed, force=True)
            if campaign.is_finished or campaign.status == Campaign.Status.PAUSED:
                break
            tick.wait(1.0)
        self.stdout.write("")
        self.stdout.write(f"Campaign {campaign.pk} is {campaign.status}.")
