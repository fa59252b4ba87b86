"""The one accessor for ``settings.DJANGO_WHATSAPP``.

Read at call time, so ``override_settings`` just works.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

SETTING_NAME = "DJANGO_WHATSAPP"

#: The default ``OPT_OUT_KEYWORDS``: the carriers' common words (CTIA's STOP, STOPALL,
#: UNSUBSCRIBE, CANCEL, END, QUIT; OPTOUT, REVOKE) and their Spanish, German, French,
#: Portuguese, Russian and Ukrainian counterparts, written with and without accents.
OPT_OUT_WORDS: tuple[str, ...] = (
    # English
    "STOP",
    "STOPALL",
    "STOP ALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "OPTOUT",
    "OPT OUT",
    "OPT-OUT",
    "REVOKE",
    # Spanish
    "BAJA",
    "DAR DE BAJA",
    "PARAR",
    "DETENER",
    "CANCELAR",
    "DESUSCRIBIR",
    "DESUSCRIBIRME",
    # German
    "STOPP",
    "ABMELDEN",
    "ABBESTELLEN",
    "KÜNDIGEN",
    "KUENDIGEN",
    "BEENDEN",
    # French
    "ARRÊT",
    "ARRET",
    "ARRÊTER",
    "ARRETER",
    "DÉSABONNER",
    "DESABONNER",
    "DÉSINSCRIRE",
    "DESINSCRIRE",
    "ANNULER",
    # Portuguese
    "PARE",
    "SAIR",
    "DESCADASTRAR",
    "CANCELAR INSCRIÇÃO",
    # Russian
    "СТОП",
    "ОТПИСАТЬСЯ",
    "ОТПИСКА",
    "ОТМЕНА",  # noqa: RUF001
    "ОТМЕНИТЬ",
    # Ukrainian
    "ВІДПИСАТИСЯ",
    "ВІДПИСКА",
    "СКАСУВАТИ",
)
#: The default ``OPT_IN_KEYWORDS``.
OPT_IN_WORDS: tuple[str, ...] = (
    # English
    "START",
    "UNSTOP",
    "SUBSCRIBE",
    "RESUME",
    # Spanish
    "ALTA",
    "INICIAR",
    "COMENZAR",
    "SUSCRIBIR",
    # German
    "ANMELDEN",
    "STARTEN",
    # French
    "DÉMARRER",
    "DEMARRER",
    "ABONNER",
    # Portuguese
    "INSCREVER",
    "ASSINAR",
    "VOLTAR",
    # Russian
    "СТАРТ",  # noqa: RUF001
    "ПОДПИСАТЬСЯ",
    "ВОЗОБНОВИТЬ",
    # Ukrainian
    "ПІДПИСАТИСЯ",
    "ПОНОВИТИ",
)

DEFAULTS: dict[str, Any] = {
    "API_KEY": None,
    "BASE_URL": "https://web.it-decision.com/v1/api",
    "SEND_PATH": "send-whatsapp",
    "STATUS_PATH": "receive-whatsapp",
    "DEFAULT_SOURCE_ADDR": None,
    "CALLBACK_BASE_URL": None,
    "CALLBACK_SECRET": None,
    # The key of the inbound URL's signature (a list rotates it: the first signs, all verify);
    # None: CALLBACK_SECRET's keys, as before it existed.
    "INBOUND_SECRET": None,
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
    # The country whose national numbers (050 333 01 00) are read as its own (an ISO 3166 code
    # such as "UA"); None: every number is read as international (numbers.py).
    "DEFAULT_REGION": None,
    # -- opt-outs, accounts and retention (optout.py, ACCOUNTS below, whatsapp_purge) ----------
    # An inbound text equal to one of these (compared as optout.normalize says: case, width,
    # invisible characters and surrounding punctuation ignored) opts the contact out; one of
    # OPT_IN_KEYWORDS back in.
    "OPT_OUT_KEYWORDS": OPT_OUT_WORDS,
    "OPT_IN_KEYWORDS": OPT_IN_WORDS,
    # None, {"text": "..."} or {"template": "name", "params": [...], "header": ...}: the reply
    # sent to a customer who just opted out.
    "OPT_OUT_CONFIRMATION": None,
    # More WhatsApp accounts: {"name": {"API_KEY": ..., "BASE_URL": ..., ...}}; the top-level
    # keys are the account "default".
    "ACCOUNTS": {},
    # How long messages and inbound reports are kept: "180d", a timedelta, or None (for ever).
    "RETENTION": None,
    # The most requests per second to the gateway from all processes together (None: no limit),
    # and the Django cache alias that holds that shared budget (see ratelimit.py).
    "RATE_LIMIT": None,
    "RATE_LIMIT_CACHE": "default",
    # Seconds a campaign worker holds a chunk without renewing it; a chunk whose lease runs out
    # (its worker died) is taken over by another worker (see campaigns/engine.py).
    "CAMPAIGN_LEASE": 60,
    # The longest pause, in seconds, between two tries while the gateway or the rate-limit cache
    # cannot be reached: queued and campaign sends wait half a second, then twice as long after
    # each failed try, up to this, with jitter (see faults.py).
    "OUTAGE_MAX_PAUSE": 5,
    # The largest CSV file the admin's "Add campaign" takes, in bytes; a larger upload is refused
    # while it is received, and nothing of it is kept.
    "CAMPAIGN_UPLOAD_MAX_BYTES": 32 * 1024 * 1024,
    # -- WhatsApp's own limits (tier.py, campaigns/hours.py, expiry.py) ------------------------
    # The most unique recipients per moving 24 hours the account starts conversations with (its
    # messaging tier: 250, 2000, 10000, 100000...); None: no limit. Counted in RATE_LIMIT_CACHE.
    "DAILY_LIMIT": None,
    # A recipient's time zone (a campaign's sending hours) where the number's country has
    # several: {"US": "America/New_York"}; and the zone of a number whose zone is not known
    # (None: settings.TIME_ZONE).
    "RECIPIENT_TIME_ZONES": {},
    "RECIPIENT_DEFAULT_TIME_ZONE": None,
    # The dotted path of the callable that says what time it is for expiry, the daily limit and
    # sending hours (a testing hook: a clock every process of a test reads).
    "CLOCK": "django.utils.timezone.now",
}

#: ``BASE_URL`` for tests: the in-process gateway of :mod:`django_whatsapp.testing`.
MEMORY_URL = "memory://"

#: The values of ``SERVICE_WINDOW_POLICY``.
WINDOW_POLICIES = ("off", "warn", "enforce")
#: The name of the account the top-level keys configure.
DEFAULT_ACCOUNT = "default"
#: The keys an entry of ``ACCOUNTS`` may set. ``API_KEY`` and ``DEFAULT_SOURCE_ADDR`` belong to
#: each account (never taken from the top level); the others default to the top-level values.
#: ``RATE_LIMIT`` and ``DAILY_LIMIT`` are each account's own budget (its own key, its own tier).
ACCOUNT_KEYS = (
    "API_KEY",
    "BASE_URL",
    "SEND_PATH",
    "STATUS_PATH",
    "DEFAULT_SOURCE_ADDR",
    "TIMEOUT",
    "MAX_RETRIES",
    "RATE_LIMIT",
    "DAILY_LIMIT",
)
#: The keys an account does not take from the top level.
OWN_ACCOUNT_KEYS = ("API_KEY", "DEFAULT_SOURCE_ADDR")
DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


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
    # -- opt-outs, accounts and retention
    OPT_OUT_KEYWORDS: tuple[str, ...] = DEFAULTS["OPT_OUT_KEYWORDS"]
    OPT_IN_KEYWORDS: tuple[str, ...] = DEFAULTS["OPT_IN_KEYWORDS"]
    OPT_OUT_CONFIRMATION: dict[str, Any] | None = None
    RETENTION: timedelta | None = None
    #: The account these settings are for (``"default"``: the top-level keys).
    account: str = DEFAULT_ACCOUNT
    #: Every configured account's name, ``"default"`` first.
    accounts: tuple[str, ...] = (DEFAULT_ACCOUNT,)
    RATE_LIMIT: float | None = None
    RATE_LIMIT_CACHE: str = "default"
    CAMPAIGN_LEASE: float = 60.0
    OUTAGE_MAX_PAUSE: float = 5.0
    #: The ISO country code national numbers are read in, or ``None`` (numbers.py).
    DEFAULT_REGION: str | None = None
    #: The keys of the inbound URL's signature: the first signs, every one verifies
    #: (``INBOUND_SECRET``, else ``CALLBACK_SECRET``'s).
    INBOUND_SECRETS: tuple[str, ...] = field(default=(), repr=False)
    CAMPAIGN_UPLOAD_MAX_BYTES: int = DEFAULTS["CAMPAIGN_UPLOAD_MAX_BYTES"]
    #: The most unique recipients per moving 24 hours (``None``: no limit; tier.py).
    DAILY_LIMIT: int | None = None
    #: The zone of a recipient whose country has several, by ISO country code.
    RECIPIENT_TIME_ZONES: dict[str, str] = field(default_factory=dict)
    #: The zone of a recipient whose zone is not known (``None``: ``settings.TIME_ZONE``).
    RECIPIENT_DEFAULT_TIME_ZONE: str | None = None
    #: The dotted path of the limits' clock (clock.py).
    CLOCK: str = "django.utils.timezone.now"

    def __repr__(self) -> str:
        return (
            f"WhatsAppSettings(account={self.account!r}, API_KEY={_secret_repr(self.API_KEY)}, "
            f"BASE_URL={self.BASE_URL!r}, "
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
        if not self.API_KEY and self.BASE_URL.startswith(MEMORY_URL):
            return "memory"  # the in-process test gateway needs no real key
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


def _secrets(value: Any, key: str = "CALLBACK_SECRET") -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise _bad(key, "must be a string or a list of non-empty strings (first signs).")


def _region(value: Any) -> str | None:
    """``DEFAULT_REGION``: ``None``, or a country code that ``phonenumbers`` knows (any case)."""
    if value is None or value == "":
        return None
    import phonenumbers  # on use: reading settings loads no number metadata

    code = value.strip().upper() if isinstance(value, str) else None
    if code is None or code not in phonenumbers.SUPPORTED_REGIONS:
        raise _bad(
            "DEFAULT_REGION",
            "must be None or a two-letter ISO 3166 country code that the phonenumbers library "
            f"knows, such as 'UA', 'DE' or 'US' (the country national numbers are read in), not "
            f"{value!r}.",
        )
    return code


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


def _max_pause(value: Any) -> float:
    if not _seconds(value) or value < 0.5:
        raise _bad("OUTAGE_MAX_PAUSE", "must be a number of seconds, at least 0.5.")
    return float(value)


def _daily_limit(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _bad(
            "DAILY_LIMIT",
            "must be None (no limit) or a whole number of recipients of at least 1 (the "
            "account's messaging tier, such as 1000 or 10000).",
        )
    return value


def _zone(value: Any, key: str) -> str:
    """A time zone name that ``zoneinfo`` knows."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # on use

    if isinstance(value, str) and value and "\x00" not in value:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            pass
        else:
            return value
    raise _bad(key, f"must name a time zone such as 'Europe/Kyiv', not {value!r}.")


