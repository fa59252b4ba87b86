"""What a project's own tests import: a gateway in process, with an outbox.

Turn it on with ``DJANGO_WHATSAPP["BASE_URL"] = "memory://"`` in the test settings, with
:class:`override_whatsapp` (decorator or context manager), the pytest fixture
``whatsapp_outbox`` or the ``unittest`` mixin :class:`WhatsAppTestMixin`. Sends then run the
app's real code down to the HTTP request, which the memory gateway answers as the real one does:
no network, no server. :data:`outbox` is what it took; :func:`fail_next` makes the next sends
fail with any gateway error; :func:`deliver_status` and :func:`deliver_inbound` make the gateway
report a status or deliver a customer's message through the real services and signals.

The names are loaded on first use: the app imports :mod:`.transport` when it starts (to register
the ``memory:`` transport) without loading Django's test utilities.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .helpers import TEST_API_KEY, deliver_inbound, deliver_status, override_whatsapp
    from .mixins import WhatsAppTestMixin
    from .transport import MemoryAdapter, MemoryGateway, MemoryRequest, SentMessage, gateway

    outbox = gateway.outbox
    fail_next = gateway.fail_next
    set_status = gateway.set_status
    reset = gateway.reset

_NAMES = {
    "TEST_API_KEY": "helpers",
    "deliver_inbound": "helpers",
    "deliver_status": "helpers",
    "override_whatsapp": "helpers",
    "WhatsAppTestMixin": "mixins",
    "MemoryAdapter": "transport",
    "MemoryGateway": "transport",
    "MemoryRequest": "transport",
    "SentMessage": "transport",
    "gateway": "transport",
}
#: The gateway's own lists and methods, as module names: ``outbox`` (what it took),
#: ``fail_next``, ``set_status`` and ``reset`` (see :class:`MemoryGateway`).
_GATEWAY_NAMES = {"outbox", "fail_next", "set_status", "reset"}

__all__ = [
    "TEST_API_KEY",
    "MemoryAdapter",
    "MemoryGateway",
    "MemoryRequest",
    "SentMessage",
    "WhatsAppTestMixin",
    "deliver_inbound",
    "deliver_status",
    "fail_next",
    "gateway",
    "outbox",
    "override_whatsapp",
    "reset",
    "set_status",
]


def __getattr__(name: str) -> Any:
    if name in _GATEWAY_NAMES:
        return getattr(import_module(".transport", __name__).gateway, name)
    if name in _NAMES:
        return getattr(import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
