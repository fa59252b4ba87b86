"""Replying in a conversation sends at once: it needs ``send_message`` as well as ``add_message``.

A user who may add messages (drafts) but not send them sees the thread without a reply box or a
"send a template" link, and a reply posted anyway is refused with 403 before anything is stored
or sent. The same user with ``send_message`` added gets the reply box and sends.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from django_whatsapp import window
from django_whatsapp.models import Message
from tests.conftest import FakeGateway
from tests.factories import staff_client

pytestmark = pytest.mark.django_db

CUSTOMER = "380501234567"
THREAD = reverse("admin:django_whatsapp_conversation_thread", args=[CUSTOMER])
REPLY = reverse("admin:django_whatsapp_conversation_reply", args=[CUSTOMER])
TEMPLATE_LINK = f"message_type=4&amp;destination_addr={CUSTOMER}"


@pytest.fixture
def conversation() -> Message:
    """The customer wrote a moment ago: the window is open, a reply could go out."""
    message = Message.objects.create(
        source_addr="Shop",
        destination_addr=CUSTOMER,
        text="Is my order ready?",
        direction=Message.Direction.INBOUND,
        status=Message.Status.DELIVERED,
    )
    window.record_inbound(CUSTOMER, timezone.now())
    return message


def test_a_user_who_may_add_but_not_send_cannot_reply(
    django_user_model: Any, gateway: FakeGateway, conversation: Message
) -> None:
    drafter = staff_client(
        django_user_model, "drafter", "view_message", "add_message", "change_message"
    )

    page = drafter.get(THREAD)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Is my order ready?" in html  # reading is allowed
    assert 'id="wa-reply"' not in html
    assert TEMPLATE_LINK not in html

    refused = drafter.post(REPLY, {"text": "Yes, come and get it"})

    assert refused.status_code == 403
    assert list(Message.objects.values_list("pk", flat=True)) == [conversation.pk]
    assert gateway.requests == []


def test_the_same_user_with_the_send_permission_replies(
    django_user_model: Any, gateway: FakeGateway, conversation: Message
) -> None:
    gateway.accept()
    sender = staff_client(
        django_user_model,
        "sender",
        "view_message",
        "add_message",
        "change_message",
        "send_message",
    )

    html = sender.get(THREAD).content.decode()
    assert 'id="wa-reply"' in html
    assert TEMPLATE_LINK in html

    answer = sender.post(REPLY, {"text": "Yes, come and get it"})

    assert answer.status_code == 302
    reply = Message.objects.exclude(pk=conversation.pk).get()
    assert (reply.text, reply.status) == ("Yes, come and get it", Message.Status.ACCEPTED)
    assert len(gateway.sent_bodies()) == 1


@pytest.mark.parametrize("codenames", [("view_message", "send_message"), ("view_message",)])
def test_sending_without_adding_or_only_viewing_cannot_reply(
    django_user_model: Any, gateway: FakeGateway, conversation: Message, codenames: tuple[str, ...]
) -> None:
    user = staff_client(django_user_model, "partial", *codenames)
    assert 'id="wa-reply"' not in user.get(THREAD).content.decode()
    assert user.post(REPLY, {"text": "Hi"}).status_code == 403
    assert Message.objects.count() == 1
    assert gateway.requests == []
