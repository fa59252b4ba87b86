"""Issue #10, items 5 and 6 on the status callback: HEAD is refused and applies nothing (Django
would route it to ``get()``); every 400 reason is filled in, never ``%(status)s``."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from django.test import Client

from django_whatsapp.models import Message, StatusEvent
from django_whatsapp.signing import callback_url

pytestmark = pytest.mark.django_db

Status = Message.Status
JSON = "application/json"


@pytest.fixture
def message() -> Message:
    return Message.objects.create(
        source_addr="TestCo",
        destination_addr="380631234567",
        text="hi",
        status=Status.ACCEPTED,
        provider_message_id=554,
    )


def path_of(message: Message) -> str:
    url = callback_url(message.uuid)
    assert url is not None
    return urlsplit(url).path


def test_head_is_refused_and_applies_nothing(client: Client, message: Message) -> None:
    query = urlencode({"message_id": 554, "status": "delivered"})
    response = client.head(f"{path_of(message)}?{query}")
    assert response.status_code == 405
    assert "HEAD" not in response["Allow"]
    assert set(response["Allow"].replace(" ", "").split(",")) == {"GET", "POST", "OPTIONS"}
    assert not StatusEvent.objects.exists()
    assert Message.objects.get(pk=message.pk).status == Status.ACCEPTED
    # The same query string with GET is applied: HEAD was refused for what it is.
    assert client.get(f"{path_of(message)}?{query}").status_code == 200
    assert Message.objects.get(pk=message.pk).status == Status.DELIVERED


#: One input of each class, and the exact reason the answer gives for it.
REASONS = [
    pytest.param(
        {"status": "draft"},
        {"status": ["draft is not a status the gateway reports."]},
        id="a-status-the-gateway-never-reports",
    ),
    pytest.param(
        {"status": "bogus"},
        {
            "status": [
                "status must be a provider status code (0-7) or name: unknown status 'bogus'."
            ]
        },
        id="an-unknown-status-name",
    ),
    pytest.param(
        {"status": 99},
        {
            "status": [
                "status must be a provider status code (0-7) or name: unknown status code 99."
            ]
        },
        id="an-unknown-status-code",
    ),
    pytest.param(
        {"status": [1]},
        {
            "status": [
                "status must be a provider status code (0-7) or name: status must be a status "
                "code or name, not list."
            ]
        },
        id="a-status-of-the-wrong-type",
    ),
    pytest.param(
        {"message_id": "x", "status": 1},
        {"message_id": ["message_id must be a positive whole number."]},
        id="a-bad-message-id",
    ),
    pytest.param(
        {"message_id": 2**63, "status": 1},
        {"message_id": ["message_id must be a positive whole number."]},
        id="a-message-id-out-of-range",
    ),
    pytest.param({}, None, id="an-empty-report"),
]


@pytest.mark.parametrize(("report", "fields"), REASONS)
def test_every_400_reason_is_filled_in(
    client: Client, message: Message, report: dict[str, Any], fields: Any
) -> None:
    response = client.post(path_of(message), json.dumps(report), content_type=JSON)
    assert response.status_code == 400
    answer = response.json()
    assert answer["ok"] is False
    if fields is None:
        assert answer["error"] == "Empty report: message_id and status are expected."
    else:
        assert answer["error"] == "Malformed report."
        assert answer["fields"] == fields
    assert "%(" not in response.content.decode()
    assert not StatusEvent.objects.exists()
    assert Message.objects.get(pk=message.pk).status == Status.ACCEPTED
