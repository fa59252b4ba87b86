"""Accounts apart (SPEC 13): a provider message id is unique per account, not across accounts, and
an idempotency key is scoped per account; a repeated key with any other content is a conflict
naming the fields.

Two fake gateways over real TCP: the default account's (``gateway``) and ``brand2``'s; each
numbers its messages on its own, and here both give the same ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from pytest_httpserver import HTTPServer

from django_whatsapp import services
from django_whatsapp.exceptions import IdempotencyConflict
from django_whatsapp.models import Message

from .conftest import FakeGateway
from .test_callback import post_callback

pytestmark = pytest.mark.django_db

TO = "380501234567"
Status = Message.Status


@pytest.fixture
def brand2(gateway: FakeGateway, settings: Any) -> Iterator[FakeGateway]:
    """The account ``brand2``'s own gateway; ``gateway`` stays the default account's."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    fake = FakeGateway(server)
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "ACCOUNTS": {
            "brand2": {
                "API_KEY": "brand2-key",
                "BASE_URL": fake.base_url,
                "DEFAULT_SOURCE_ADDR": "Brand2",
            }
        },
    }
    yield fake
    server.clear()
    server.stop()


def same_ids(*gateways: FakeGateway, start: int = 7000) -> None:
    """Every gateway numbers its messages from ``start`` on its own."""
    for fake in gateways:
        fake._next_id = start
        fake.accept()


def test_another_accounts_id_is_accepted_and_its_callback_settles_it(
    gateway: FakeGateway, brand2: FakeGateway, client: Client
) -> None:
    same_ids(gateway, brand2)
    first = services.send_text(TO, "from the default account")
    second = services.send_text(TO, "from brand2", account="brand2")

    assert first.provider_message_id == second.provider_message_id == 7001
    assert (first.status, second.status) == (Status.ACCEPTED, Status.ACCEPTED)
    assert second.error_name == ""  # not "Duplicate message_id"

    response = post_callback(client, second, {"message_id": 7001, "status": "delivered"})
    assert response.status_code == 200, response.content
    second.refresh_from_db()
    first.refresh_from_db()
    assert second.status == Status.DELIVERED
    assert first.status == Status.ACCEPTED  # the other account's message is untouched


def test_a_lost_answer_adopts_an_id_another_account_has(
    gateway: FakeGateway, brand2: FakeGateway, client: Client
) -> None:
    same_ids(gateway)
    services.send_text(TO, "from the default account")
    # brand2's message whose answer was lost: no provider id, status unknown.
    lost = Message.objects.create(
        account="brand2",
        destination_addr=TO,
        source_addr="Brand2",
        text="answer lost",
        status=Status.UNKNOWN,
    )
    response = post_callback(client, lost, {"message_id": 7001, "status": "sent"})
    assert response.status_code == 200, response.content
    lost.refresh_from_db()
    assert (lost.provider_message_id, lost.status) == (7001, Status.SENT)


def test_a_second_id_in_one_account_is_still_refused(gateway: FakeGateway, client: Client) -> None:
    same_ids(gateway)
    services.send_text(TO, "first")
    lost = Message.objects.create(
        destination_addr=TO, source_addr="TestCo", text="lost", status=Status.UNKNOWN
    )
    response = post_callback(client, lost, {"message_id": 7001, "status": "sent"})
    assert response.status_code == 400
    assert "another message" in response.json()["error"]


@pytest.mark.django_db(transaction=True)  # an inline bulk send commits each message
def test_bulk_through_another_account_records_ids_the_default_account_has(
    gateway: FakeGateway, brand2: FakeGateway
) -> None:
    same_ids(gateway, brand2)
    numbers = [f"38050000000{i}" for i in range(1, 5)]
    services.send_bulk(numbers, text="default", concurrency=2)
    result = services.send_bulk(numbers, text="brand2", account="brand2", concurrency=2)
    assert result.counts == {Status.ACCEPTED: 4}
    ids = Message.objects.values_list("account", "provider_message_id")
    assert sorted(ids) == sorted(
        [(account, 7000 + i) for account in ("default", "brand2") for i in range(1, 5)]
    )


# -- idempotency keys --------------------------------------------------------------------------


def test_one_key_under_two_accounts_is_two_sends(gateway: FakeGateway, brand2: FakeGateway) -> None:
    same_ids(gateway, brand2)
    first = services.send_text(TO, "hi", idempotency_key="order-42")
    second = services.send_text(TO, "hi", idempotency_key="order-42", account="brand2")
    assert first.pk != second.pk
    assert (first.account, second.account) == ("default", "brand2")
    assert len(gateway.sent_bodies()) == len(brand2.sent_bodies()) == 1
    # And again under each: nothing more is sent.
    assert services.send_text(TO, "hi", idempotency_key="order-42").pk == first.pk
    again = services.send_text(TO, "hi", idempotency_key="order-42", account="brand2")
    assert again.pk == second.pk
    assert len(gateway.sent_bodies()) == len(brand2.sent_bodies()) == 1


@pytest.mark.django_db(transaction=True)
def test_bulk_keys_are_scoped_per_account(gateway: FakeGateway, brand2: FakeGateway) -> None:
    same_ids(gateway, brand2)
    numbers = ["380500000001", "380500000002"]
    services.send_bulk(numbers, text="x", idempotency_key="sale")
    result = services.send_bulk(numbers, text="x", idempotency_key="sale", account="brand2")
    assert result.existing == []
    assert len(brand2.sent_bodies()) == 2


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"source_addr": "OtherCo"}, ["sender"]),
        ({"metadata": {"order": 43}}, ["metadata"]),
        ({"tags": ["vip"]}, ["tags"]),
        ({"text": "bye", "tags": ["vip"]}, ["text", "tags"]),
        ({"target": "group"}, ["target"]),
        ({"to": "+380 50 999 99 99"}, ["recipient"]),
    ],
)
def test_a_key_repeated_with_other_content_is_a_conflict_naming_the_fields(
    gateway: FakeGateway, change: dict[str, Any], fields: list[str]
) -> None:
    same_ids(gateway)
    group = Group.objects.create(name="orders")
    first_call: dict[str, Any] = {"metadata": {"order": 42}, "tags": ["sale"]}
    first = services.send_text(TO, "hi", idempotency_key="k", **first_call)
    again: dict[str, Any] = {"to": TO, "text": "hi", **first_call, **change}
    if again.get("target") == "group":
        again["target"] = group
    with pytest.raises(IdempotencyConflict) as caught:
        services.send_text(again.pop("to"), again.pop("text"), idempotency_key="k", **again)
    assert caught.value.fields == fields
    assert caught.value.message.pk == first.pk
    for name in fields:
        assert name in str(caught.value)
    assert len(gateway.sent_bodies()) == 1


def test_the_same_key_with_the_same_content_written_otherwise_is_the_same_send(
    gateway: FakeGateway,
) -> None:
    same_ids(gateway)
    first = services.send_text(TO, "hi", idempotency_key="k", metadata={"a": 1, "b": [1]})
    again = services.send_text(
        "+380 (50) 123-45-67", "hi", idempotency_key="k", metadata={"b": [1], "a": 1}
    )
    assert again.pk == first.pk
    assert [json.loads(json.dumps(b))["destination_addr"] for b in gateway.sent_bodies()] == [
        380501234567
    ]
