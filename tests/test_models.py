"""Models and migrations of SPEC section 4, and the database constraints."""

from __future__ import annotations

import io
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import IntegrityError, models, transaction

from django_whatsapp.models import Message, StatusEvent, Template

pytestmark = pytest.mark.django_db


def field_names(model: type[models.Model]) -> set[str]:
    return {f.name for f in model._meta.get_fields() if not f.auto_created or f.concrete}


def make_message(**fields: object) -> Message:
    defaults: dict[str, object] = {"source_addr": "TestCo", "destination_addr": "380501234567"}
    return Message.objects.create(**{**defaults, **fields})


def test_migrations_match_the_models() -> None:
    out = io.StringIO()
    call_command("makemigrations", "django_whatsapp", check=True, dry_run=True, stdout=out)
    assert "No changes detected" in out.getvalue()


def test_template_fields_and_defaults() -> None:
    assert {
        "name",
        "namespace",
        "language_code",
        "language_policy",
        "body",
        "header_type",
        "components",
        "is_active",
        "created_at",
        "updated_at",
    } <= field_names(Template)
    template = Template.objects.create(name="hello", namespace="ns", body="Hi {{1}}")
    template.refresh_from_db()
    assert template.language_policy == "deterministic"
    assert template.header_type == "none"
    assert template.is_active is True
    assert template.components is None
    assert template.created_at is not None
    assert template.updated_at is not None
    assert [c for c, _label in Template.HeaderType.choices] == ["none", "text", "image"]
    assert str(template) == "hello (en_US)"


def test_template_is_unique_on_name_and_language() -> None:
    Template.objects.create(name="hello", namespace="ns", language_code="en_US", body="Hi")
    Template.objects.create(name="hello", namespace="ns", language_code="uk", body="Привіт")
    with pytest.raises(IntegrityError), transaction.atomic():
        Template.objects.create(name="hello", namespace="ns2", language_code="en_US", body="x")
    assert Template.objects.filter(name="hello").count() == 2


@pytest.mark.parametrize(
    ("body", "count"),
    [
        ("", 0),
        ("No placeholders", 0),
        ("Hi {{1}}", 1),
        ("Hi {{1}}, {{2}} and {{ 3 }}", 3),
        ("Twice {{1}} {{1}}", 1),
        ("Only {{2}}", 2),
        ("{{10}} and {{9}}", 10),
        ("Not one: {{x}} {1}", 0),
    ],
)
def test_placeholder_count(body: str, count: int) -> None:
    assert Template(name="t", body=body).placeholder_count == count


def test_render_fills_the_placeholders_it_has_values_for() -> None:
    template = Template(name="t", body="Hello {{1}}, order {{ 2 }} ({{3}})")
    assert template.render(["Ann", 42]) == "Hello Ann, order 42 ({{3}})"
    assert template.render([]) == "Hello {{1}}, order {{ 2 }} ({{3}})"
    assert Template(name="t", body="").render(["x"]) == ""


def test_message_fields_and_defaults() -> None:
    assert {
        "uuid",
        "source_addr",
        "destination_addr",
        "message_type",
        "text",
        "file_url",
        "template",
        "template_params",
        "provider_message_id",
        "status",
        "error_code",
        "error_name",
        "error_message",
        "attempts",
        "created_by",
        "created_at",
        "submitted_at",
        "status_changed_at",
    } <= field_names(Message)
    message = make_message(text="hi")
    message.refresh_from_db()
    assert isinstance(message.uuid, uuid.UUID)
    assert message.status == "draft"
    assert message.message_type == Message.MessageType.TEXT == 1
    assert message.attempts == 0
    assert message.provider_message_id is None
    assert message.template_params == {}
    assert message.created_by is None
    assert message.submitted_at is None
    assert message.status_changed_at is None
    assert message.is_final is False
    assert str(message) == "Text message to +380501234567"


def test_message_type_and_status_choices() -> None:
    assert dict(Message.MessageType.choices).keys() == {1, 2, 4}
    assert Message.MessageType.TEXT == 1
    assert Message.MessageType.MEDIA == 2
    assert Message.MessageType.TEMPLATE == 4
    assert len(Message.Status.choices) == 14


