"""The caller's own data on a message: metadata, tags and a link to any object (``target``), on
every send path, in every signal, and in the admin."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_whatsapp import services, signals
from django_whatsapp.bulk import send_bulk
from django_whatsapp.exceptions import InvalidParameter
from django_whatsapp.metadata import MAX_METADATA_BYTES, MAX_TAG_LENGTH, MAX_TAGS
from django_whatsapp.models import Message, Template
from django_whatsapp.testing import MemoryGateway, deliver_status

pytestmark = pytest.mark.django_db

TO = "380501234567"
LIST_URL = reverse("admin:django_whatsapp_message_changelist")


@pytest.fixture
def session() -> Session:
    """A model whose primary key is a string: any pk type works as a target."""
    return Session.objects.create(
        session_key="abc123session", session_data="", expire_date=timezone.now()
    )


def own(message: Message) -> tuple[Any, ...]:
    stored = Message.objects.get(pk=message.pk)
    return (stored.metadata, stored.tags, stored.target)


def test_every_send_service_stores_metadata_tags_and_target(
    whatsapp_gateway: MemoryGateway, template: Template, session: Session, admin_user: Any
) -> None:
    data = {"order": 42, "source": "checkout"}
    text = services.send_text(TO, "hi", metadata=data, tags=["order", "vip"], target=admin_user)
    media = services.send_media(TO, "https://x.io/a.png", metadata=data, target=session)
    tmpl = services.send_template(
        TO, template, ["Ann", "A-1"], "https://x.io/h.jpg", tags=["reminder"]
    )
    built = services.send_message(
        Message(destination_addr=TO, source_addr="Shop", text="built"),
        metadata={"k": "v"},
        tags=["built"],
        target=session,
    )
    assert own(text) == (data, ["order", "vip"], admin_user)
    assert own(media) == (data, [], session)
    assert own(tmpl) == ({}, ["reminder"], None)
    assert own(built) == ({"k": "v"}, ["built"], session)
    stored = Message.objects.get(pk=media.pk)
    assert stored.target_content_type == ContentType.objects.get_for_model(Session)
    assert stored.target_object_id == "abc123session"
    # None of it goes to the gateway.
    for sent in whatsapp_gateway.outbox:
        assert not {"metadata", "tags", "target"} & set(sent.body)
        assert b"checkout" not in sent.raw


def test_a_stored_message_takes_no_new_data(whatsapp_gateway: MemoryGateway) -> None:
    message = Message.objects.create(destination_addr=TO, source_addr="Shop", text="x")
    with pytest.raises(ValueError, match="already stored"):
        services.send_message(message, tags=["late"])
    assert whatsapp_gateway.requests == []


@pytest.mark.parametrize(
    ("kwargs", "field", "says"),
    [
        ({"tags": "vip"}, None, None),  # a single string is one tag: fine
        ({"tags": [""]}, "tags", "non-empty"),
        ({"tags": [1]}, "tags", "non-empty"),
        ({"tags": ["x" * (MAX_TAG_LENGTH + 1)]}, "tags", "longer than"),
        ({"tags": [f"t{i}" for i in range(MAX_TAGS + 1)]}, "tags", "At most"),
        ({"tags": ['say "hi"']}, "tags", "quote"),
        ({"tags": ["a", "a"]}, "tags", "once"),
        ({"metadata": ["not", "a", "dict"]}, "metadata", "JSON object"),
        ({"metadata": {"when": timezone.now()}}, "metadata", "JSON values"),
        ({"metadata": {"blob": "x" * MAX_METADATA_BYTES}}, "metadata", "larger than"),
        ({"target": Session(session_key=None)}, "target", "saved first"),
        ({"target": "order 42"}, "target", "model instance"),
    ],
)
def test_bad_data_is_refused_with_the_field_named_and_nothing_stored_or_sent(
    whatsapp_gateway: MemoryGateway, kwargs: dict[str, Any], field: str | None, says: str | None
) -> None:
    if field is None:
        message = services.send_text(TO, "hi", **kwargs)
        assert Message.objects.get(pk=message.pk).tags == ["vip"]
        return
    with pytest.raises(ValidationError) as caught:
        services.send_text(TO, "hi", **kwargs)
    assert list(caught.value.error_dict) == [field]
    assert says in " ".join(caught.value.messages)
    assert Message.objects.count() == 0
    assert whatsapp_gateway.requests == []


def test_every_signal_sees_the_data_through_the_message(
    whatsapp_gateway: MemoryGateway, admin_user: Any
) -> None:
    seen: list[tuple[str, Any, Any, Any]] = []

    def receiver(name: str) -> Any:
        def record(sender: Any, message: Message, **kwargs: Any) -> None:
            seen.append((name, message.metadata, message.tags, message.target))

        return record

    receivers = {
        name: receiver(name) for name in ("message_sending", "message_sent", "status_changed")
    }
    receivers["message_failed"] = receiver("message_failed")
    for name, func in receivers.items():
        getattr(signals, name).connect(func, weak=False)
    try:
        message = services.send_text(TO, "hi", metadata={"o": 1}, tags=["t"], target=admin_user)
        deliver_status(message, "delivered")
        whatsapp_gateway.fail_next(InvalidParameter)
        services.send_text(TO, "no", metadata={"o": 2}, tags=["u"], target=admin_user)
    finally:
        for name, func in receivers.items():
            getattr(signals, name).disconnect(func)
    names = [s[0] for s in seen]
    assert names == [
        "message_sending",
        "status_changed",
        "message_sent",
        "status_changed",
        "message_sending",
        "status_changed",
        "message_failed",
    ]
    assert all(s[1:] == ({"o": 1}, ["t"], admin_user) for s in seen[:4])
    assert all(s[1:] == ({"o": 2}, ["u"], admin_user) for s in seen[4:])


@pytest.mark.django_db(transaction=True)
def test_bulk_stores_the_data_on_every_message(
    whatsapp_gateway: MemoryGateway, session: Session
) -> None:
    result = send_bulk(
        ["380500000001", "380500000002"],
        text="sale",
        metadata={"campaign": "spring"},
        tags=["sale"],
        target=session,
        concurrency=2,
    )
    assert [own(m) for m in result.messages] == [({"campaign": "spring"}, ["sale"], session)] * 2
    with pytest.raises(ValidationError) as caught:
        send_bulk(["380500000003"], text="x", tags=[""])
    assert list(caught.value.error_dict) == ["tags"]
    assert Message.objects.count() == 2


def test_whatsapp_send_takes_tags_and_metadata(whatsapp_gateway: MemoryGateway) -> None:
    out = io.StringIO()
    call_command(
        "whatsapp_send",
        "--to",
        TO,
        "--text",
        "hi",
        "--tag",
        "cli",
        "--tag",
        "ops",
        "--metadata",
        "ticket=T-1",
        "--metadata",
        "note=a=b",
        stdout=out,
    )
    message = Message.objects.get()
    assert (message.tags, message.metadata) == (["cli", "ops"], {"ticket": "T-1", "note": "a=b"})
    with pytest.raises(CommandError, match="--metadata: 'oops' is not KEY=VALUE"):
        call_command("whatsapp_send", "--to", TO, "--text", "x", "--metadata", "oops")
    with pytest.raises(CommandError, match="--tag: "):
        call_command("whatsapp_send", "--to", TO, "--text", "x", "--tag", 'a"b')
    assert Message.objects.count() == 1


# -- the admin -------------------------------------------------------------------------------


def test_the_message_page_shows_the_data_and_links_the_target(
    admin_client: Client, whatsapp_gateway: MemoryGateway, admin_user: Any, session: Session
) -> None:
    linked = services.send_text(
        TO, "hi", metadata={"order": "A-42"}, tags=["vip", "Ünïcode"], target=admin_user
    )
    html = admin_client.get(reverse("admin:django_whatsapp_message_change", args=[linked.pk]))
    page = html.content.decode()
    user_url = reverse("admin:auth_user_change", args=[admin_user.pk])
    assert f'<a href="{user_url}">user: {admin_user}</a>' in page
    assert "&quot;order&quot;: &quot;A-42&quot;" in page
    assert f'href="{LIST_URL}?tag=vip"' in page
    assert "?tag=%C3%9Cn%C3%AFcode" in page
    # A target without an admin page is named, not linked; a deleted one says so.
    unlinked = services.send_text(TO, "hi", target=session)
    page = admin_client.get(
        reverse("admin:django_whatsapp_message_change", args=[unlinked.pk])
    ).content.decode()
    assert "session: abc123session" in page
    session.delete()
    page = admin_client.get(
        reverse("admin:django_whatsapp_message_change", args=[unlinked.pk])
    ).content.decode()
    assert "session #abc123session (no longer exists)" in page


def make(**fields: Any) -> Message:
    values: dict[str, Any] = {"destination_addr": TO, "source_addr": "Shop", "text": "x"}
    values.update(fields)
    return Message.objects.create(**values)


def listed(client: Client, **params: str) -> set[int]:
    response = client.get(LIST_URL, params)
    assert response.status_code == 200
    return {m.pk for m in response.context["cl"].result_list}


def test_the_list_filters_by_tag_and_target_type_and_searches_metadata(
    admin_client: Client, admin_user: Any, session: Session
) -> None:
    user_type = ContentType.objects.get_for_model(get_user_model())
    session_type = ContentType.objects.get_for_model(Session)
    vip = make(tags=["vip", "spring"], metadata={"order": "A-42"})
    vip_like = make(tags=["vipx", "Vip"], metadata={"order": "B-7"})
    to_user = make(target_content_type=user_type, target_object_id=str(admin_user.pk))
    to_session = make(target_content_type=session_type, target_object_id=session.pk)
    assert listed(admin_client, tag="vip") == {vip.pk}
    assert listed(admin_client, tag="Vip") == {vip_like.pk}
    assert listed(admin_client, tag="spring") == {vip.pk}
    assert listed(admin_client, target_content_type__id__exact=str(user_type.pk)) == {to_user.pk}
    assert listed(admin_client, target_content_type__id__exact=str(session_type.pk)) == {
        to_session.pk
    }
    assert listed(admin_client, q="A-42") == {vip.pk}
    html = admin_client.get(LIST_URL).content.decode()
    for tag in ("vip", "vipx", "Vip", "spring"):
        assert f'?tag={tag}"' in html
    assert f"?target_content_type__id__exact={user_type.pk}" in html


def test_the_list_makes_as_many_queries_for_50_tagged_linked_rows_as_for_5(
    admin_client: Client, admin_user: Any, session: Session
) -> None:
    user_type = ContentType.objects.get_for_model(get_user_model())

    def add(n: int) -> None:
        for i in range(n):
            make(
                tags=[f"t{i}", "all"],
                metadata={"i": i},
                target_content_type=user_type,
                target_object_id=str(admin_user.pk),
            )

    def count(**params: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(LIST_URL, params).status_code == 200
        return len(queries)

    add(5)
    small = [count(), count(tag="all"), count(q="1")]
    add(45)
    assert [count(), count(tag="all"), count(q="1")] == small
