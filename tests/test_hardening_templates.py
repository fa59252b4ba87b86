"""Issue #10, item 2: template placeholders are numbered ``{{1}}`` to ``{{100}}``, consecutively
from 1; the model, ``full_clean`` and the admin form refuse any other body, and a body stored
before that rule costs every page that lists templates no more than its own length."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from django_whatsapp.admin.display import highlight_placeholders
from django_whatsapp.forms import placeholder_context, template_choices_data
from django_whatsapp.models import (
    MAX_PLACEHOLDERS,
    MAX_TEMPLATE_BODY,
    Template,
    placeholder_number,
    validate_template_body,
)
from django_whatsapp.payloads import template_components

pytestmark = pytest.mark.django_db

TEMPLATES_URL = reverse("admin:django_whatsapp_template_changelist")
TEMPLATE_ADD_URL = reverse("admin:django_whatsapp_template_add")
MESSAGE_ADD_URL = reverse("admin:django_whatsapp_message_add")
HUGE = "{{" + "9" * 4400 + "}}"


def refusal(body: str) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        validate_template_body(body)
    return caught.value


@pytest.mark.parametrize(
    ("body", "code", "says"),
    [
        ("Hello {{1000000}}", "placeholder_range", "{{1000000}} is not a placeholder"),
        ("Hello {{101}}", "placeholder_range", "numbered {{1}} to {{100}}"),
        ("Hello {{0}}", "placeholder_range", "{{0}} is not a placeholder"),
        (HUGE, "placeholder_range", "{{999999999999...}} is not a placeholder"),
        ("Hello {{1}}, order {{3}}", "placeholder_gap", "{{2}} is missing"),
        ("Hello {{2}}", "placeholder_gap", "{{1}} is missing"),
        ("x" * (MAX_TEMPLATE_BODY + 1), "too_long", "at most 1024 characters"),
    ],
)
def test_bodies_whatsapp_would_not_register_are_refused(body: str, code: str, says: str) -> None:
    error = refusal(body)
    assert error.code == code
    assert says in error.messages[0]
    assert "%(" not in error.messages[0]


@pytest.mark.parametrize(
    "body",
    [
        "No placeholders at all.",
        "Hello {{1}}, order {{2}} is ready, {{1}}.",
        "{{ 2 }} before {{1}}",
        "{{01}} with a leading zero",
        " ".join(f"{{{{{n}}}}}" for n in range(1, MAX_PLACEHOLDERS + 1)),
        "{{ not a placeholder }} {{x}} {1} {{1}}",
    ],
)
def test_bodies_with_small_consecutive_numbers_are_accepted(body: str) -> None:
    validate_template_body(body)


def test_full_clean_refuses_the_body(template: Template) -> None:
    template.body = "Hello {{1000000}}"
    with pytest.raises(ValidationError) as caught:
        template.full_clean()
    assert list(caught.value.message_dict) == ["body"]


def test_the_admin_form_refuses_the_body_and_saves_nothing(admin_client: Client) -> None:
    data: dict[str, Any] = {
        "name": "welcome",
        "namespace": "ns",
        "language_code": "en_US",
        "language_policy": "deterministic",
        "header_type": "none",
        "body": "Hello {{1000000}}",
        "components": "",
        "is_active": "on",
    }
    response = admin_client.post(TEMPLATE_ADD_URL, data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["body"] == [
        "{{1000000}} is not a placeholder WhatsApp accepts: placeholders are numbered {{1}} to "
        "{{100}}."
    ]
    assert not Template.objects.exists()
    assert admin_client.post(TEMPLATE_ADD_URL, {**data, "body": "Hi {{1}}"}).status_code == 302
    assert Template.objects.get().body == "Hi {{1}}"


def test_a_placeholder_number_is_never_converted_from_a_long_digit_string() -> None:
    assert placeholder_number("9" * 100_000) is None
    assert placeholder_number("0" * 5000 + "7") == 7
    assert placeholder_number("100") == MAX_PLACEHOLDERS
    assert placeholder_number("101") is None
    assert placeholder_number("0") is None


@pytest.mark.parametrize("body", ["Hello {{1000000}}", HUGE, "Hi {{1}} " + HUGE])
def test_a_body_stored_before_the_rule_costs_every_page_its_length_only(
    admin_client: Client, body: str
) -> None:
    """Stored without ``full_clean`` (as an older version allowed): out-of-range numbers are
    left as text, so compose, the template list and the edit page answer 200 at their usual
    size."""
    template = Template.objects.create(name="old", namespace="ns", body=body)
    expected = 1 if body.startswith("Hi {{1}}") else 0
    assert template.placeholder_count == expected
    assert template.render(["Ann"]) == body.replace("{{1}}", "Ann", 1)
    assert highlight_placeholders(body).count("<mark") == body.count("{{")
    data = template_choices_data([template])[str(template.pk)]
    assert len(data["params"]) == expected
    assert placeholder_context(body, 1) == ("Hi {{1}}" if expected else "")
    assert template_components(template, ["Ann"] * expected, None) == (
        [{"type": "body", "parameters": [{"type": "text", "text": "Ann"}]}] if expected else []
    )
    for url in (
        TEMPLATES_URL,
        f"{MESSAGE_ADD_URL}?message_type=4&template={template.pk}",
        reverse("admin:django_whatsapp_template_change", args=[template.pk]),
    ):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        # The body appears a few times at most; no input is made per number.
        assert len(response.content) < 200_000 + 6 * len(body), url
        assert b"param_2" not in response.content
