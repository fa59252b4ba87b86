"""System checks: ``manage.py check`` says what is wrong with the configuration, with a hint."""

from __future__ import annotations

import logging
from importlib import import_module
from importlib.util import find_spec
from typing import Any, cast
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.core.exceptions import ImproperlyConfigured
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _

from . import logs, sandbox
from .conf import MEMORY_URL, SETTING_NAME, WhatsAppSettings, get_settings

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOOPBACK_HOSTS


def _sandbox_mounted() -> bool:
    try:
        reverse("django_whatsapp_sandbox:send")
    except NoReverseMatch:
        return False
    return True


def _testing() -> bool:
    """Whether Django's test environment is set up (the test runner and pytest-django do it:
    ``django.core.mail.outbox`` exists from then on)."""
    from django.core import mail

    return hasattr(mail, "outbox")


def _origin(url: str) -> tuple[str, str, int | None]:
    """``url``'s scheme, host and port, every loopback name counted as one host."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        port = None
    return parts.scheme, "loopback" if host in LOOPBACK_HOSTS else host, port


def sandbox_cannot_call_back(base_url: str, callback_base_url: str | None) -> bool:
    """Whether the sandbox (used through ``base_url``) would send its status callbacks where this
    server is not: ``CALLBACK_BASE_URL`` is another origin than the one serving the sandbox."""
    if not callback_base_url or not sandbox.in_use(base_url):
        return False
    return _origin(callback_base_url) != _origin(base_url)


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
    messages.extend(_check_accounts(conf.accounts[1:]))
    memory = conf.BASE_URL.startswith(MEMORY_URL)
    if not conf.API_KEY and not _is_loopback(conf.BASE_URL) and not memory:
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
    if memory and not settings.DEBUG and not _testing():
        messages.append(
            Warning(
                f"{SETTING_NAME}['BASE_URL'] is {MEMORY_URL!r} with DEBUG off, outside tests: "
                "nothing is sent to WhatsApp.",
                hint="memory:// is the in-process test gateway (django_whatsapp.testing): set it "
                "in your test settings only, and point BASE_URL at the gateway in production.",
                id="django_whatsapp.W010",
            )
        )
    if sandbox_cannot_call_back(conf.BASE_URL, conf.CALLBACK_BASE_URL):
        base = urlsplit(conf.BASE_URL)
        messages.append(
            Warning(
                f"{SETTING_NAME}['CALLBACK_BASE_URL'] ({conf.CALLBACK_BASE_URL}) is not the origin "
                f"of the sandbox in use ({base.scheme}://{base.netloc}): the sandbox's status "
                "callbacks would go where this server is not, and messages would stay accepted.",
                hint=f"With the sandbox, set CALLBACK_BASE_URL to {base.scheme}://{base.netloc} "
                "(the origin runserver serves, as BASE_URL); use your public https origin with "
                "the real gateway.",
                id="django_whatsapp.W003",
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
    messages.extend(check_logs(conf))
    messages.extend(_check_task_framework(conf))
    return messages


def _framework_installed() -> bool:
    return find_spec("django.tasks") is not None or find_spec("django_tasks") is not None


def task_framework_problem() -> str | None:
    """Why campaigns cannot be sent here, or ``None`` when they can: Django's task framework is
    missing (Django 5.2 without its backport), its default backend cannot be loaded, or it runs
    every task inside the web request that starts it (the immediate backend, Django 6's default),
    which would send a whole campaign in that request. Said in the reader's language."""
    if not _framework_installed():
        return _(
            "Campaigns (and queued sending, DJANGO_WHATSAPP['SEND_ASYNC']) need Django's task "
            "framework: Django 6.0 or later, or on Django 5.2 its backport (pip install "
            "django-tasks), with a TASKS backend that has workers, such as django-tasks-db "
            "(manage.py db_worker)."
        )
    framework = "django.tasks" if find_spec("django.tasks") is not None else "django_tasks"
    task_backends: Any = import_module(framework).task_backends
    try:
        backend = task_backends["default"]
    except Exception as error:  # any failure to load the backend is reported
        return _("The task framework's default backend (TASKS) cannot be loaded: %(error)s") % {
            "error": error
        }
    if type(backend).__name__ == "ImmediateBackend":
        return _(
            "The task framework runs every task inside the web request that starts it (TASKS "
            "uses the immediate backend, Django's default): a campaign would be sent by that "
            "request. Set TASKS to a backend with workers, such as django-tasks-db (manage.py "
            "db_worker)."
        )
    return None


def _check_task_framework(conf: WhatsAppSettings) -> list[CheckMessage]:
    """E020: queued sending is on, or the project configures TASKS, and there is no task
    framework to run the tasks (campaigns need it too)."""
    wanted = conf.SEND_ASYNC or cast(Any, settings).is_overridden("TASKS")
    if not wanted or _framework_installed():
        return []
    return [
        Error(
            "Django's task framework is not installed, and "
            + (f"{SETTING_NAME}['SEND_ASYNC'] is on" if conf.SEND_ASYNC else "TASKS is set")
            + ": queued messages and campaigns cannot be sent.",
            hint="On Django 5.2 install the backport (pip install django-tasks) and add "
            "'django_tasks' to INSTALLED_APPS, with a backend that has workers, such as "
            "django-tasks-db; Django 6.0 has it built in.",
            id="django_whatsapp.E020",
        )
    ]


def _check_accounts(names: tuple[str, ...]) -> list[CheckMessage]:
    """E001 and E002 for each account of ``ACCOUNTS``, naming it."""
    messages: list[CheckMessage] = []
    for name in names:
        try:
            account = get_settings(name)
        except ImproperlyConfigured as error:
            messages.append(
                Error(
                    str(error),
                    hint=f"See ACCOUNTS in the settings table in README.rst (account {name!r}).",
                    id="django_whatsapp.E001",
                )
            )
            continue
        if not account.API_KEY and not _is_loopback(account.BASE_URL):
            messages.append(
                Error(
                    f"{SETTING_NAME}['ACCOUNTS'][{name!r}] has no API_KEY, and its BASE_URL is "
                    "the real gateway.",
                    hint="Each account needs its own access key (the top-level API_KEY is the "
                    "'default' account's and is not shared).",
                    id="django_whatsapp.E002",
                )
            )
    return messages


#: Cache backends that keep their data in one process (or keep nothing).
_ONE_PROCESS_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


def _check_rate_limit_cache(conf: WhatsAppSettings) -> list[CheckMessage]:
    """The cache of ``RATE_LIMIT`` and of ``DAILY_LIMIT`` (any account's)."""
    limits = [conf]
    for name in conf.accounts[1:]:
        try:
            limits.append(get_settings(name))
        except ImproperlyConfigured:
            continue  # E001 names it
    if all(c.RATE_LIMIT is None and c.DAILY_LIMIT is None for c in limits):
        return []
    what = "RATE_LIMIT" if any(c.RATE_LIMIT is not None for c in limits) else "DAILY_LIMIT"
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
                f"{SETTING_NAME}['{what}'] is kept in the cache {alias!r} ({backend}), which "
                "limits one process only: several workers together would exceed the limit.",
                hint="Point RATE_LIMIT_CACHE at a cache every process shares, such as "
                "django.core.cache.backends.redis.RedisCache.",
                id="django_whatsapp.W011",
            )
        ]
    return []