@pytest.mark.parametrize("status", ["not_sent", "rejected", "error", "failed", "deleted"])
def test_is_final(status: str) -> None:
    assert Message(status=status).is_final is True


@pytest.mark.parametrize("status", ["draft", "queued", "sending", "unknown", "accepted", "seen"])
def test_is_not_final(status: str) -> None:
    assert Message(status=status).is_final is False


def test_message_uuid_is_unique() -> None:
    first = make_message(text="a")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_message(text="b", uuid=first.uuid)


def test_provider_message_id_is_unique_but_may_be_null_many_times() -> None:
    make_message(text="a")
    make_message(text="b")
    make_message(text="c", provider_message_id=77)
    with pytest.raises(IntegrityError), transaction.atomic():
        make_message(text="d", provider_message_id=77)
    assert Message.objects.filter(provider_message_id__isnull=True).count() == 2


def test_created_by_is_set_null_when_the_user_goes() -> None:
    user = get_user_model().objects.create_user("op", password="x")
    message = make_message(text="a", created_by=user)
    user.delete()
    message.refresh_from_db()
    assert message.created_by is None


def test_a_template_in_use_cannot_be_deleted(template: Template) -> None:
    make_message(message_type=Message.MessageType.TEMPLATE, template=template)
    with pytest.raises(models.ProtectedError):
        template.delete()


@pytest.mark.parametrize(
    ("params", "body", "header"),
    [
        ({}, [], None),
        ({"body": ["a", 2]}, ["a", "2"], None),
        ({"body": "not a list", "header": ""}, [], None),
        ({"body": [], "header": "https://x.test/a.png"}, [], "https://x.test/a.png"),
        (None, [], None),
    ],
)
def test_template_params_accessors(params: object, body: list[str], header: str | None) -> None:
    message = Message(template_params=params)
    assert message.template_body_params == body
    assert message.template_header == header


def test_status_event_fields_and_related_name() -> None:
    assert {"message", "status", "provider_status", "source", "payload", "received_at"} <= (
        field_names(StatusEvent)
    )
    assert StatusEvent.Source.values == ["send", "callback", "poll", "admin"]
    message = make_message(text="a")
    event = StatusEvent.objects.create(message=message, status="sent", source="poll")
    assert list(message.events.all()) == [event]
    assert event.payload == {}
    assert event.received_at is not None
    assert str(event) == "sent (poll)"


def test_status_events_go_with_their_message() -> None:
    message = make_message(text="a")
    StatusEvent.objects.create(message=message, status="sent", source="poll")
    message.delete()
    assert StatusEvent.objects.count() == 0


@pytest.mark.parametrize("source", ["callback", "poll"])
def test_a_duplicate_report_is_turned_away_by_the_database(source: str) -> None:
    message = make_message(text="a")
    StatusEvent.objects.create(message=message, status="delivered", source=source)
    with pytest.raises(IntegrityError), transaction.atomic():
        StatusEvent.objects.create(
            message=message, status="delivered", source=source, payload={"other": "body"}
        )
    assert message.events.count() == 1


def test_the_same_status_from_another_source_or_message_is_not_a_duplicate() -> None:
    message, other = make_message(text="a"), make_message(text="b")
    StatusEvent.objects.create(message=message, status="delivered", source="callback")
    StatusEvent.objects.create(message=message, status="delivered", source="poll")
    StatusEvent.objects.create(message=message, status="seen", source="callback")
    StatusEvent.objects.create(message=other, status="delivered", source="callback")
    assert StatusEvent.objects.count() == 4


@pytest.mark.parametrize("source", ["send", "admin"])
def test_send_and_admin_events_may_repeat(source: str) -> None:
    # A retried message is queued by an operator and refused by the gateway again: each is a
    # real event of its own.
    message = make_message(text="a")
    StatusEvent.objects.create(message=message, status="not_sent", source=source)
    StatusEvent.objects.create(message=message, status="not_sent", source=source)
    assert message.events.count() == 2


def test_orderings_put_the_newest_first() -> None:
    first, second = make_message(text="a"), make_message(text="b")
    assert list(Message.objects.all())[:2] == [second, first]
    old = StatusEvent.objects.create(message=first, status="sent", source="poll")
    new = StatusEvent.objects.create(message=first, status="delivered", source="poll")
    assert list(first.events.all()) == [new, old]