def _recipient_zones(value: Any) -> dict[str, str]:
    """``RECIPIENT_TIME_ZONES``: ISO country codes that ``phonenumbers`` knows, to zone names."""
    if not isinstance(value, dict):
        raise _bad("RECIPIENT_TIME_ZONES", 'must be a dict such as {"US": "America/New_York"}.')
    import phonenumbers  # on use: reading settings loads no number metadata

    zones = {}
    for country, zone in value.items():
        code = country.strip().upper() if isinstance(country, str) else None
        if code is None or code not in phonenumbers.SUPPORTED_REGIONS:
            raise _bad(
                "RECIPIENT_TIME_ZONES",
                f"keys must be two-letter ISO 3166 country codes such as 'US', not {country!r}.",
            )
        zones[code] = _zone(zone, f"RECIPIENT_TIME_ZONES'][{country!r}")
    return zones


def _clock(value: Any) -> str:
    if not isinstance(value, str) or "." not in value.strip(". "):
        raise _bad(
            "CLOCK",
            "must be the dotted path of a callable that returns an aware datetime, such as "
            "'django.utils.timezone.now'.",
        )
    return value


def get_settings(account: str | None = None) -> WhatsAppSettings:
    """Read and validate ``settings.DJANGO_WHATSAPP`` now, for ``account`` (a name in
    ``ACCOUNTS``; ``None`` or ``"default"``: the top-level keys). An unknown account raises
    ``ImproperlyConfigured`` naming it.

    The validated result is kept while the setting is the same object with the same contents
    (compared with a deep copy, so a change in place counts too): a callback or a send reads it
    without validating it again."""
    kept = _KEPT.get(account)
    if kept is not None and kept[0].current():
        return kept[1]
    snapshot = _Snapshot.take()  # before the read: a change made meanwhile is seen next time
    result = _guarded()(account)
    if snapshot.copy is not _UNCOPIABLE:
        _KEPT[account] = (snapshot, result)
    return result