#: Servers' access loggers that write every request's URL, when a project's LOGGING configures
#: them (they exist in ``manage.py check`` only then).
ACCESS_LOGGERS = (
    "gunicorn.access",
    "uvicorn.access",
    "hypercorn.access",
    "daphne.access",
    "django.channels.server",
)


def _handlers_reached(logger: logging.Logger) -> list[logging.Handler]:
    """The handlers a record logged on ``logger`` reaches (its own, then its parents' while it
    propagates)."""
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        found.extend(current.handlers)
        if not current.propagate:
            break
        current = current.parent
    return found


def _writes_unmasked(logger: logging.Logger) -> bool:
    if logs.is_masked(logger):
        return False
    return any(
        not any(isinstance(f, logs.MaskSignatures) for f in handler.filters)
        and not isinstance(handler, logging.NullHandler)
        for handler in _handlers_reached(logger)
    )


def check_logs(conf: WhatsAppSettings) -> list[CheckMessage]:
    """W020: ``django.request`` or ``django.server`` lost the filter that masks the inbound URL's
    signature (the app installs it when it starts; a project that replaced those loggers' filters
    afterwards). W021: a server's access logger configured in ``LOGGING`` writes URLs to a handler
    without that filter. What the checks cannot see: logs written outside Python's logging in
    this process (gunicorn's access log file when LOGGING does not configure it, uWSGI's request
    log, the web server's access log): see the data-protection page of the docs."""
    if not conf.INBOUND_SECRETS:
        return []
    messages: list[CheckMessage] = []
    hint = (
        'Add {"()": "django_whatsapp.logs.MaskSignatures"} to that logger\'s (or each of its '
        "handlers') filters in LOGGING."
    )
    for name in logs.LOGGERS:
        logger = logging.getLogger(name)
        if not logs.is_masked(logger):
            messages.append(
                Warning(
                    f"The {name!r} logger has no django_whatsapp.logs.MaskSignatures filter: its "
                    "records would write the inbound URL with its signature (whoever reads the "
                    "log could post STOP or START for any number).",
                    hint=hint,
                    id="django_whatsapp.W020",
                )
            )
    known = logging.Logger.manager.loggerDict
    for name in ACCESS_LOGGERS:
        access = known.get(name)
        if isinstance(access, logging.Logger) and _writes_unmasked(access):
            messages.append(
                Warning(
                    f"The {name!r} logger writes every request's URL, the inbound URL with its "
                    "signature included, to a handler without django_whatsapp's mask.",
                    hint=hint,
                    id="django_whatsapp.W021",
                )
            )
    return messages
