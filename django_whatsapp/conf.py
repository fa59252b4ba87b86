"""The one accessor for ``settings.DJANGO_WHATSAPP``.

Read at call time, so ``override_settings`` just works.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

SETTING_NAME = "DJANGO_WHATSAPP"

DEFAULTS: dict[str, Any] = {
    "API_KEY": None,
    "BASE_URL": "https://web.it-decision.com/v1/api",
    "SEND_PATH": "send-whatsapp",
    "STATUS_PATH": "receive-whatsapp",
    "DEFAULT_SOURCE_ADDR": None,
    "CALLBACK_BASE_URL": None,
    "CALLBACK_SECRET": None,
    "TIMEOUT": (5, 30),
    "MAX_RETRIES": 3,
    "SEND_ASYNC": False,
    # Largest callback body accepted, in bytes; larger ones are refused before parsing.
    "CALLBACK_MAX_BYTES": 64 * 1024,
    # Seconds between the sandbox's simulated status callbacks.
    "SANDBOX_CALLBACK_DELAY": 1.0,
    # The 24-hour customer-service window: "off", "warn" or "enforce" (see window.py).
    "SERVICE_WINDOW_POLICY": "off",
    # Whether the sandbox refuses text and images to a number that has not written in 24 hours.
    "SANDBOX_ENFORCE_WINDOW": False,
    # The most requests per second to the gateway from all processes together (None: no limit),
    # and the Django cache alias that holds that shared budget (see ratelimit.py).
    "RATE_LIMIT": None,
    "RATE_LIMIT_CACHE": "default",
    # Seconds a campaign worker holds a chunk without renewing it; a chunk whose lease runs out
    # (its worker died) is taken over by another worker (see campaigns/engine.py).
    "CAMPAIGN_LEASE": 60,
}

#: The values of ``SERVICE_WINDOW_POLICY``.
WINDOW_POLICIES = ("off", "warn", "enforce")


def _secret_repr(value: object) -> str:
    return "'***'" if value else repr(value)


@dataclass(frozen=True)
class WhatsAppSettings:
    """A validated snapshot of ``settings.DJANGO_WHATSAPP``; secrets are masked in its repr."""

    API_KEY: str | None = field(repr=False)
    BASE_URL: str
    SEND_PATH: str
    STATUS_PATH: str
    DEFAULT_SOURCE_ADDR: str | None
    CALLBACK_BASE_URL: str | None
    CALLBACK_SECRETS: tuple[str, ...] = field(repr=False)
    TIMEOUT: tuple[float, float]
    MAX_RETRIES: int
    SEND_ASYNC: bool
    CALLBACK_MAX_BYTES: int
    SANDBOX_CALLBACK_DELAY: float
    SERVICE_WINDOW_POLICY: str = "off"
    SANDBOX_ENFORCE_WINDOW: bool = False
    RATE_LIMIT: float | None = None
    RATE_LIMIT_CACHE: str = "default"
    CAMPAIGN_LEASE: float = 60.0

    def __repr__(self) -> str:
        return (
            f"WhatsAppSettings(API_KEY={_secret_repr(self.API_KEY)}, BASE_URL={self.BASE_URL!r}, "
            f"CALLBACK_BASE_URL={self.CALLBACK_BASE_URL!r}, "
            f"CALLBACK_SECRET={_secret_repr(self.CALLBACK_SECRETS)}, TIMEOUT={self.TIMEOUT!r}, "
            f"MAX_RETRIES={self.MAX_RETRIES!r}, SEND_ASYNC={self.SEND_ASYNC!r})"
        )

    @property
    def send_url(self) -> str:
        return f"{self.BASE_URL.rstrip('/')}/{self.SEND_PATH.lstrip('/')}"

    @property
    def status_url(self) -> str:
        return f"{self.BASE_URL.rstrip('/')}/{self.STATUS_PATH.lstrip('/')}"

    @property
    def callbacks_enabled(self) -> bool:
        return bool(self.CALLBACK_BASE_URL)

    def require_api_key(self) -> str:
        if not self.API_KEY:
            raise ImproperlyConfigured(
                f"{SETTING_NAME}['API_KEY'] is not set: ask your DecisionTelecom account manager "
                "for an access key, or point BASE_URL at the sandbox."
            )
        return self.API_KEY

    def require_callback_secrets(self) -> tuple[str, ...]:
        if not self.CALLBACK_SECRETS:
            raise ImproperlyConfigured(
                f"{SETTING_NAME}['CALLBACK_SECRET'] is not set, but CALLBACK_BASE_URL is: callback "
                "URLs are signed with it. Set a long random string."
            )
        return self.CALLBACK_SECRETS


def _bad(key: str, why: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{SETTING_NAME}['{key}'] {why}")


def _seconds(value: Any) -> bool:
    """A positive, finite number of seconds (``None`` or infinity would mean no timeout)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _timeout(value: Any) -> tuple[float, float]:
    if _seconds(value):
        return (float(value), float(value))
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(_seconds(v) for v in value)
    ):
        return (float(value[0]), float(value[1]))
    raise _bad("TIMEOUT", "must be a positive number of seconds or a (connect, read) pair of them.")


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _secrets(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise _bad("CALLBACK_SECRET", "must be a string or a list of non-empty strings (first signs).")


def _optional_str(raw: dict[str, Any], key: str) -> str | None:
    value = raw[key]
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _bad(key, "must be a string.")
    return value


def _int(raw: dict[str, Any], key: str, minimum: int) -> int:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _bad(key, f"must be a whole number of at least {minimum}.")
    return value


def _float(raw: dict[str, Any], key: str) -> float:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise _bad(key, "must be a number of seconds, zero or more.")
    return float(value)


def _lease(value: Any) -> float:
    if not _seconds(value):
        raise _bad("CAMPAIGN_LEASE", "must be a positive number of seconds.")
    return float(value)


def get_settings() -> WhatsAppSettings:
    """Read and validate ``settings.DJANGO_WHATSAPP`` now."""
    user = getattr(settings, SETTING_NAME, {})
    if not isinstance(user, dict):
        raise ImproperlyConfigured(f"settings.{SETTING_NAME} must be a dict.")
    unknown = sorted(set(user) - set(DEFAULTS))
    if unknown:
        raise ImproperlyConfigured(
            f"settings.{SETTING_NAME} has unknown keys: {', '.join(unknown)}. "
            f"Known keys: {', '.join(DEFAULTS)}."
        )
    raw = {**DEFAULTS, **user}
    for key in ("BASE_URL", "SEND_PATH", "STATUS_PATH"):
        if not isinstance(raw[key], str) or not raw[key]:
            raise _bad(key, "must be a non-empty string.")
    if not _is_http_url(raw["BASE_URL"]):
        raise _bad("BASE_URL", "must be an http:// or https:// URL with a host.")
    callback_base = _optional_str(raw, "CALLBACK_BASE_URL")
    if callback_base is not None and not _is_http_url(callback_base):
        raise _bad("CALLBACK_BASE_URL", "must be an origin such as https://example.com.")
    source_addr = _optional_str(raw, "DEFAULT_SOURCE_ADDR")
    if source_addr is not None and len(source_addr) > 20:
        raise _bad("DEFAULT_SOURCE_ADDR", "must be at most 20 characters (the gateway's limit).")
    if not isinstance(raw["SEND_ASYNC"], bool):
        raise _bad("SEND_ASYNC", "must be True or False.")
    policy = raw["SERVICE_WINDOW_POLICY"]
    if not isinstance(policy, str) or policy.strip().lower() not in WINDOW_POLICIES:
        raise _bad("SERVICE_WINDOW_POLICY", "must be 'off', 'warn' or 'enforce'.")
    if not isinstance(raw["SANDBOX_ENFORCE_WINDOW"], bool):
        raise _bad("SANDBOX_ENFORCE_WINDOW", "must be True or False.")
    rate = raw["RATE_LIMIT"]
    if rate is not None and not _seconds(rate):
        raise _bad(
            "RATE_LIMIT", "must be None (no limit) or a positive number of requests per second."
        )
    if not isinstance(raw["RATE_LIMIT_CACHE"], str) or not raw["RATE_LIMIT_CACHE"]:
        raise _bad("RATE_LIMIT_CACHE", "must be the alias of a cache in settings.CACHES.")
    return WhatsAppSettings(
        API_KEY=_optional_str(raw, "API_KEY"),
        BASE_URL=raw["BASE_URL"],
        SEND_PATH=raw["SEND_PATH"],
        STATUS_PATH=raw["STATUS_PATH"],
        DEFAULT_SOURCE_ADDR=source_addr,
        CALLBACK_BASE_URL=callback_base.rstrip("/") if callback_base else None,
        CALLBACK_SECRETS=_secrets(raw["CALLBACK_SECRET"]),
        TIMEOUT=_timeout(raw["TIMEOUT"]),
        MAX_RETRIES=_int(raw, "MAX_RETRIES", 0),
        SEND_ASYNC=raw["SEND_ASYNC"],
        CALLBACK_MAX_BYTES=_int(raw, "CALLBACK_MAX_BYTES", 1),
        SANDBOX_CALLBACK_DELAY=_float(raw, "SANDBOX_CALLBACK_DELAY"),
        SERVICE_WINDOW_POLICY=policy.strip().lower(),
        SANDBOX_ENFORCE_WINDOW=raw["SANDBOX_ENFORCE_WINDOW"],
        RATE_LIMIT=float(rate) if rate is not None else None,
        RATE_LIMIT_CACHE=raw["RATE_LIMIT_CACHE"],
        CAMPAIGN_LEASE=_lease(raw["CAMPAIGN_LEASE"]),
    )
