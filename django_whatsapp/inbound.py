"""Receiving: the messages customers send, delivered by the gateway to the inbound endpoint.

The provider's document says the API "sends and receives" messages but not what a received one
looks like, so nothing here depends on one shape:

1. every request to the signed inbound URL is stored as it came, in its own transaction, before it
   is read (:func:`store_report`): an :class:`~django_whatsapp.models.InboundReport`;
2. it is read (:func:`parse_request`) as JSON, form fields or the query string;
3. the messages in it are found (:func:`find_messages`) under the field names of the gateway's
   family (``source_addr``, ``destination_addr``, ``text``, ``file_url``; or ``from``/``to``/
   ``msisdn``/``phone``, ``message``/``body``, ``media_url``/``url``, ``message_id``/``id``), or in
   a body shaped like Meta's webhook (``messages: [{from, id, text: {body}, image: {link}}]``, at
   the top or under ``entry[].changes[].value``);
4. each becomes an inbound :class:`~django_whatsapp.models.Message` (:func:`receive`): the
   customer's number in ``destination_addr`` (a conversation is every message with one number),
   ours in ``source_addr``, status ``delivered`` (it reached its recipient, us; no report ever
   changes it), no provider message id (so status polls and resyncs never touch it). The
   customer's window opens (:func:`django_whatsapp.window.record_inbound`) and
   ``message_received`` is sent.

The report's ``outcome`` says how it went: ``understood``; ``partial`` (a sender was found, but
not all the content: no text and no usable image link, e.g. a voice note; the message is stored
with what there is, so the conversation shows that the customer wrote, and the window opens);
``duplicate`` (every message in it was already stored); ``not_understood`` (no sender found, or
the body cannot be read: nothing but the report is stored); ``refused`` (too large to read).

The same message delivered twice is stored once: ``Message.inbound_key`` is unique, a hash of the
sender and the provider's message id, or, when there is no id, of the sender and the whole item.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation, ValidationError
from django.db import IntegrityError, connections, router, transaction
from django.db.models.constants import OnConflict
from django.http import HttpRequest, QueryDict
from django.http.multipartparser import MultiPartParserError
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.dateparse import parse_datetime

from . import optout, sending, signals, window
from .conf import WhatsAppSettings, account_for_sender, get_settings
from .inputs import storable
from .models import InboundReport, Message
from .numbers import mask_number
from .validation import clean_recipient

logger = logging.getLogger("django_whatsapp.inbound")

Outcome = InboundReport.Outcome

SALT = "django_whatsapp.inbound"
#: What the inbound URL's signature signs: the URL names no object, only this purpose.
PURPOSE = "inbound-messages"
#: More messages than this in one report are not read (the report is kept).
MAX_MESSAGES = 20
MAX_URL_LENGTH = 2048
MAX_ADDR_LENGTH = 20

SENDER_KEYS = ("source_addr", "from", "msisdn", "phone", "sender", "wa_id", "from_number")
RECIPIENT_KEYS = ("destination_addr", "to", "recipient", "to_number")
TEXT_KEYS = ("text", "message", "body", "caption", "content")
MEDIA_KEYS = ("file_url", "media_url", "url", "image_url", "image", "media")
ID_KEYS = ("message_id", "id", "messageId", "wamid", "msg_id")
TIME_KEYS = ("timestamp", "time", "date", "sent_at", "created_at")
NAME_KEYS = ("name", "profile_name", "sender_name")
LINK_KEYS = ("link", "url", "file_url", "media_url")


# -- the signed URL ----------------------------------------------------------------------------


def sign(secret: str) -> str:
    return salted_hmac(SALT, PURPOSE, secret=secret, algorithm="sha256").hexdigest()


def verify(signature: str, conf: WhatsAppSettings | None = None) -> bool:
    """True when ``signature`` was made by any key of ``INBOUND_SECRET`` (by default
    ``CALLBACK_SECRET``'s): constant time, every key compared. A list rotates the inbound URL:
    the first key signs it, every one verifies."""
    conf = conf or get_settings()
    matched = False
    for secret in conf.INBOUND_SECRETS:
        matched |= constant_time_compare(sign(secret), signature)
    return matched


def inbound_path(conf: WhatsAppSettings | None = None) -> str:
    """The signed inbound path (``/whatsapp/inbound/<signature>/``), signed with the first key
    of ``INBOUND_SECRET`` (by default ``CALLBACK_SECRET``'s); ``ImproperlyConfigured`` when
    neither is set."""
    conf = conf or get_settings()
    if not conf.INBOUND_SECRETS:
        raise ImproperlyConfigured(
            "Neither DJANGO_WHATSAPP['INBOUND_SECRET'] nor ['CALLBACK_SECRET'] is set: the "
            "inbound URL is signed with one of them. Set a long random string."
        )
    return reverse("django_whatsapp:inbound", kwargs={"signature": sign(conf.INBOUND_SECRETS[0])})


def inbound_url(conf: WhatsAppSettings | None = None) -> str | None:
    """The absolute URL to give the provider for incoming messages: ``CALLBACK_BASE_URL`` and
    the signed path, or ``None`` when ``CALLBACK_BASE_URL`` is not set."""
    conf = conf or get_settings()
    if not conf.CALLBACK_BASE_URL:
        return None
    return f"{conf.CALLBACK_BASE_URL}{inbound_path(conf)}"


# -- storing the raw report --------------------------------------------------------------------


def store_report(
    *,
    method: str,
    content_type: str = "",
    query_string: str = "",
    body: bytes = b"",
    body_size: int | None = None,
    outcome: str = Outcome.RECEIVED,
    detail: str = "",
) -> InboundReport:
    """Store a request as it came, committed at once (call it outside a transaction). Bytes that
    are not UTF-8 are kept as ``\\xNN`` escapes."""
    return InboundReport.objects.create(
        method=method[:8],
        content_type=storable(content_type)[:255],
        query_string=storable(query_string),
        body=storable(body.decode("utf-8", errors="backslashreplace")),
        body_size=len(body) if body_size is None else body_size,
        outcome=outcome,
        detail=detail,
    )


# -- reading it --------------------------------------------------------------------------------


class NotUnderstood(ValueError):
    """The report holds no message this module can read; the reason is its text."""


def _flat(data: QueryDict) -> dict[str, Any]:
    return {key: data.get(key) for key in data}


def _looks_like_json(body: bytes) -> bool:
    return body.lstrip()[:1] in (b"{", b"[")


def parse_request(request: HttpRequest, body: bytes) -> Any:
    """The report's data: a JSON value, or form fields or query parameters as a dict. A POST
    with an empty body is read from its query string. Raises :class:`NotUnderstood`."""
    try:
        data = _parse(request, body)
    except SuspiciousOperation as error:  # too many fields
        raise NotUnderstood(f"Malformed body: {error}") from error
    if data == {} and request.GET:
        return _flat(request.GET)  # form fields were expected, the query string has them
    return data


def _parse(request: HttpRequest, body: bytes) -> Any:
    if request.method != "POST" or not body.strip():
        return _flat(request.GET)
    content_type = (request.content_type or "").lower()
    if content_type == "application/x-www-form-urlencoded":
        return _flat(QueryDict(body, encoding=request.encoding))
    if content_type == "multipart/form-data":
        try:
            return _flat(request.POST)
        except (MultiPartParserError, ValueError) as error:
            raise NotUnderstood(f"Malformed multipart body: {error}") from error
    if content_type.endswith("json") or _looks_like_json(body):
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as error:
            raise NotUnderstood(f"Malformed JSON: {error}") from error
    if b"=" in body:
        return _flat(QueryDict(body, encoding=request.encoding))
    raise NotUnderstood(f"A body of type {content_type or 'unknown'!r} is not understood.")


@dataclass
class Received:
    """One customer message found in a report."""

    sender: str
    recipient: str = ""
    text: str = ""
    file_url: str = ""
    provider_id: str | None = None
    sent_at: datetime | None = None
    name: str = ""
    #: what could not be read (the report is then ``partial``)
    problems: list[str] = field(default_factory=list)
    #: the item as it came, for the duplicate key when it has no id
    raw: Any = None

    @property
    def key(self) -> str:
        if self.provider_id:
            source = f"id\n{self.sender}\n{self.provider_id}"
        else:
            source = f"item\n{self.sender}\n{json.dumps(self.raw, sort_keys=True, default=str)}"
        return hashlib.sha256(source.encode("utf-8", errors="backslashreplace")).hexdigest()


def _first(item: Mapping[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        value = item.get(key)
        if value not in (None, "", [], {}):
            return value
    return None


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int):
        return str(value).strip() or None
    return None


def _text_of(value: Any, depth: int = 0) -> str:
    """A text from ``"hi"``, ``{"body": "hi"}``, ``{"text": {"body": "hi"}}``..."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and depth < 3:
        for key in ("body", "text", "caption", "content"):
            text = _text_of(value.get(key), depth + 1)
            if text:
                return text
    return ""


def _link_of(value: Any, depth: int = 0) -> tuple[str, bool]:
    """The URL in ``"https://..."`` or ``{"link": ...}``; and whether media was there at all."""
    if isinstance(value, str):
        return value.strip(), True
    if isinstance(value, Mapping) and depth < 3:
        for key in LINK_KEYS:
            link, _present = _link_of(value.get(key), depth + 1)
            if link:
                return link, True
        return "", bool(value)
    return "", value not in (None, "", [], {})


def _usable_url(url: str) -> bool:
    if storable(url) != url:  # a NUL or a lone surrogate: not a link anything can fetch
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and len(url) <= MAX_URL_LENGTH


def _timestamp(value: Any, now: datetime) -> datetime | None:
    """When the customer sent it: epoch seconds or milliseconds, or an ISO date; never later
    than ``now``."""
    moment: datetime | None = None
    text = _scalar(value) if not isinstance(value, float) else str(value)
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        number = None
    try:
        if number is not None:
            seconds = number / 1000 if number > 1e11 else number
            moment = datetime.fromtimestamp(seconds, tz=UTC)
        else:
            moment = parse_datetime(text)
            if moment is not None and timezone.is_naive(moment):
                moment = moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    if moment is None or moment < now - timedelta(days=365):
        return None
    return min(moment, now)


def _meta_messages(data: Mapping[str, Any]) -> tuple[list[Any], dict[str, str], str] | None:
    """The ``messages`` of a Meta-shaped webhook (at the top, or under entry/changes/value), the
    profile names by number, and our number from ``metadata``; ``None`` for another shape."""

    def from_value(value: Mapping[str, Any]) -> tuple[list[Any], dict[str, str], str]:
        found = value.get("messages")
        messages = found if isinstance(found, list) else [found] if found else []
        names: dict[str, str] = {}
        contacts = value.get("contacts")
        for contact in contacts if isinstance(contacts, list) else []:
            if isinstance(contact, Mapping):
                profile = contact.get("profile")
                name = profile.get("name") if isinstance(profile, Mapping) else None
                number = _scalar(contact.get("wa_id"))
                if number and isinstance(name, str):
                    names[number] = name
        metadata = value.get("metadata")
        ours = (
            _scalar(metadata.get("display_phone_number")) if isinstance(metadata, Mapping) else None
        )
        return messages, names, ours or ""

    if "messages" in data and isinstance(data["messages"], list | Mapping):
        return from_value(data)
    entries = data.get("entry")
    if not isinstance(entries, list):
        return None
    messages: list[Any] = []
    names: dict[str, str] = {}
    ours = ""
    for entry in entries:
        changes = entry.get("changes") if isinstance(entry, Mapping) else None
        for change in changes if isinstance(changes, list) else []:
            value = change.get("value") if isinstance(change, Mapping) else None
            if isinstance(value, Mapping):
                more, more_names, number = from_value(value)
                messages.extend(more)
                names.update(more_names)
                ours = ours or number
    return messages, names, ours


def _has_statuses(data: Mapping[str, Any]) -> bool:
    if "statuses" in data:
        return True
    entries = data.get("entry")
    for entry in entries if isinstance(entries, list) else []:
        changes = entry.get("changes") if isinstance(entry, Mapping) else None
        for change in changes if isinstance(changes, list) else []:
            value = change.get("value") if isinstance(change, Mapping) else None
            if isinstance(value, Mapping) and "statuses" in value:
                return True
    return False


def _read_item(
    item: Any, *, recipient: str, names: Mapping[str, str], now: datetime
) -> Received | str:
    """One message, or the reason it is not one."""
    if not isinstance(item, Mapping):
        return f"an item of type {type(item).__name__}, not an object"
    raw_sender = _scalar(_first(item, SENDER_KEYS))
    if raw_sender is None:
        return f"no sender ({', '.join(SENDER_KEYS)})"
    try:
        sender = clean_recipient(raw_sender)
    except ValidationError:
        # Not echoed: a log line keeps no number, nor what is nearly one.
        return f"the sender ({len(raw_sender)} characters) is not a phone number"
    ours = _scalar(_first(item, RECIPIENT_KEYS)) or recipient or get_settings().DEFAULT_SOURCE_ADDR
    received = Received(
        sender=sender,
        recipient=storable((ours or "").lstrip("+"))[:MAX_ADDR_LENGTH],
        provider_id=(_scalar(_first(item, ID_KEYS)) or "")[:255] or None,
        sent_at=_timestamp(_first(item, TIME_KEYS), now),
        name=_text_of(_first(item, NAME_KEYS)) or names.get(raw_sender, ""),
        raw=item,
    )
    for key in TEXT_KEYS:
        received.text = _text_of(item.get(key))
        if received.text:
            break
    media_present = False
    for key in MEDIA_KEYS:
        link, present = _link_of(item.get(key))
        media_present = media_present or present
        if link and _usable_url(link):
            received.file_url = link
            break
    if not received.text:
        # A caption inside the media object: {"image": {"link": ..., "caption": ...}}
        received.text = _text_of(_first(item, ("image", "media")))
    if media_present and not received.file_url:
        received.problems.append("media without a usable http(s) link")
    if not received.text and not received.file_url:
        kind = _scalar(item.get("type"))
        what = f" (type {kind[:40]})" if kind else ""
        received.problems.append(f"no text and no image link{what}")
    return received


def find_messages(data: Any, *, now: datetime | None = None) -> list[Received]:
    """The customer messages in a report's data; raises :class:`NotUnderstood` when there is
    none."""
    now = now or timezone.now()
    recipient = ""
    names: dict[str, str] = {}
    if isinstance(data, list):
        items: list[Any] = data
    elif isinstance(data, Mapping):
        meta = _meta_messages(data)
        if meta is not None:
            items, names, recipient = meta
            if not items:
                raise NotUnderstood(
                    "A status report, not a message."
                    if _has_statuses(data)
                    else "No message in the body."
                )
        else:
            nested = data.get("message") if isinstance(data.get("message"), Mapping) else None
            items = [{**data, **nested} if nested is not None else data]
    else:
        raise NotUnderstood("Expected a JSON object, a list of them, or form fields.")
    if not items:
        raise NotUnderstood("No message in the body.")
    if len(items) > MAX_MESSAGES:
        raise NotUnderstood(f"More than {MAX_MESSAGES} messages in one report.")
    found: list[Received] = []
    reasons: list[str] = []
    for item in items:
        read = _read_item(item, recipient=recipient, names=names, now=now)
        if isinstance(read, str):
            reasons.append(read)
        else:
            found.append(read)
    if not found:
        raise NotUnderstood(f"No message could be read: {'; '.join(dict.fromkeys(reasons))}.")
    for reason in dict.fromkeys(reasons):
        found[0].problems.append(f"an item was skipped: {reason}")
    return found


# -- turning it into messages ------------------------------------------------------------------


@dataclass
class Receipt:
    """What became of one report."""

    report: InboundReport
    created: list[Message] = field(default_factory=list)
    duplicates: list[Message] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        return str(self.report.outcome)


def _store(received: Received, now: datetime) -> tuple[Message, bool]:
    """The inbound message for ``received``, and whether it is new (else a duplicate)."""
    key = received.key
    try:
        with transaction.atomic():
            message = Message.objects.create(
                direction=Message.Direction.INBOUND,
                status=Message.Status.DELIVERED,
                status_changed_at=now,
                destination_addr=received.sender,
                source_addr=received.recipient,
                # The account whose number the customer wrote to (list filters, retention).
                account=account_for_sender(received.recipient),
                message_type=Message.MessageType.MEDIA
                if received.file_url
                else Message.MessageType.TEXT,
                text=storable(received.text),
                file_url=received.file_url,
                inbound_key=key,
            )
            window.record_inbound(
                received.sender, received.sent_at or now, name=storable(received.name)
            )
    except IntegrityError:
        existing = Message.objects.filter(inbound_key=key).first()
        if existing is None:
            raise
        return existing, False
    return message, True


def _link(report: InboundReport, messages: list[Message]) -> None:
    """Link the report to its messages in one ``INSERT`` that passes over a link already there
    (``receive`` called again for the same report), in autocommit: ``report.messages.add``
    wrapped the same ``INSERT`` in a transaction of its own (``BEGIN`` and ``COMMIT``: two
    statements more for every reply on PostgreSQL) and sent ``m2m_changed``, which nothing of
    the app listens to. A database that cannot pass over a conflict gets ``add``."""
    pks = list(dict.fromkeys(message.pk for message in messages))
    if not pks:
        return
    links = InboundReport.messages.through
    connection = connections[router.db_for_write(links)]
    if not connection.features.supports_ignore_conflicts:
        report.messages.add(*pks)
        return
    ops = connection.ops
    fields: list[Any] = [links._meta.get_field(name) for name in ("inboundreport", "message")]
    sql = "{insert} {table} ({columns}) VALUES {rows} {suffix}".format(
        insert=ops.insert_statement(on_conflict=OnConflict.IGNORE),
        table=ops.quote_name(links._meta.db_table),
        columns=", ".join(ops.quote_name(field.column) for field in fields),
        rows=", ".join("(%s, %s)" for _ in pks),
        suffix=ops.on_conflict_suffix_sql(fields, OnConflict.IGNORE, None, None),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for pk in pks for value in (report.pk, pk)])


def finish(report: InboundReport, outcome: str, detail: str = "", sender: str = "") -> None:
    report.outcome, report.detail, report.sender = outcome, storable(detail), sender
    InboundReport.objects.filter(pk=report.pk).update(
        outcome=outcome, detail=report.detail, sender=sender
    )


def receive(report: InboundReport, data: Any) -> Receipt:
    """Read a stored report's data, store the messages in it, and send ``message_received`` for
    each new one. Never raises for what the data holds: the outcome says what happened."""
    receipt = Receipt(report)
    now = timezone.now()
    try:
        found = find_messages(data, now=now)
    except NotUnderstood as why:
        finish(report, Outcome.NOT_UNDERSTOOD, str(why))
        logger.warning("WhatsApp inbound report %s not understood: %s", report.pk, why)
        return receipt
    problems: list[str] = []
    for received in found:
        message, new = _store(received, now)
        (receipt.created if new else receipt.duplicates).append(message)
        problems.extend(received.problems)
    _link(report, [*receipt.created, *receipt.duplicates])
    if problems:
        outcome = Outcome.PARTIAL
    elif receipt.created:
        outcome = Outcome.UNDERSTOOD
    else:
        outcome = Outcome.DUPLICATE
    finish(report, outcome, "; ".join(dict.fromkeys(problems)), found[0].sender)
    for message in receipt.created:
        logger.info(
            "WhatsApp message %s received from %s (report %s)",
            message.pk,
            mask_number(message.destination_addr),
            report.pk,
        )
        # An opt-out / opt-in keyword (OPT_OUT_KEYWORDS): acted on before message_received, and
        # kept in the contact's history with this report.
        optout.handle_inbound(message, confirm=sending.send_opt_out_confirmation, report=report)
        signals.message_received.send(sender=Message, message=message, report=report)
    return receipt