_UNCOPIABLE = object()


class _Snapshot:
    """The setting's object and a deep copy of it, to tell whether it changed. Its repr shows
    neither (the setting holds secrets; a frame's locals reach Django's error reports)."""

    __slots__ = ("copy", "source")

    def __init__(self, source: Any, copy: Any) -> None:
        self.source = source
        self.copy = copy

    @classmethod
    def take(cls) -> _Snapshot:
        source = getattr(settings, SETTING_NAME, {})
        try:
            copy = deepcopy(source)
        except Exception:  # something in it cannot be copied: then it is never kept
            copy = _UNCOPIABLE
        return cls(source, copy)

    def current(self) -> bool:
        """Whether the setting is still this object, with these contents."""
        source = getattr(settings, SETTING_NAME, {})
        try:
            return source is self.source and bool(source == self.copy)
        except Exception:
            return False

    def __repr__(self) -> str:
        return "<settings snapshot>"


#: The last validated settings per account, with the snapshot they were read from.
_KEPT: dict[str | None, tuple[_Snapshot, WhatsAppSettings]] = {}


@functools.cache
def _guarded() -> Callable[[str | None], WhatsAppSettings]:
    """:func:`_read` marked ``sensitive_variables``: the raw settings (API keys, secrets) in
    its frames and those it calls never show in Django's error reports. Made on first use, so
    that importing this module (the client does) loads nothing of ``django.http``."""
    from django.views.decorators.debug import sensitive_variables

    guarded: Callable[[str | None], WhatsAppSettings] = sensitive_variables()(_read)
    return guarded


