"""An imitation of DecisionTelecom's WhatsApp gateway, for demos and tests: no key, no network.

Nothing is exposed unless a project mounts it, e.g. ``path("sandbox/", include(
"django_whatsapp.sandbox.urls"))``, which makes ``http://HOST/sandbox/v1/api`` a ``BASE_URL``.
The rules (validation, scripted failures by recipient, status steps and callbacks) are described
in :mod:`django_whatsapp.sandbox.gateway`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.urls import NoReverseMatch, reverse

from ..conf import get_settings

#: The endpoint that makes the sandbox deliver a customer's message (under the API root).
SIMULATE_INBOUND_PATH = "simulate-inbound"


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
