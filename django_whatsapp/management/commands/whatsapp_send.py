"""Send one WhatsApp message from the command line."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ... import services
from ...exceptions import IdempotencyConflict
from ...models import Message, Template

#: The option that gave each field of a message, to name it in an error.
OPTIONS = {
    "destination_addr": "--to",
    "source_addr": "--from",
    "text": "--text",
    "file_url": "--image",
    "template": "--template",
    "template_params": "--param",
    "header": "--header",
    "metadata": "--metadata",
    "tags": "--tag",
    "idempotency_key": "--idempotency-key",
}


def _describe(error: ValidationError, *, image: bool = False) -> str:
    if not hasattr(error, "error_dict"):
        return " ".join(error.messages)
    options = {**OPTIONS, "text": "--caption"} if image else OPTIONS
    return "; ".join(
        f"{options.get(field, field)}: {' '.join(str(m) for e in errors for m in e.messages)}"
        for field, errors in error.error_dict.items()
    )


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
        parser.add_argument(
            "--language",
            metavar="CODE",
            help="The template's language code, when it is registered in several (e.g. en_US).",
        )
        parser.add_argument("--from", dest="source_addr", help="Sender (DEFAULT_SOURCE_ADDR).")
        parser.add_argument(
            "--account",
            metavar="NAME",
            help="Send through this account of ACCOUNTS (default: the top-level settings).",
        )
        # The caller's own data, stored on the message (never sent to WhatsApp).
        parser.add_argument(
            "--tag",
            action="append",
            default=[],
            dest="tags",
            metavar="TAG",
            help="A tag to store on the message; repeat for several.",
        )
        parser.add_argument(
            "--metadata",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="A metadata entry (a string value) to store on the message; repeat for several.",
        )
        parser.add_argument(
            "--idempotency-key",
            metavar="KEY",
            help="Send at most once with this key: run again with it, nothing is sent and the "
            "first message is reported.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        to, source_addr, account = options["to"], options["source_addr"], options["account"]
        if options["caption"] and not options["image"]:
            raise CommandError("--caption goes with --image.")
        if (options["params"] or options["header"] or options["language"]) and not options[
            "template"
        ]:
            raise CommandError("--param, --header and --language go with --template.")
        own: dict[str, Any] = {
            "metadata": self.metadata(options["metadata"]),
            "tags": options["tags"] or None,
            "idempotency_key": options["idempotency_key"],
        }
        key = options["idempotency_key"]
        earlier = bool(key) and Message.objects.filter(idempotency_key=key).exists()
        try:
            if options["text"] is not None:
                message = services.send_text(
                    to, options["text"], source_addr=source_addr, account=account, **own
                )
            elif options["image"] is not None:
                message = services.send_media(
                    to,
                    options["image"],
                    options["caption"],
                    source_addr=source_addr,
                    account=account,
                    **own,
                )
            else:
                message = services.send_template(
                    to,
                    self.template(options["template"], options["language"]),
                    options["params"],
                    options["header"],
                    source_addr=source_addr,
                    account=account,
                    **own,
                )
        except IdempotencyConflict as error:
            raise CommandError(f"Nothing was sent. --idempotency-key: {error}") from error
        except ValidationError as error:
            described = _describe(error, image=options["image"] is not None)
            raise CommandError(f"Nothing was sent. {described}") from error
        except ImproperlyConfigured as error:
            raise CommandError(f"Nothing was sent. {error}") from error
        if earlier:
            self.stdout.write(
                f"Already sent with idempotency key {key!r}: nothing was sent now; "
                "the first message follows."
            )
        self.report(message)

    def metadata(self, entries: list[str]) -> dict[str, str] | None:
        """``--metadata KEY=VALUE`` entries as a dict (``None`` when there are none)."""
        if not entries:
            return None
        metadata: dict[str, str] = {}
        for entry in entries:
            key, sep, value = entry.partition("=")
            if not sep or not key.strip():
                raise CommandError(
                    f"Nothing was sent. --metadata: {entry!r} is not KEY=VALUE (e.g. order=42)."
                )
            metadata[key.strip()] = value
        return metadata

    def template(self, name: str, language: str | None) -> Template | str:
        """The template by name, or by name and language when ``--language`` is given."""
        if language is None:
            return name
        template = Template.objects.filter(name=name, language_code=language).first()
        if template is None:
            raise CommandError(
                f"Nothing was sent. --template: there is no template {name!r} in language "
                f"{language!r}."
            )
        return template

    def report(self, message: Message) -> None:
        line = f"Message {message.pk} to +{message.destination_addr}: {message.status}"
        if message.status == Message.Status.ACCEPTED:
            self.stdout.write(
                self.style.SUCCESS(f"{line}, provider id {message.provider_message_id}.")
            )
            return
        if message.status == Message.Status.QUEUED:
            self.stdout.write(self.style.SUCCESS(f"{line}: queued; a worker will send it."))
            return
        if message.status == Message.Status.UNKNOWN:
            raise CommandError(
                f"{line}: the gateway may have taken it but did not answer "
                f"({message.error_message}). Do not send it again: a callback will settle it."
            )
        raise CommandError(f"{line}: {message.error_name}: {message.error_message}")
