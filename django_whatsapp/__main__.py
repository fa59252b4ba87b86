"""``python -m django_whatsapp``: the app's version, its system checks and its effective settings.

Run it in your project's environment with ``DJANGO_SETTINGS_MODULE`` set (or ``--settings``)::

    DJANGO_SETTINGS_MODULE=mysite.settings python -m django_whatsapp

Secrets (``API_KEY``, ``CALLBACK_SECRET``, ``INBOUND_SECRET``) are shown as ``'***'``. The exit
status is 0 when the checks found no error, 1 when they did, 2 when the settings could not be
loaded at all.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as distribution_version
from typing import Any

from . import __version__

DISTRIBUTION = "django-whatsapp-decisiontelecom"
SECRET_KEYS = frozenset({"API_KEY", "CALLBACK_SECRET", "INBOUND_SECRET"})
MASK = "'***'"
USAGE_HINT = (
    "Run it from your project with its settings named, e.g.\n"
    "    DJANGO_SETTINGS_MODULE=mysite.settings python -m django_whatsapp\n"
    "or  python -m django_whatsapp --settings mysite.settings"
)


def _installed(distribution: str) -> str:
    try:
        return distribution_version(distribution)
    except PackageNotFoundError:
        return "not installed"


def _masked(key: str, value: Any) -> str:
    if key == "ACCOUNTS" and value:
        return _masked_accounts(value)
    if key not in SECRET_KEYS or not value:
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(MASK for _ in value) + "]"
    return MASK


def _masked_accounts(value: Any) -> str:
    """``ACCOUNTS`` with every account's secrets masked (and anything malformed, whole)."""
    if not isinstance(value, dict):
        return MASK
    shown = []
    for name, entry in value.items():
        if not isinstance(entry, dict):
            shown.append(f"{name!r}: {MASK}")
            continue
        keys = ", ".join(f"{k!r}: {_masked(str(k), v)}" for k, v in entry.items())
        shown.append(f"{name!r}: {{{keys}}}")
    return "{" + ", ".join(shown) + "}"


def _effective_settings() -> tuple[dict[str, Any], set[str], str | None]:
    """Every key with the value in force, the keys the project set, and a configuration error."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    from .conf import DEFAULTS, SETTING_NAME, get_settings

    user = getattr(settings, SETTING_NAME, {})
    given = set(user) if isinstance(user, dict) else set()
    try:
        conf = get_settings()
    except ImproperlyConfigured as error:
        raw = {**DEFAULTS, **user} if isinstance(user, dict) else dict(DEFAULTS)
        return raw, given, str(error)
    skip = ("CALLBACK_SECRET", "INBOUND_SECRET", "ACCOUNTS")
    values = {key: getattr(conf, key) for key in DEFAULTS if key not in skip}
    values["CALLBACK_SECRET"] = list(conf.CALLBACK_SECRETS) or None
    values["INBOUND_SECRET"] = (
        list(conf.INBOUND_SECRETS) if conf.INBOUND_SECRETS != conf.CALLBACK_SECRETS else None
    )
    values["ACCOUNTS"] = user.get("ACCOUNTS", {}) if isinstance(user, dict) else {}
    return {key: values[key] for key in DEFAULTS}, given, None


def report() -> int:
    """Print the report for the configured project; the exit status as described above."""
    import django
    from django.conf import settings
    from django.core.checks import ERROR

    from .checks import check_settings
    from .conf import SETTING_NAME

    print(f"Settings: {os.environ.get('DJANGO_SETTINGS_MODULE') or '(configured in code)'}")
    print(
        f"Django {django.get_version()}, Django REST framework "
        f"{_installed('djangorestframework')}, requests {_installed('requests')}"
    )
    print()
    messages = check_settings()
    print("System checks (django_whatsapp.checks.check_settings):")
    if not messages:
        print("  no issues")
    for message in messages:
        print(f"  {message.id} [{'ERROR' if message.level >= ERROR else 'WARNING'}]: {message.msg}")
        if message.hint:
            print(f"      HINT: {message.hint}")
    print()
    values, given, error = _effective_settings()
    if error is None:
        print(f"Effective settings.{SETTING_NAME}:")
    else:
        print(f"settings.{SETTING_NAME} as given, over the defaults (not valid: {error}):")
    width = max(len(key) for key in values)
    for key, value in values.items():
        origin = "" if key in given else "  (default)"
        print(f"  {key:<{width}}  {_masked(key, value)}{origin}")
    if settings.DEBUG:
        print()
        print("DEBUG is on: checks that only apply in production (W001, W002) are quiet.")
    return 1 if any(message.level >= ERROR for message in messages) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m django_whatsapp",
        description="Print the app's version, the result of its system checks and its "
        "effective settings (secrets masked).",
    )
    parser.add_argument(
        "--settings",
        metavar="MODULE",
        help="The settings module, e.g. mysite.settings (default: $DJANGO_SETTINGS_MODULE).",
    )
    options = parser.parse_args(argv)
    print(f"{DISTRIBUTION} {__version__} (Python {platform.python_version()})")
    if options.settings:
        os.environ["DJANGO_SETTINGS_MODULE"] = options.settings

    import django
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        print(f"DJANGO_SETTINGS_MODULE is not set. {USAGE_HINT}", file=sys.stderr)
        return 2
    try:
        django.setup()
    except (ImportError, ImproperlyConfigured) as error:
        print(f"Could not load the settings: {error}\n{USAGE_HINT}", file=sys.stderr)
        return 2
    return report()


if __name__ == "__main__":
    sys.exit(main())
