"""The pytest plugin (entry point ``pytest11``): the ``whatsapp_outbox`` and ``whatsapp_gateway``
fixtures. It needs pytest-django (settings configured); nothing is imported from the app until a
fixture is used, so the plugin costs nothing to test suites that do not use it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .transport import MemoryGateway, SentMessage


@pytest.fixture
def whatsapp_gateway() -> Iterator[MemoryGateway]:
    """Sends go to the in-process memory gateway for this test; yields the gateway
    (``outbox``, ``fail_next``, ``set_status``, ``requests``) and cleans up after."""
    from .helpers import override_whatsapp

    with override_whatsapp() as memory:
        yield memory


@pytest.fixture
def whatsapp_outbox(whatsapp_gateway: MemoryGateway) -> list[SentMessage]:
    """Sends go to the in-process memory gateway for this test; the list of what was sent
    (each a :class:`~django_whatsapp.testing.SentMessage`: ``body``, ``raw``, ``message``)."""
    return whatsapp_gateway.outbox