def _read(account: str | None) -> WhatsAppSettings:
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
    accounts = _accounts(raw["ACCOUNTS"])
    name = account or DEFAULT_ACCOUNT
    if name != DEFAULT_ACCOUNT:
        if name not in accounts:
            raise ImproperlyConfigured(
                f"{SETTING_NAME}['ACCOUNTS'] has no account {name!r}. Known accounts: "
                f"{', '.join([DEFAULT_ACCOUNT, *accounts])}."
            )
        own = dict.fromkeys(OWN_ACCOUNT_KEYS)
        raw = {**raw, **own, **accounts[name]}
    try:
        return _validated(raw, name, (DEFAULT_ACCOUNT, *accounts))
    except ImproperlyConfigured as error:
        if name == DEFAULT_ACCOUNT:
            raise
        raise ImproperlyConfigured(f"Account {name!r}: {error}") from error


def get_account_settings(name: str) -> WhatsAppSettings:
    """The settings of the account ``name`` (:func:`get_settings` with ``account=name``)."""
    return get_settings(account=name)


def account_names() -> tuple[str, ...]:
    """Every configured account's name, ``"default"`` first."""
    return get_settings().accounts


def account_for_sender(source_addr: str) -> str:
    """The account whose ``DEFAULT_SOURCE_ADDR`` is ``source_addr`` (the number a customer
    wrote to), else ``"default"``."""
    for name in account_names():
        if source_addr and source_addr == get_settings(name).DEFAULT_SOURCE_ADDR:
            return name
    return DEFAULT_ACCOUNT


def parse_duration(value: Any, name: str = f"{SETTING_NAME}['RETENTION']") -> timedelta:
    """A positive duration from a ``timedelta`` or a string such as ``180d``, ``12h`` or
    ``2w`` (units s, m, h, d, w); ``ImproperlyConfigured`` naming ``name`` otherwise."""
    if isinstance(value, timedelta):
        duration = value
    else:
        match = DURATION_RE.match(value) if isinstance(value, str) else None
        if not match:
            raise ImproperlyConfigured(
                f"{name} must be a duration such as '180d' (a number and a unit s, m, h, d "
                f"or w) or a timedelta, not {value!r}."
            )
        duration = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if duration <= timedelta(0):
        raise ImproperlyConfigured(f"{name} must be longer than zero.")
    return duration


