"""Send one WhatsApp message from the command line."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ... import services
from ...models import Message


def _describe(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(
            f"{field}: {' '.join(str(m) for e in errors for m in e.messages)}"
            for field, errors in error.error_dict.items()
        )
    return " ".join(error.messages)


class Command(BaseCommand):
    help = "Send a text, image or template WhatsApp message and print what became of it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--to", required=True, help="Recipient number, e.g. +380 63 123 4567.")
        kind = parser.add_mutually_exclusive_group(required=True)
        kind.add_argument("--text", help="Send a text message.")
        kind.add_argument("--image", metavar="URL", help="Send an image (.jpg, .jpeg or .png URL).")
        kind.add_argument("--template", metavar="NAME", help="Send a registered template.")
        parser.add_argument("--caption", default="", help="Caption of an --image message.")
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            dest="params",
            metavar="P",
            help="A template body parameter, in order; repeat for each placeholder.",
        )
        parser.add_argument("--header", help="A template's header text or image URL.")
        parser.add_argument("--from", dest="source_addr", help="Sender (DEFAULT_SOURCE_ADDR).")

    def handle(self, *args: Any, **options: Any) -> None:
        to, source_addr = options["to"], options["source_addr"]
        if options["caption"] and not options["image"]:
            raise CommandError("--caption goes with --image.")
        if (options["params"] or options["header"]) and not options["template"]:
            raise CommandError("--param and --header go with --template.")
        try:
            if options["text"] is not None:
                message = services.send_text(to, options["text"], source_addr=source_addr)
            elif options["image"] is not None:
                message = services.send_media(
                    to, options["image"], options["caption"], source_addr=source_addr
                )
            else:
                message = services.send_template(
                    to,
                    options["template"],
                    options["params"],
                    options["header"],
                    source_addr=source_addr,
                )
        except ValidationError as error:
            raise CommandError(f"Nothing was sent. {_describe(error)}") from error
        self.report(message)

    def report(self, message: Message) -> None:
        line = f"Message {message.pk} to +{message.destination_addr}: {message.status}"
        if message.status == Message.Status.ACCEPTED:
            self.stdout.write(
                self.style.SUCCESS(f"{line}, provider id {message.provider_message_id}.")
            )
            return
        if message.status == Message.Status.UNKNOWN:
            raise CommandError(
                f"{line}: the gateway may have taken it but did not answer "
                f"({message.error_message}). Do not send it again: a callback will settle it."
            )
        raise CommandError(f"{line}: {message.error_name}: {message.error_message}")
