"""Small builders shared by the test modules."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Permission
from django.test import Client

from django_whatsapp.models import Message


def make_message(status: str = "accepted", provider_message_id: int | None = 1001) -> Message:
    """A text message as the services left it: by default accepted with provider id 1001."""
    return Message.objects.create(
        source_addr="TestCo",
        destination_addr="380501234567",
        text="hello",
        status=status,
        provider_message_id=provider_message_id,
    )


def make_draft(status: str = Message.Status.DRAFT, **fields: Any) -> Message:
    """A text message as an operator composed it in the admin; ``fields`` override."""
    values: dict[str, Any] = {
        "message_type": Message.MessageType.TEXT,
        "destination_addr": "380671234567",
        "source_addr": "Shop",
        "text": "Hello",
        "status": status,
    }
    values.update(fields)
    return Message.objects.create(**values)


def staff_client(django_user_model: Any, username: str, *codenames: str) -> Client:
    """A logged-in staff client with these django_whatsapp permissions only."""
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_whatsapp", codename__in=codenames)
    )
    client = Client()
    client.force_login(user)
    return client