def _accounts(value: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict):
        raise _bad("ACCOUNTS", 'must be a dict: {"name": {"API_KEY": ..., ...}}.')
    allowed = [key for key in ACCOUNT_KEYS if key in DEFAULTS]
    for name, entry in value.items():
        if not isinstance(name, str) or not name or len(name) > 64 or not name.isprintable():
            raise _bad("ACCOUNTS", f"names must be strings of 1 to 64 characters, not {name!r}.")
        if name == DEFAULT_ACCOUNT:
            raise _bad("ACCOUNTS", "must not name 'default': the top-level keys are that account.")
        if not isinstance(entry, dict):
            raise _bad("ACCOUNTS", f"[{name!r}] must be a dict of settings.")
        unknown = sorted(str(key) for key in set(entry) - set(allowed))
        if unknown:
            raise _bad(
                "ACCOUNTS",
                f"[{name!r}] has unknown keys: {', '.join(unknown)}. "
                f"An account may set: {', '.join(allowed)}.",
            )
    return value


def _keywords(raw: dict[str, Any], key: str) -> tuple[str, ...]:
    value = raw[key]
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise _bad(key, "must be a list of words.")
    if not all(isinstance(word, str) and word.strip() for word in value):
        raise _bad(key, "must be a list of non-empty strings.")
    return tuple(value)


def _confirmation(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    shape = 'must be None, {"text": "..."} or {"template": "name", "params": [...]}.'
    if not isinstance(value, dict):
        raise _bad("OPT_OUT_CONFIRMATION", shape)
    if "text" in value:
        if set(value) != {"text"} or not isinstance(value["text"], str) or not value["text"]:
            raise _bad("OPT_OUT_CONFIRMATION", shape)
        return dict(value)
    params = value.get("params", [])
    if (
        not isinstance(value.get("template"), str)
        or not value["template"]
        or set(value) - {"template", "params", "header"}
        or isinstance(params, str)
        or not isinstance(params, Sequence)
    ):
        raise _bad("OPT_OUT_CONFIRMATION", shape)
    return {"template": value["template"], "params": list(params), "header": value.get("header")}


def _validated(raw: dict[str, Any], account: str, accounts: tuple[str, ...]) -> WhatsAppSettings:
    for key in ("BASE_URL", "SEND_PATH", "STATUS_PATH"):
        if not isinstance(raw[key], str) or not raw[key]:
            raise _bad(key, "must be a non-empty string.")
    if not _is_http_url(raw["BASE_URL"]) and not raw["BASE_URL"].startswith(MEMORY_URL):
        raise _bad(
            "BASE_URL",
            f"must be an http:// or https:// URL with a host (or {MEMORY_URL!r} for tests).",
        )
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
        OPT_OUT_KEYWORDS=_keywords(raw, "OPT_OUT_KEYWORDS"),
        OPT_IN_KEYWORDS=_keywords(raw, "OPT_IN_KEYWORDS"),
        OPT_OUT_CONFIRMATION=_confirmation(raw["OPT_OUT_CONFIRMATION"]),
        RETENTION=None if raw["RETENTION"] is None else parse_duration(raw["RETENTION"]),
        account=account,
        accounts=accounts,
        RATE_LIMIT=float(rate) if rate is not None else None,
        RATE_LIMIT_CACHE=raw["RATE_LIMIT_CACHE"],
        CAMPAIGN_LEASE=_lease(raw["CAMPAIGN_LEASE"]),
        OUTAGE_MAX_PAUSE=_max_pause(raw["OUTAGE_MAX_PAUSE"]),
        DEFAULT_REGION=_region(raw["DEFAULT_REGION"]),
        INBOUND_SECRETS=_secrets(raw["INBOUND_SECRET"], "INBOUND_SECRET")
        or _secrets(raw["CALLBACK_SECRET"]),
        CAMPAIGN_UPLOAD_MAX_BYTES=_int(raw, "CAMPAIGN_UPLOAD_MAX_BYTES", 1),
        DAILY_LIMIT=_daily_limit(raw["DAILY_LIMIT"]),
        RECIPIENT_TIME_ZONES=_recipient_zones(raw["RECIPIENT_TIME_ZONES"]),
        RECIPIENT_DEFAULT_TIME_ZONE=None
        if raw["RECIPIENT_DEFAULT_TIME_ZONE"] in (None, "")
        else _zone(raw["RECIPIENT_DEFAULT_TIME_ZONE"], "RECIPIENT_DEFAULT_TIME_ZONE"),
        CLOCK=_clock(raw["CLOCK"]),
    )
