"""Validation before anything is sent: one error per field, no request, no row."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from django_whatsapp import services
from django_whatsapp.models import Message, Template
from django_whatsapp.validation import (
    clean_image_url,
    clean_recipient,
    clean_sender,
    clean_template,
    clean_template_params,
    clean_text,
    validate_message,
)
from tests.conftest import FakeGateway

IMAGE = "https://cdn.example.com/img/photo.jpg"


def errors_of(caught: pytest.ExceptionInfo[ValidationError]) -> dict[str, list[str]]:
    return caught.value.message_dict


def assert_nothing_sent(gateway: FakeGateway) -> None:
    assert gateway.requests == []
    assert Message.objects.count() == 0


# -- the field rules --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "digits"),
    [
        ("380501234567", "380501234567"),
        ("+380501234567", "380501234567"),
        ("+380 50 123-45-67", "380501234567"),
        ("+38 (050) 123.45.67", "380501234567"),
        (" 380501234567 ", "380501234567"),
        (380501234567, "380501234567"),
        ("00380501234567", "380501234567"),
        ("+49 " + "1" * 15, "49" + "1" * 15),  # 17 digits: possible in Germany
    ],
)
def test_clean_recipient_accepts(value: Any, digits: str) -> None:
    assert clean_recipient(value) == digits


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("", "required"),
        (None, "required"),
        ("+", "required"),
        (" - ", "required"),
        ("1" * 21, "max_length"),
        ("+" + "3" * 21, "max_length"),
        ("38050abc4567", "invalid"),
        ("380+501234567", "invalid"),
        ("++380501234567", "invalid"),
        ("\u0663\u0668\u0660", "invalid"),  # Arabic-Indic digits
        ("380_501234567", "invalid"),
        ("1" * 20, "impossible"),  # 20 digits, but no country has such numbers
        ("0501234567", "impossible"),  # national: only with DEFAULT_REGION
        ("50", "impossible"),
    ],
)
def test_clean_recipient_refuses(value: Any, code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        clean_recipient(value)
    assert caught.value.code == code


def test_clean_recipient_says_how_many_digits() -> None:
    with pytest.raises(ValidationError) as caught:
        clean_recipient("9" * 25)
    assert caught.value.messages == ["The recipient has 25 digits; at most 20 are allowed."]


@pytest.mark.parametrize(("value", "clean"), [("Acme", "Acme"), (" Acme Ltd ", "Acme Ltd")])
def test_clean_sender_accepts(value: str, clean: str) -> None:
    assert clean_sender(value) == clean
    assert clean_sender("S" * 20) == "S" * 20


@pytest.mark.parametrize(
    ("value", "code"),
    [("", "required"), (None, "required"), ("  ", "required"), ("S" * 21, "max_length")],
)
def test_clean_sender_refuses(value: Any, code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        clean_sender(value)
    assert caught.value.code == code


def test_clean_text_bounds() -> None:
    assert clean_text("x") == "x"
    assert clean_text("я" * 4096) == "я" * 4096
    for value, code in [
        ("", "required"),
        (None, "required"),
        (" \n", "required"),
        ("x" * 4097, "max_length"),
    ]:
        with pytest.raises(ValidationError) as caught:
            clean_text(value)
        assert caught.value.code == code
    assert clean_text("", required=False) == ""
    assert clean_text("   ", required=False) == ""
    with pytest.raises(ValidationError):
        clean_text("x" * 4097, required=False)


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.example.com/a.jpg",
        "http://cdn.example.com/a.jpeg",
        "https://cdn.example.com/a.png",
        "https://cdn.example.com/A.JPG",
        "https://cdn.example.com/a.JpEg",
        "https://cdn.example.com/a.PNG",
        "https://cdn.example.com/a.png?size=large&v=2",
        "https://cdn.example.com/a.png#top",
        "https://cdn.example.com:8443/deep/path/a.jpg",
        "http://127.0.0.1/a.png",
    ],
)
def test_clean_image_url_accepts(url: str) -> None:
    assert clean_image_url(url) == url


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("", "required"),
        (None, "required"),
        ("ftp://cdn.example.com/a.jpg", "invalid"),
        ("file:///tmp/a.jpg", "invalid"),
        ("cdn.example.com/a.jpg", "invalid"),
        ("/a.jpg", "invalid"),
        ("https://", "invalid"),
        ("https://cdn.example.com/a", "invalid_extension"),
        ("https://cdn.example.com/", "invalid_extension"),
        ("https://cdn.example.com/a.gif", "invalid_extension"),
        ("https://cdn.example.com/a.webp", "invalid_extension"),
        ("https://cdn.example.com/a.jpg.exe", "invalid_extension"),
        ("https://cdn.example.com/a?f=photo.png", "invalid_extension"),
        ("https://cdn.example.com/apng", "invalid_extension"),
    ],
)
def test_clean_image_url_refuses(url: Any, code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        clean_image_url(url)
    assert caught.value.code == code


@pytest.mark.django_db
def test_clean_template_by_name_and_object(template: Template) -> None:
    assert clean_template("order_ready") == template
    assert clean_template(template) is template


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("value", "code"), [(None, "required"), ("", "required"), ("nope", "invalid")]
)
def test_clean_template_refuses(value: Any, code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        clean_template(value)
    assert caught.value.code == code


@pytest.mark.django_db
def test_clean_template_refuses_an_inactive_one(template: Template) -> None:
    template.is_active = False
    template.save()
    for value in (template, "order_ready"):
        with pytest.raises(ValidationError) as caught:
            clean_template(value)
        assert caught.value.code == "inactive"
        assert "order_ready" in caught.value.messages[0]


@pytest.mark.django_db
def test_clean_template_refuses_an_ambiguous_name_and_an_unsaved_template(
    template: Template,
) -> None:
    Template.objects.create(name="order_ready", namespace="ns", language_code="uk", body="x")
    with pytest.raises(ValidationError) as caught:
        clean_template("order_ready")
    assert caught.value.code == "ambiguous"
    with pytest.raises(ValidationError) as caught:
        clean_template(Template(name="draft_only", body="x"))
    assert caught.value.code == "unsaved"


def make_template(header_type: str, body: str = "Hi {{1}} {{2}}") -> Template:
    return Template(name="t", namespace="ns", body=body, header_type=header_type)


@pytest.mark.parametrize(
    ("header_type", "header", "stored"),
    [
        ("none", None, {"body": ["a", "b"]}),
        ("none", "", {"body": ["a", "b"]}),
        ("text", " Big news ", {"body": ["a", "b"], "header": "Big news"}),
        ("image", IMAGE, {"body": ["a", "b"], "header": IMAGE}),
    ],
)
def test_clean_template_params_accepts(
    header_type: str, header: Any, stored: dict[str, Any]
) -> None:
    assert clean_template_params(make_template(header_type), ["a", "b"], header) == stored


@pytest.mark.parametrize(
    ("header_type", "params", "header", "keys"),
    [
        ("none", ["a"], None, {"template_params"}),
        ("none", ["a", "b", "c"], None, {"template_params"}),
        ("none", ["a", " "], None, {"template_params"}),
        ("none", ["a", "b"], "surprise", {"header"}),
        ("text", ["a", "b"], None, {"header"}),
        ("text", ["a", "b"], "  ", {"header"}),
        ("image", ["a", "b"], None, {"header"}),
        ("image", ["a", "b"], "https://x.example.com/a.gif", {"header"}),
        ("image", ["a", "b"], "not a url", {"header"}),
        ("image", [], "ftp://x.example.com/a.png", {"template_params", "header"}),
    ],
)
def test_clean_template_params_refuses(
    header_type: str, params: list[str], header: Any, keys: set[str]
) -> None:
    with pytest.raises(ValidationError) as caught:
        clean_template_params(make_template(header_type), params, header)
    assert set(errors_of(caught)) == keys


def test_clean_template_params_counts_in_its_message() -> None:
    with pytest.raises(ValidationError) as caught:
        clean_template_params(make_template("none", body="Hi {{1}}"), [], None)
    assert errors_of(caught) == {
        "template_params": ["The template t takes 1 parameter; 0 were given."]
    }
    with pytest.raises(ValidationError) as caught:
        clean_template_params(make_template("none"), ["a"], None)
    assert errors_of(caught) == {
        "template_params": ["The template t takes 2 parameters; 1 were given."]
    }


def test_validate_message_normalises_only_a_valid_message() -> None:
    message = Message(destination_addr="+380 50 123-45-67", source_addr=" Acme ", text="hi")
    validate_message(message)
    assert (message.destination_addr, message.source_addr, message.text) == (
        "380501234567",
        "Acme",
        "hi",
    )
    bad = Message(destination_addr="+380 50 123-45-67", source_addr="", text="hi")
    with pytest.raises(ValidationError):
        validate_message(bad)
    assert bad.destination_addr == "+380 50 123-45-67"


def test_validate_message_drops_a_blank_caption() -> None:
    message = Message(
        message_type=2,
        destination_addr="380501234567",
        source_addr="Acme",
        file_url=IMAGE,
        text="  ",
    )
    validate_message(message)
    assert message.text == ""


def test_validate_message_refuses_an_unknown_type() -> None:
    message = Message(message_type=3, destination_addr="380501234567", source_addr="Acme", text="x")
    with pytest.raises(ValidationError) as caught:
        validate_message(message)
    assert set(errors_of(caught)) == {"message_type"}


# -- the services validate before anything is sent --------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("to", "text", "source_addr", "keys"),
    [
        ("1" * 21, "hi", None, {"destination_addr"}),
        ("abc", "hi", None, {"destination_addr"}),
        ("", "hi", None, {"destination_addr"}),
        ("380501234567", "", None, {"text"}),
        ("380501234567", "   ", None, {"text"}),
        ("380501234567", "x" * 4097, None, {"text"}),
        ("380501234567", "hi", "S" * 21, {"source_addr"}),
        ("x", "", "S" * 21, {"destination_addr", "text", "source_addr"}),
    ],
)
def test_send_text_refuses_before_sending(
    gateway: FakeGateway, to: str, text: str, source_addr: str | None, keys: set[str]
) -> None:
    gateway.accept()
    with pytest.raises(ValidationError) as caught:
        services.send_text(to, text, source_addr=source_addr)
    assert set(errors_of(caught)) == keys
    assert_nothing_sent(gateway)


@pytest.mark.django_db
def test_send_text_needs_a_sender_when_there_is_no_default(
    gateway: FakeGateway, settings: Any
) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "DEFAULT_SOURCE_ADDR": None}
    with pytest.raises(ValidationError) as caught:
        services.send_text("380501234567", "hi")
    assert errors_of(caught) == {
        "source_addr": ["Enter a sender, or set DEFAULT_SOURCE_ADDR in DJANGO_WHATSAPP."]
    }
    assert_nothing_sent(gateway)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("to", "text", "source_addr", "body_to", "body_from"),
    [
        ("+380 50 123-45-67", "x" * 4096, None, 380501234567, "TestCo"),
        ("+49" + "1" * 15, "hi", "S" * 20, int("49" + "1" * 15), "S" * 20),
    ],
)
def test_send_text_accepts_the_limits(
    gateway: FakeGateway, to: str, text: str, source_addr: str | None, body_to: int, body_from: str
) -> None:
    gateway.accept()
    message = services.send_text(to, text, source_addr=source_addr)
    assert message.status == "accepted"
    [body] = gateway.sent_bodies()
    assert (body["destination_addr"], body["source_addr"], body["text"]) == (
        body_to,
        body_from,
        text,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "caption", "keys"),
    [
        ("ftp://cdn.example.com/a.jpg", "", {"file_url"}),
        ("https://cdn.example.com/a", "", {"file_url"}),
        ("https://cdn.example.com/a.gif", "", {"file_url"}),
        ("", "", {"file_url"}),
        ("https://cdn.example.com/a.gif", "x" * 4097, {"file_url", "text"}),
    ],
)
def test_send_media_refuses_before_sending(
    gateway: FakeGateway, url: str, caption: str, keys: set[str]
) -> None:
    gateway.accept()
    with pytest.raises(ValidationError) as caught:
        services.send_media("380501234567", url, caption)
    assert set(errors_of(caught)) == keys
    assert_nothing_sent(gateway)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.example.com/a.JPG",
        "http://cdn.example.com/a.jpeg",
        "https://cdn.example.com/a.png?v=2",
    ],
)
def test_send_media_accepts_image_urls(gateway: FakeGateway, url: str) -> None:
    gateway.accept()
    message = services.send_media("380501234567", url, "  ")
    assert message.status == "accepted"
    [body] = gateway.sent_bodies()
    assert body["file_url"] == url
    assert body["message_type"] == 2
    assert "text" not in body


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "header", "keys"),
    [
        (["Ann"], IMAGE, {"template_params"}),
        (["Ann", "42", "x"], IMAGE, {"template_params"}),
        (["Ann", "42"], None, {"header"}),
        (["Ann", "42"], "https://cdn.example.com/a.gif", {"header"}),
        ([], "ftp://cdn.example.com/a.png", {"template_params", "header"}),
    ],
)
def test_send_template_refuses_before_sending(
    gateway: FakeGateway, template: Template, params: list[str], header: str | None, keys: set[str]
) -> None:
    gateway.accept()
    for ref in (template, "order_ready"):
        with pytest.raises(ValidationError) as caught:
            services.send_template("380501234567", ref, params, header)
        assert set(errors_of(caught)) == keys
    assert_nothing_sent(gateway)


@pytest.mark.django_db
def test_send_template_refuses_a_header_the_template_has_not(gateway: FakeGateway) -> None:
    Template.objects.create(name="plain", namespace="ns", body="Hi {{1}}")
    with pytest.raises(ValidationError) as caught:
        services.send_template("380501234567", "plain", ["Ann"], "https://cdn.example.com/a.png")
    assert set(errors_of(caught)) == {"header"}
    assert_nothing_sent(gateway)


@pytest.mark.django_db
def test_send_template_refuses_an_unknown_or_inactive_template(
    gateway: FakeGateway, template: Template
) -> None:
    with pytest.raises(ValidationError) as caught:
        services.send_template("380501234567", "nope", ["a", "b"], IMAGE)
    assert errors_of(caught) == {"template": ["There is no template named nope."]}
    template.is_active = False
    template.save()
    for ref in (template, "order_ready"):
        with pytest.raises(ValidationError) as caught:
            services.send_template("380501234567", ref, ["a", "b"], IMAGE)
        assert errors_of(caught) == {"template": ["The template order_ready is not active."]}
    assert_nothing_sent(gateway)


@pytest.mark.django_db
def test_a_bad_template_is_reported_with_the_other_fields(gateway: FakeGateway) -> None:
    with pytest.raises(ValidationError) as caught:
        services.send_template("not a number", "nope", source_addr="S" * 21)
    assert set(errors_of(caught)) == {"template", "destination_addr", "source_addr"}
    assert errors_of(caught)["template"] == ["There is no template named nope."]
    assert_nothing_sent(gateway)


@pytest.mark.django_db
def test_send_template_accepts_by_name_and_object(gateway: FakeGateway, template: Template) -> None:
    gateway.accept()
    first = services.send_template("+380501234567", "order_ready", ["Ann", 42], IMAGE)
    second = services.send_template("+380501234567", template, ("Bob", "7"), IMAGE)
    assert (first.status, second.status) == ("accepted", "accepted")
    assert first.template_params == {"body": ["Ann", "42"], "header": IMAGE}
    assert [b["template_name"] for b in gateway.sent_bodies()] == ["order_ready", "order_ready"]


@pytest.mark.django_db
def test_send_message_refuses_an_invalid_saved_message(gateway: FakeGateway) -> None:
    message = Message.objects.create(destination_addr="abc", source_addr="Acme", text="hi")
    with pytest.raises(ValidationError) as caught:
        services.send_message(message)
    assert set(errors_of(caught)) == {"destination_addr"}
    assert gateway.requests == []
    message.refresh_from_db()
    assert message.status == "draft"
    assert message.events.count() == 0
