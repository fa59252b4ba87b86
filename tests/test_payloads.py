"""The request bodies of SPEC section 3, built from messages (no database, no network)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from django_whatsapp.models import Message, Template
from django_whatsapp.payloads import message_payload, template_components, template_object

CALLBACK = "https://app.example.com/whatsapp/callback/u/s/"


def _template(**kwargs: Any) -> Template:
    fields: dict[str, Any] = {
        "name": "order_ready",
        "namespace": "ns_1234",
        "language_code": "en_US",
        "body": "Hello {{1}}, your order {{2}} is ready.",
        "header_type": Template.HeaderType.NONE,
        **kwargs,
    }
    return Template(**fields)


def _template_message(template: Template, body: list[str], header: str | None) -> Message:
    return Message(
        message_type=Message.MessageType.TEMPLATE,
        source_addr="TestCo",
        destination_addr="380631234567",
        template=template,
        template_params={"body": body, "header": header},
    )


def test_text_payload() -> None:
    message = Message(
        message_type=Message.MessageType.TEXT,
        source_addr="TestCo",
        destination_addr="380631234567",
        text="Привіт 👋",
    )

    assert message_payload(message) == {
        "source_addr": "TestCo",
        "destination_addr": 380631234567,
        "message_type": 1,
        "text": "Привіт 👋",
    }
    assert message_payload(message, callback_url=CALLBACK)["callback_url"] == CALLBACK


def test_destination_is_a_json_integer_of_up_to_20_digits() -> None:
    message = Message(
        message_type=Message.MessageType.TEXT,
        source_addr="TestCo",
        destination_addr="9" * 20,
        text="x",
    )

    payload = message_payload(message)

    assert payload["destination_addr"] == int("9" * 20)
    assert json.dumps(payload["destination_addr"]) == "9" * 20


def test_a_leading_zero_is_not_lost() -> None:
    message = Message(
        message_type=Message.MessageType.TEXT,
        source_addr="TestCo",
        destination_addr="0631234567",
        text="x",
    )

    assert message_payload(message)["destination_addr"] == "0631234567"


@pytest.mark.parametrize(("caption", "has_text"), [("", False), ("Чек", True)])
def test_media_payload(caption: str, has_text: bool) -> None:
    message = Message(
        message_type=Message.MessageType.MEDIA,
        source_addr="TestCo",
        destination_addr="380631234567",
        file_url="https://cdn.example.com/a.png",
        text=caption,
    )

    payload = message_payload(message, callback_url=CALLBACK)

    assert payload["message_type"] == 2
    assert payload["file_url"] == "https://cdn.example.com/a.png"
    assert ("text" in payload) is has_text
    assert payload.get("text", "") == caption
    assert payload["callback_url"] == CALLBACK


def test_template_payload_holds_the_template_object_as_a_string() -> None:
    template = _template(header_type=Template.HeaderType.IMAGE, language_policy="deterministic")
    message = _template_message(template, ["Олена", "A-17"], "https://cdn.example.com/o.jpg")

    payload = message_payload(message)

    assert set(payload) == {
        "source_addr",
        "destination_addr",
        "message_type",
        "template_name",
        "template_params",
    }
    assert payload["message_type"] == 4
    assert payload["template_name"] == "order_ready"
    assert isinstance(payload["template_params"], str)
    assert "Олена" in payload["template_params"]
    assert json.loads(payload["template_params"]) == {
        "to": "380631234567",
        "type": "template",
        "template": {
            "namespace": "ns_1234",
            "language": {"policy": "deterministic", "code": "en_US"},
            "name": "order_ready",
            "components": [
                {
                    "type": "header",
                    "parameters": [
                        {"type": "image", "image": {"link": "https://cdn.example.com/o.jpg"}}
                    ],
                },
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Олена"},
                        {"type": "text", "text": "A-17"},
                    ],
                },
            ],
        },
    }


@pytest.mark.parametrize(
    ("header_type", "params", "header", "expected"),
    [
        (Template.HeaderType.NONE, [], None, []),
        (
            Template.HeaderType.NONE,
            ["a"],
            None,
            [{"type": "body", "parameters": [{"type": "text", "text": "a"}]}],
        ),
        (
            Template.HeaderType.TEXT,
            [],
            "Title",
            [{"type": "header", "parameters": [{"type": "text", "text": "Title"}]}],
        ),
        (Template.HeaderType.TEXT, [], None, []),
        (Template.HeaderType.IMAGE, [], None, []),
    ],
    ids=["nothing", "body-only", "text-header", "text-header-missing", "image-header-missing"],
)
def test_components_built_from_the_body_and_header(
    header_type: str, params: list[str], header: str | None, expected: list[dict[str, Any]]
) -> None:
    assert template_components(_template(header_type=header_type), params, header) == expected


def test_components_override_is_filled_without_being_changed() -> None:
    components = [
        {"type": "header", "parameters": [{"type": "image", "image": {"link": "{{header}}"}}]},
        {
            "type": "body",
            "parameters": [
                {"type": "text", "text": "{{1}} and {{ 2 }}"},
                {"type": "text", "text": "{{3}}"},
                {"type": "currency", "currency": {"amount_1000": 1500, "code": "UAH"}},
            ],
        },
    ]
    template = _template(components=copy.deepcopy(components))

    filled = template_components(template, ["{{2}}", "{{header}}"], "https://x.example/i.png")

    assert filled == [
        {
            "type": "header",
            "parameters": [{"type": "image", "image": {"link": "https://x.example/i.png"}}],
        },
        {
            "type": "body",
            "parameters": [
                # a value is inserted as it is: placeholders inside it are not filled again
                {"type": "text", "text": "{{2}} and {{header}}"},
                {"type": "text", "text": "{{3}}"},  # no third value: left as it is
                {"type": "currency", "currency": {"amount_1000": 1500, "code": "UAH"}},
            ],
        },
    ]
    assert template.components == components


def test_header_placeholder_without_a_header_is_left_alone() -> None:
    template = _template(components=[{"type": "header", "parameters": [{"text": "{{header}}"}]}])

    assert template_components(template, [], None) == [
        {"type": "header", "parameters": [{"text": "{{header}}"}]}
    ]


def test_template_object_uses_the_templates_language() -> None:
    template = _template(language_code="uk", language_policy="fallback", body="Hi")

    assert template_object(template, "380631234567", [], None) == {
        "to": "380631234567",
        "type": "template",
        "template": {
            "namespace": "ns_1234",
            "language": {"policy": "fallback", "code": "uk"},
            "name": "order_ready",
            "components": [],
        },
    }


def test_a_template_message_needs_its_template() -> None:
    message = Message(
        message_type=Message.MessageType.TEMPLATE,
        source_addr="TestCo",
        destination_addr="380631234567",
    )

    with pytest.raises(ValueError, match="needs its template"):
        message_payload(message)


def test_an_unknown_message_type_gets_only_the_common_keys() -> None:
    message = Message(message_type=3, source_addr="TestCo", destination_addr="1", text="x")

    assert message_payload(message, callback_url=CALLBACK) == {
        "source_addr": "TestCo",
        "destination_addr": 1,
        "message_type": 3,
        "callback_url": CALLBACK,
    }
