"""An operator's send, refresh, retry or reply while the gateway is not configured (no API key):
each says so in the admin, keeps what was typed, and changes or sends nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_whatsapp import window
from django_whatsapp.models import Message
from tests.conftest import FakeGateway
from tests.factories import make_draft

pytestmark = pytest.mark.django_db

Status = Message.Status
CUSTOMER = "380501234567"
NOT_CONFIGURED = "Nothing was sent: the gateway is not configured."


@pytest.fixture
def no_api_key(settings: Any, gateway: FakeGateway) -> FakeGateway:
    """The fake gateway is up, but the project has no API key for it."""
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "API_KEY": None}
    return gateway


def notices(response: Any) -> str:
    return " | ".join(str(m) for m in response.context["messages"])


def tool_url(message: Message, tool: str) -> str:
    return reverse(f"admin:django_whatsapp_message_{tool}", args=[message.pk])


def test_refresh_without_an_api_key_says_so_and_changes_nothing(
    admin_client: Client, no_api_key: FakeGateway
) -> None:
    message = make_draft(Status.ACCEPTED, provider_message_id=4321)

    response = admin_client.post(tool_url(message, "refresh"), follow=True)

    assert NOT_CONFIGURED in notices(response)
    assert "API_KEY" in notices(response)
    message.refresh_from_db()
    assert message.status == Status.ACCEPTED
    assert not message.events.exists()
    assert no_api_key.requests == []


def test_retry_without_an_api_key_says_so_and_leaves_it_not_sent(
    admin_client: Client, no_api_key: FakeGateway
) -> None:
    message = make_draft(Status.NOT_SENT, error_code=2, error_name="Internal server error")

    response = admin_client.post(tool_url(message, "retry"), follow=True)

    assert NOT_CONFIGURED in notices(response)
    message.refresh_from_db()
    assert (message.status, message.error_name) == (Status.NOT_SENT, "Internal server error")
    assert no_api_key.requests == []


def test_a_reply_without_an_api_key_says_so_and_keeps_the_text(
    admin_client: Client, no_api_key: FakeGateway
) -> None:
    Message.objects.create(
        source_addr="Shop",
        destination_addr=CUSTOMER,
        text="Is my order ready?",
        direction=Message.Direction.INBOUND,
        status=Status.DELIVERED,
    )
    window.record_inbound(CUSTOMER, timezone.now())
    reply = reverse("admin:django_whatsapp_conversation_reply", args=[CUSTOMER])

    response = admin_client.post(reply, {"text": "Yes, come and get it"})

    assert response.status_code == 200
    assert NOT_CONFIGURED in notices(response)
    assert "Yes, come and get it" in response.content.decode()  # still in the reply box
    assert Message.objects.count() == 1
    assert no_api_key.requests == []
