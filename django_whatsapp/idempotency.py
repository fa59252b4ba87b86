"""Idempotent sends: a caller's ``idempotency_key`` makes a send happen once.

The key is stored on the message (``Message.idempotency_key``), unique per account: the same key
under another account is another send. A send with a key first inserts its message; a second
send with the same key and account (a retried web request or task) finds the first message and
gets it back without sending anything, also when many threads or processes race: the
database's unique index lets exactly one insert win. A key reused with any other content (the
recipient, type, text, image, sender, template, its parameters and header, metadata, tags or
target) raises :class:`~django_whatsapp.exceptions.IdempotencyConflict` naming the fields that
differ.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from .exceptions import IdempotencyConflict
from .inputs import check_input
from .models import Message

#: The longest key, in characters.
MAX_KEY_LENGTH = 255


def clean_key(value: Any, *, reserve: int = 0) -> str:
    """A non-empty key of at most ``MAX_KEY_LENGTH - reserve`` characters; raises
    ``ValidationError`` otherwise (``reserve``: room kept for a suffix, as bulk sends add the
    recipient)."""
    limit = MAX_KEY_LENGTH - reserve
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(
            {"idempotency_key": _("The idempotency key must be a non-empty string.")}
        )
    try:
        check_input(value)
    except ValidationError as error:
        raise ValidationError({"idempotency_key": error}) from None
    if len(value) > limit:
        raise ValidationError(
            {
                "idempotency_key": _("The idempotency key is longer than %(max)d characters.")
                % {"max": limit}
            }
        )
    return value


def _content(message: Message) -> dict[str, Any]:
    """What a send's content is, field by field, for comparing two sends of one key."""
    params = message.template_params or {}
    return {
        "recipient": message.destination_addr,
        "type": int(message.message_type),
        "text": message.text or "",
        "file_url": message.file_url or "",
        "template": message.template_id,
        "params": [str(p) for p in params.get("body", []) or []],
        "header": params.get("header") or None,
        "sender": message.source_addr or "",
        "metadata": message.metadata or {},
        "tags": list(message.tags or []),
        "target": (message.target_content_type_id, message.target_object_id or ""),
    }


def differences(first: Message, again: Message) -> list[str]:
    """The names of the content fields in which ``again`` differs from ``first``."""
    old, new = _content(first), _content(again)
    return [name for name in old if old[name] != new[name]]


def same_or_conflict(first: Message, again: Message) -> Message:
    """``first``, when ``again`` asks for the same content; else raise
    :class:`IdempotencyConflict`."""
    fields = differences(first, again)
    if fields:
        raise IdempotencyConflict(str(again.idempotency_key), first, fields)
    return first


def store_once(message: Message) -> tuple[Message, bool]:
    """Insert a validated, unsaved message with its key. Returns ``(message, True)`` when this
    call stored it, or ``(first, False)`` with the message an earlier call stored with the same
    key (raises :class:`IdempotencyConflict` when its content differs)."""
    key = message.idempotency_key
    if not key:
        raise ValueError("store_once needs a message with an idempotency_key")
    mine = Message.objects.filter(idempotency_key=key, account=message.account)
    first = mine.first()
    if first is not None:
        return same_or_conflict(first, message), False
    try:
        with transaction.atomic():
            message.save(force_insert=True)
    except IntegrityError:
        # Another caller inserted the key first (it waited for that insert to commit).
        message.pk = None
        message._state.adding = True
        first = mine.first()
        if first is None:
            raise
        return same_or_conflict(first, message), False
    return message, True


def existing_by_key(keys: list[str], account: str) -> dict[str, Message]:
    """The messages of ``account`` already stored with any of ``keys``, by key (one query per
    500 keys)."""
    found: dict[str, Message] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        stored = Message.objects.filter(idempotency_key__in=chunk, account=account)
        found.update((m.idempotency_key or "", m) for m in stored)
    return found
