"""Make the sandbox deliver a customer's message to this project's inbound URL."""

from __future__ import annotations

import base64
import json
from typing import Any

import requests
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ... import inbound, sandbox
from ...conf import get_settings
from ...sandbox.gateway import CALLBACK_TIMEOUT, InboundDelivery, gateway


class Command(BaseCommand):
    help = (
        "Have the sandbox gateway deliver a customer's WhatsApp message to this project's "
        "inbound URL, as the real gateway would (the number's 24-hour window opens)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from", dest="sender", required=True, help="The customer's number (+380501234567)."
        )
        parser.add_argument("--text", default="", help="What the customer writes.")
        parser.add_argument("--image", default="", metavar="URL", help="An image (.jpg/.png URL).")
        parser.add_argument(
            "--to", default="", help="Our number the customer writes to (DEFAULT_SOURCE_ADDR)."
        )
        parser.add_argument(
            "--url",
            default="",
            metavar="INBOUND_URL",
            help="The inbound URL to deliver to (default: CALLBACK_BASE_URL and the signed path).",
        )
        parser.add_argument(
            "--direct",
            action="store_true",
            help="Deliver from this process instead of through the running server's sandbox "
            "(the server's sandbox then does not learn that the number wrote).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["text"].strip() and not options["image"]:
            raise CommandError("Give --text, --image or both.")
        try:
            url = options["url"] or inbound.inbound_url()
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from error
        if not url:
            raise CommandError(
                "No inbound URL: set CALLBACK_BASE_URL in DJANGO_WHATSAPP (the server's origin), "
                "or pass --url."
            )
        fields = {
            "from": options["sender"],
            "text": options["text"],
            "image": options["image"],
            "to": options["to"],
            "url": url,
        }
        if options["direct"]:
            delivery = self.deliver_here(fields)
        else:
            delivery = self.deliver_through_server(fields)
        self.report(delivery)

    def deliver_here(self, fields: dict[str, str]) -> InboundDelivery:
        try:
            return gateway.deliver_inbound(
                fields["url"],
                fields["from"],
                text=fields["text"],
                image=fields["image"],
                to=fields["to"],
            )
        except ValueError as error:
            raise CommandError(f"Nothing was delivered: invalid {_option(str(error))}.") from error

    def deliver_through_server(self, fields: dict[str, str]) -> InboundDelivery:
        conf = get_settings()
        if not sandbox.in_use(conf.BASE_URL):
            raise CommandError(
                f"BASE_URL ({conf.BASE_URL}) is not this project's sandbox: only the sandbox "
                "simulates customers. Use --direct to deliver from this process anyway."
            )
        endpoint = f"{conf.BASE_URL.rstrip('/')}/{sandbox.SIMULATE_INBOUND_PATH}"
        key = base64.b64encode((conf.API_KEY or "sandbox").encode()).decode()
        try:
            response = requests.post(
                endpoint,
                json=fields,
                headers={"Authorization": f"Basic {key}"},
                timeout=(CALLBACK_TIMEOUT[0], CALLBACK_TIMEOUT[1] * 2),
            )
        except requests.RequestException as error:
            raise CommandError(
                f"The sandbox at {conf.BASE_URL} did not answer ({type(error).__name__}): is the "
                "server running? --direct delivers from this process instead."
            ) from error
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "message_id" not in body:
            name = body.get("name") if isinstance(body, dict) else None
            if isinstance(name, str) and name.startswith("Invalid Parameter: "):
                param = name.removeprefix("Invalid Parameter: ")
                raise CommandError(f"Nothing was delivered: invalid {_option(param)}.")
            raise CommandError(
                f"The sandbox answered HTTP {response.status_code}: {response.text[:200]}"
            )
        return InboundDelivery(
            message_id=int(body["message_id"]),
            url=str(body.get("url") or fields["url"]),
            payload={},
            http_status=body.get("http_status"),
            answer=body.get("answer"),
            error=body.get("error"),
        )

    def report(self, delivery: InboundDelivery) -> None:
        line = f"Inbound message {delivery.message_id} delivered to {delivery.url}"
        if delivery.http_status is None:
            raise CommandError(f"{line}: no answer ({delivery.error}).")
        answer = json.dumps(delivery.answer, ensure_ascii=False)
        if not delivery.ok:
            raise CommandError(f"{line}: HTTP {delivery.http_status} {answer}")
        self.stdout.write(self.style.SUCCESS(f"{line}: HTTP {delivery.http_status} {answer}"))


#: The option that gave each of the sandbox's parameters, to name it in an error.
OPTIONS = {"from": "--from", "text": "--text", "image": "--image", "to": "--to", "url": "--url"}


def _option(param: str) -> str:
    return OPTIONS.get(param, param)
