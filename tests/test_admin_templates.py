"""Templates and status events in the admin; the console in Russian and Ukrainian."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from django_whatsapp.models import Message, StatusEvent, Template

pytestmark = pytest.mark.django_db

TEMPLATES_URL = reverse("admin:django_whatsapp_template_changelist")
TEMPLATE_ADD_URL = reverse("admin:django_whatsapp_template_add")
MESSAGE_ADD_URL = reverse("admin:django_whatsapp_message_add")


def template_data(**fields: Any) -> dict[str, Any]:
    data = {
        "name": "welcome",
        "namespace": "ns",
        "language_code": "en_US",
        "language_policy": "deterministic",
        "header_type": "none",
        "body": "Hi {{1}}!",
        "components": "",
        "is_active": "on",
    }
    data.update(fields)
    return data


def test_the_template_list_offers_a_test_send_that_opens_compose_with_it(
    admin_client: Client, template: Template
) -> None:
    html = admin_client.get(TEMPLATES_URL).content.decode()
    link = f"{MESSAGE_ADD_URL}?message_type=4&amp;template={template.pk}"
    assert link in html
    compose = admin_client.get(f"{MESSAGE_ADD_URL}?message_type=4&template={template.pk}")
    assert compose.context["adminform"].form.chosen_template == template


def test_active_can_be_toggled_from_the_list_and_by_action(
    admin_client: Client, template: Template
) -> None:
    response = admin_client.post(
        TEMPLATES_URL,
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-0-id": template.pk,
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    template.refresh_from_db()
    assert template.is_active is False
    admin_client.post(
        TEMPLATES_URL, {"action": "activate", "index": 0, "_selected_action": [template.pk]}
    )
    template.refresh_from_db()
    assert template.is_active is True


def test_the_edit_page_highlights_placeholders(admin_client: Client, template: Template) -> None:
    url = reverse("admin:django_whatsapp_template_change", args=[template.pk])
    html = admin_client.get(url).content.decode()
    assert 'Hello <mark class="wa-placeholder">{{1}}</mark>, your order' in html
    assert "django_whatsapp/template_admin.js" in html
    assert "Send a test" in html


@pytest.mark.parametrize(
    ("components", "expected"),
    [
        ('{"type": "body"}', "must be a JSON list of objects"),
        ('["body"]', "Item 1 of the components is not an object."),
        ('[{"type": "body"}, {"parameters": []}]', 'Item 2 of the components has no "type".'),
        ("[{", "Enter a valid JSON."),
    ],
)
def test_components_must_be_a_list_of_objects_with_a_type(
    admin_client: Client, components: str, expected: str
) -> None:
    response = admin_client.post(TEMPLATE_ADD_URL, template_data(components=components))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["components"]
    assert expected in errors[0]
    assert not Template.objects.exists()


def test_valid_components_are_saved(admin_client: Client) -> None:
    components = [{"type": "body", "parameters": [{"type": "text", "text": "{{1}}"}]}]
    response = admin_client.post(TEMPLATE_ADD_URL, template_data(components=json.dumps(components)))
    assert response.status_code == 302
    assert Template.objects.get().components == components


def test_status_events_are_read_only(admin_client: Client) -> None:
    message = Message.objects.create(destination_addr="1", source_addr="s", text="x")
    event = StatusEvent.objects.create(message=message, status="accepted", source="send")
    assert admin_client.get(reverse("admin:django_whatsapp_statusevent_add")).status_code == 403
    delete = reverse("admin:django_whatsapp_statusevent_delete", args=[event.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    change = reverse("admin:django_whatsapp_statusevent_change", args=[event.pk])
    html = admin_client.get(change).content.decode()
    assert 'name="status"' not in html
    assert (
        "wa-badge"
        in admin_client.get(
            reverse("admin:django_whatsapp_statusevent_changelist")
        ).content.decode()
    )
    assert StatusEvent.objects.count() == 1


@pytest.mark.parametrize(
    ("language", "page_phrases", "error"),
    [
        (
            "ru",
            ["Сохранить черновик", "Сохранить и отправить", "Шаблонное сообщение", "Получатель"],
            "URL изображения должен заканчиваться на .jpg, .jpeg или .png.",
        ),
        (
            "uk",
            ["Зберегти чернетку", "Зберегти й надіслати", "Шаблонне повідомлення", "Одержувач"],
            "URL зображення має закінчуватися на .jpg, .jpeg або .png.",  # noqa: RUF001
        ),
    ],
)
def test_the_console_speaks_russian_and_ukrainian(
    admin_client: Client, language: str, page_phrases: list[str], error: str
) -> None:
    with translation.override(language):
        page = admin_client.get(MESSAGE_ADD_URL, headers={"accept-language": language})
        invalid = admin_client.post(
            MESSAGE_ADD_URL,
            {
                "message_type": 2,
                "destination_addr": "380671234567",
                "file_url": "https://x.io/cat.gif",
                "_save": "1",
            },
            headers={"accept-language": language},
        )
    html = page.content.decode()
    for phrase in page_phrases:
        assert phrase in html
    assert error in invalid.content.decode()


@pytest.mark.parametrize(
    ("language", "one", "two"),
    [
        ("en", "1 template deactivated.", "2 templates activated."),
        ("ru", "Отключён 1 шаблон.", "Включено 2 шаблона."),
        ("uk", "Вимкнено 1 шаблон.", "Увімкнено 2 шаблони."),
    ],
)
def test_the_activate_actions_count_with_plurals(
    admin_client: Client, template: Template, settings: Any, language: str, one: str, two: str
) -> None:
    settings.LANGUAGE_CODE = language
    other = Template.objects.create(name="other", namespace="ns", body="Hi", is_active=False)

    def act(action: str, *templates: Template) -> str:
        response = admin_client.post(
            TEMPLATES_URL,
            {"action": action, "index": 0, "_selected_action": [t.pk for t in templates]},
            follow=True,
        )
        return " | ".join(str(m) for m in response.context["messages"])

    assert act("deactivate", template) == one
    assert act("activate", template, other) == two
