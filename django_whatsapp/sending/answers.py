"""What the gateway answered, as every database keeps it: its answer on a status event, its
error on the message."""

from __future__ import annotations

import math
from typing import Any

from ..exceptions import WhatsAppError
from ..inputs import storable

#: How deeply a gateway answer is kept on a status event; deeper parts are kept as text.
MAX_KEPT_DEPTH = 32


def storable_answer(value: Any, depth: int = 0) -> Any:
    """The gateway's answer as every database's JSON column keeps it: NUL characters and lone
    surrogates in strings and keys become escapes (``\\x00``, ``\\ud800``), numbers that are
    not finite become strings, and parts nested deeper than ``MAX_KEPT_DEPTH`` become text."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict | list) and depth >= MAX_KEPT_DEPTH:
        return storable_answer(repr(value)[:1000])
    if isinstance(value, dict):
        return {
            storable_answer(str(key)): storable_answer(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [storable_answer(item, depth + 1) for item in value]
    return value


#: The most characters of a gateway's error message kept on the message (the whole answer is
#: kept on the event, made storable).
MAX_ERROR_MESSAGE = 4000


def storable_text(text: Any, limit: int | None = None) -> str:
    """Outside text (a gateway's error name or message) as every database's text column keeps
    it: NUL characters and lone surrogates escaped (:func:`storable_answer`), at most ``limit``
    characters."""
    stored = str(storable_answer(str(text) if text is not None else ""))
    return stored[:limit] if limit is not None else stored


def error_payload(error: WhatsAppError) -> dict[str, Any]:
    """What a status event keeps of ``error``: its type, name, message, codes and the gateway's
    answer, storable whatever the gateway sent."""
    body = error.body if isinstance(error.body, dict | list | str | int | float) else None
    body = storable_answer(body)
    return {
        "exception": type(error).__name__,
        "name": storable_text(error.name, 1000),
        "message": storable_text(error.message, MAX_ERROR_MESSAGE),
        "code": error.code,
        "status": error.status,
        "http_status": error.http_status,
        "maybe_delivered": error.maybe_delivered,
        "body": body,
    }


def error_fields(error: WhatsAppError) -> dict[str, Any]:
    """The message's error columns for ``error``, storable whatever the gateway sent."""
    code = error.code if error.code is None or -(2**31) <= error.code < 2**31 else None
    return {
        "error_code": code,
        "error_name": storable_text(error.name, 255),
        "error_message": storable_text(error.message, MAX_ERROR_MESSAGE),
    }
