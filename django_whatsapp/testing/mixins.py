"""A ``unittest`` mixin for Django's test cases."""

from __future__ import annotations

from typing import Any

from .helpers import override_whatsapp
from .transport import MemoryGateway, SentMessage


class WhatsAppTestMixin:
    """Every test sends through the memory gateway (see
    :class:`~django_whatsapp.testing.override_whatsapp`); ``self.whatsapp_outbox`` is its
    outbox and ``self.whatsapp_gateway`` the gateway (``fail_next``, ``set_status``). Put it
    before ``TestCase`` in the bases::

        class OrderTests(WhatsAppTestMixin, TestCase): ...
    """

    #: ``DJANGO_WHATSAPP`` keys to override for every test of the class.
    whatsapp_settings: dict[str, Any] = {}
    whatsapp_outbox: list[SentMessage]
    whatsapp_gateway: MemoryGateway

    def setUp(self) -> None:
        override = override_whatsapp(**self.whatsapp_settings)
        self.whatsapp_gateway = override.enable()
        self.addCleanup(override.disable)  # type: ignore[attr-defined]
        self.whatsapp_outbox = self.whatsapp_gateway.outbox
        super().setUp()  # type: ignore[misc]
