"""Signed callback URLs: each names one message, and only that message.

The signature is an HMAC-SHA256 of the message's UUID keyed by ``CALLBACK_SECRET``. With a list of
secrets the first signs and every one verifies, so secrets can be rotated.
"""

from __future__ import annotations

import uuid

from django.urls import reverse
from django.utils.crypto import constant_time_compare, salted_hmac

from .conf import WhatsAppSettings, get_settings

SALT = "django_whatsapp.callback"


def sign(message_uuid: uuid.UUID | str, secret: str) -> str:
    return salted_hmac(SALT, str(message_uuid), secret=secret, algorithm="sha256").hexdigest()


def verify(
    message_uuid: uuid.UUID | str, signature: str, conf: WhatsAppSettings | None = None
) -> bool:
    """True when ``signature`` was made for this UUID by any configured secret (constant time)."""
    conf = conf or get_settings()
    matched = False
    for secret in conf.CALLBACK_SECRETS:
        # No early exit: the time taken does not tell which secret matched.
        matched |= constant_time_compare(sign(message_uuid, secret), signature)
    return matched


def callback_url(message_uuid: uuid.UUID | str, conf: WhatsAppSettings | None = None) -> str | None:
    """The absolute, signed callback URL of a message, or ``None`` when callbacks are off."""
    conf = conf or get_settings()
    if not conf.CALLBACK_BASE_URL:
        return None
    secret = conf.require_callback_secrets()[0]
    path = reverse(
        "django_whatsapp:callback",
        kwargs={"message_uuid": message_uuid, "signature": sign(message_uuid, secret)},
    )
    return f"{conf.CALLBACK_BASE_URL}{path}"


#: What a signature is replaced by in a log line.
MASK = "<signature>"


def mask_url(url: str | None) -> str:
    """``url`` fit for a log line: every path segment that looks like a signature (32 or more
    hex digits, as the callback and inbound URLs carry) is replaced by ``<signature>``; the
    query string and fragment are dropped. A signed URL is a credential: it never reaches a log
    line whole."""
    text = (url or "").split("?", 1)[0].split("#", 1)[0]
    segments = text.split("/")
    for index, segment in enumerate(segments):
        if len(segment) >= 32 and all(char in "0123456789abcdefABCDEF" for char in segment):
            segments[index] = MASK
    return "/".join(segments)
