"""django_whatsapp.testing for the projects' own suites: the pytest plugin (an entry point, so a
project gets the fixtures by installing the app) and the ``unittest`` mixin for Django's
TestCase."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import pytest
from django.test import TestCase

from django_whatsapp import services
from django_whatsapp.conf import get_settings
from django_whatsapp.exceptions import InsufficientBalance
from django_whatsapp.models import Message
from django_whatsapp.testing import SentMessage, WhatsAppTestMixin, gateway, override_whatsapp


def test_the_plugin_is_a_pytest11_entry_point() -> None:
    [plugin] = [e for e in entry_points(group="pytest11") if e.name == "django_whatsapp"]
    assert plugin.value == "django_whatsapp.testing.pytest_plugin"
    module = plugin.load()
    assert {"whatsapp_outbox", "whatsapp_gateway"} <= set(vars(module))


def test_the_whatsapp_outbox_fixture(whatsapp_outbox: list[SentMessage], db: Any) -> None:
    # This suite registers no such fixture itself: it comes from the installed entry point.
    assert get_settings().BASE_URL == "memory://"
    assert whatsapp_outbox == []
    message = services.send_text("380501234567", "from the fixture")
    [sent] = whatsapp_outbox
    assert sent.message == message
    assert sent.body["text"] == "from the fixture"


class MixinTests(WhatsAppTestMixin, TestCase):
    """A project's Django TestCase with the mixin."""

    def test_sends_land_in_self_whatsapp_outbox(self) -> None:
        message = services.send_text("380501234567", "from unittest")
        assert len(self.whatsapp_outbox) == 1
        assert self.whatsapp_outbox[0].message == message
        assert message.status == Message.Status.ACCEPTED

    def test_each_test_starts_with_an_empty_outbox_and_can_fail_sends(self) -> None:
        assert self.whatsapp_outbox == []
        self.whatsapp_gateway.fail_next(InsufficientBalance)
        message = services.send_text("380501234567", "no balance")
        assert message.status == Message.Status.NOT_SENT
        assert message.error_code == 3
        assert self.whatsapp_outbox == []


@override_whatsapp()
class DecoratedTests(TestCase):
    """override_whatsapp() on a TestCase class: every test sends to the memory gateway."""

    def test_the_class_decorator_enables_the_memory_gateway(self) -> None:
        assert get_settings().BASE_URL == "memory://"
        services.send_text("380501234567", "decorated class")
        assert [s.text for s in gateway.outbox] == ["decorated class"]


def test_the_package_loads_its_names_on_first_use() -> None:
    """The app imports django_whatsapp.testing.transport when it starts; the package's other
    names load on first use (and reloading re-runs the modules, which pytest imported before
    coverage started)."""
    import importlib

    import django_whatsapp.testing as testing
    from django_whatsapp.testing import pytest_plugin

    importlib.reload(testing)
    importlib.reload(pytest_plugin)
    for name in testing.__all__:
        assert getattr(testing, name) is not None, name
    assert testing.outbox is testing.gateway.outbox
    assert testing.fail_next.__self__ is testing.gateway  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        testing.nothing  # type: ignore[attr-defined]  # noqa: B018
    assert callable(pytest_plugin.whatsapp_outbox)
