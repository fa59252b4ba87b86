"""An imitation of DecisionTelecom's WhatsApp gateway, for demos and tests: no key, no network.

Nothing is exposed unless a project mounts it, e.g. ``path("sandbox/", include(
"django_whatsapp.sandbox.urls"))``, which makes ``http://HOST/sandbox/v1/api`` a ``BASE_URL``.
The rules (validation, scripted failures by recipient, status steps and callbacks) are described
in :mod:`django_whatsapp.sandbox.gateway`.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from django.urls import NoReverseMatch, Resolver404, get_script_prefix, resolve, reverse

from ..conf import get_settings

#: The endpoint that makes the sandbox deliver a customer's message (under the API root).
SIMULATE_INBOUND_PATH = "simulate-inbound"
#: The app's URL names the sandbox may call: a message's status callback, the inbound endpoint.
CALLBACK = "callback"
INBOUND = "inbound"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(parts: SplitResult) -> tuple[str, str, int] | None:
    try:
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def is_project_url(url: object, name: str, *, origin: str | None = None) -> bool:
    """Whether the sandbox may call ``url``: it is on ``CALLBACK_BASE_URL``'s origin (or on
    ``origin``, the project's own address given by its code, e.g. the admin's request), has no
    user, query or fragment, and its path is this app's ``name`` URL (:data:`CALLBACK` or
    :data:`INBOUND`). Anything else (another host, another path of this one) is refused, so
    that the sandbox never relays a request anywhere else."""
    if not isinstance(url, str) or len(url) > 4096:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    found = _origin(parts)
    if found is None or parts.username is not None or parts.password is not None:
        return False
    if parts.query or parts.fragment or "\\" in url or "%" in parts.path:
        return False
    if any(segment in (".", "..") for segment in parts.path.split("/")):
        return False  # a proxy may resolve dot segments to another path of the host
    allowed = {
        _origin(urlsplit(base))
        for base in (get_settings().CALLBACK_BASE_URL, origin)
        if isinstance(base, str) and base
    }
    if found not in allowed:
        return False
    path = parts.path
    prefix = get_script_prefix()
    if prefix != "/" and path.startswith(prefix):
        path = "/" + path[len(prefix) :]
    try:
        match = resolve(path)
    except Resolver404:
        return False
    return "django_whatsapp" in match.app_names and match.url_name == name


def api_root() -> str | None:
    """The path of the sandbox's API root in this project's URLconf (``/sandbox/v1/api``), or
    ``None`` when the sandbox is not mounted."""
    try:
        send = reverse("django_whatsapp_sandbox:send")
    except NoReverseMatch:
        return None
    return send.rsplit("/", 1)[0]


def in_use(base_url: str | None = None) -> bool:
    """Whether messages go to the sandbox mounted in this project: ``BASE_URL``'s path is its API
    root (whatever host name reaches it)."""
    root = api_root()
    if root is None:
        return False
    if base_url is None:
        base_url = get_settings().BASE_URL
    return urlsplit(base_url).path.rstrip("/") == root
