"""System checks: ``manage.py check`` says what is wrong with the configuration, with a hint."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.core.exceptions import ImproperlyConfigured
from django.urls import NoReverseMatch, reverse

from .conf import SETTING_NAME, WhatsAppSettings, get_settings

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOOPBACK_HOSTS


def _sandbox_mounted() -> bool:
    try:
        reverse("django_whatsapp_sandbox:send")
    except NoReverseMatch:
        return False
    return True


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        conf = get_settings()
    except ImproperlyConfigured as error:
        return [
            Error(
                str(error),
                hint=f"See the settings table in README.rst for {SETTING_NAME}.",
                id="django_whatsapp.E001",
            )
        ]
    messages: list[CheckMessage] = []
    if not conf.API_KEY and not _is_loopback(conf.BASE_URL):
        messages.append(
            Error(
                f"{SETTING_NAME}['API_KEY'] is not set, and BASE_URL is the real gateway.",
                hint="Ask your DecisionTelecom account manager for an access key, or point "
                "BASE_URL at a mounted sandbox (http://127.0.0.1:8000/sandbox/v1/api).",
                id="django_whatsapp.E002",
            )
        )
    if conf.CALLBACK_BASE_URL and not conf.CALLBACK_SECRETS:
        messages.append(
            Error(
                f"{SETTING_NAME}['CALLBACK_BASE_URL'] is set but CALLBACK_SECRET is not.",
                hint="Callback URLs are signed with CALLBACK_SECRET: set a long random string "
                "(a list rotates secrets), or remove CALLBACK_BASE_URL to turn callbacks off.",
                id="django_whatsapp.E003",
            )
        )
    if (
        conf.CALLBACK_BASE_URL
        and not settings.DEBUG
        and urlsplit(conf.CALLBACK_BASE_URL).scheme != "https"
        and not _is_loopback(conf.CALLBACK_BASE_URL)
    ):
        messages.append(
            Warning(
                f"{SETTING_NAME}['CALLBACK_BASE_URL'] is not https: "
                "status reports would travel in clear text.",
                hint="Use your site's https:// origin.",
                id="django_whatsapp.W001",
            )
        )
    if not settings.DEBUG and _sandbox_mounted():
        messages.append(
            Warning(
                "The sandbox gateway (django_whatsapp.sandbox.urls) is mounted with DEBUG off.",
                hint="The sandbox is for development and demos: remove it from your URLconf "
                "in production.",
                id="django_whatsapp.W002",
            )
        )
    messages.extend(_check_rate_limit_cache(conf))
    return messages


#: Cache backends that keep their data in one process (or keep nothing).
_ONE_PROCESS_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


def _check_rate_limit_cache(conf: WhatsAppSettings) -> list[CheckMessage]:
    if conf.RATE_LIMIT is None:
        return []
    alias = conf.RATE_LIMIT_CACHE
    backend = settings.CACHES.get(alias, {}).get("BACKEND") if alias in settings.CACHES else None
    if backend is None:
        return [
            Error(
                f"{SETTING_NAME}['RATE_LIMIT_CACHE'] is {alias!r}, not a cache in settings.CACHES.",
                hint="Name the cache that holds the shared rate-limit budget (a Redis cache).",
                id="django_whatsapp.E010",
            )
        ]
    if backend in _ONE_PROCESS_CACHES:
        return [
            Warning(
                f"{SETTING_NAME}['RATE_LIMIT'] is kept in the cache {alias!r} ({backend}), which "
                "limits one process only: several workers together would exceed the limit.",
                hint="Point RATE_LIMIT_CACHE at a cache every process shares, such as "
                "django.core.cache.backends.redis.RedisCache.",
                id="django_whatsapp.W010",
            )
        ]
    return []
