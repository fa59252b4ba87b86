"""The admin's "Send to many" page: one message per recipient through bulk.send_bulk."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from django_whatsapp.models import Message, Template

from .conftest import FakeGateway

URL = "/admin/django_whatsapp/message/send-to-many/"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def operator(client: Client) -> Client:
    user = User.objects.create_superuser("operator", "op@example.com", "pw")
    client.force_login(user)
    return client


def post(client: Client, **data: Any) -> Any:
    return client.post(URL, {"message_type": 1, **data}, follow=True)


def test_the_page_is_linked_from_the_list_and_shows_the_form(operator: Client) -> None:
    listing = operator.get(reverse("admin:django_whatsapp_message_changelist"))
    assert URL.encode() in listing.content
    page = operator.get(URL)
    assert page.status_code == 200
    assert b'name="recipients"' in page.content
    assert b'name="template"' in page.content


def test_text_to_many_sends_one_message_each_and_reports_counts(
    operator: Client, gateway: FakeGateway
) -> None:
    gateway.accept()
    response = post(
        operator,
        recipients="+380 63 111 2233\n380631112244, 380631112255\nnot-a-number\n380631112233",
        text="Sale starts today",
    )
    assert response.redirect_chain[-1][0] == reverse("admin:django_whatsapp_message_changelist")
    bodies = gateway.sent_bodies()
    assert sorted(b["destination_addr"] for b in bodies) == [
        380631112233,
        380631112244,
        380631112255,
    ]
    assert {b["text"] for b in bodies} == {"Sale starts today"}
    assert Message.objects.filter(status="accepted").count() == 3
    assert set(Message.objects.values_list("created_by__username", flat=True)) == {"operator"}
    shown = [str(m) for m in response.context["messages"]]
    assert any("3 messages created (Accepted: 3)." in m for m in shown)
    assert any("1 number is not valid and was not sent: not-a-number" in m for m in shown)
    assert any("1 number was listed more than once and sent once" in m for m in shown)
    assert any("not-a-number" in m for m in shown)
    assert any("380631112233" in m for m in shown)  # the repeated one


def test_a_template_to_many_carries_its_parameters(
    operator: Client, gateway: FakeGateway, template: Template
) -> None:
    gateway.accept()
    post(
        operator,
        recipients="380631112233\n380631112244",
        message_type=4,
        template=template.pk,
        param_1="Ann",
        param_2="A-1",
        header="https://example.com/box.jpg",
    )
    bodies = gateway.sent_bodies()
    assert len(bodies) == 2
    assert all(b["template_name"] == "order_ready" for b in bodies)
    assert all('"text": "Ann"' in b["template_params"] for b in bodies)


def test_content_errors_show_on_their_fields_and_nothing_is_sent(
    operator: Client, gateway: FakeGateway, template: Template
) -> None:
    response = post(operator, recipients="380631112233", message_type=2, file_url="http://x/a.gif")
    assert response.status_code == 200
    assert "file_url" in response.context["form"].errors
    response = post(
        operator, recipients="380631112233", message_type=4, template=template.pk, param_1="one"
    )
    assert sorted(response.context["form"].errors) == ["header", "param_2"]
    response = post(operator, recipients=" \n ,", text="hi")
    assert "recipients" in response.context["form"].errors
    assert gateway.requests == []
    assert Message.objects.count() == 0


def test_staff_without_the_send_permission_cannot_open_or_post(
    client: Client, gateway: FakeGateway
) -> None:
    user = User.objects.create_user("viewer", "v@example.com", "pw", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="view_message"),
        Permission.objects.get(codename="add_message"),
    )
    client.force_login(user)
    assert client.get(URL).status_code == 403
    assert (
        client.post(URL, {"recipients": "380631112233", "message_type": 1, "text": "x"}).status_code
        == 403
    )
    listing = client.get(reverse("admin:django_whatsapp_message_changelist"))
    assert URL.encode() not in listing.content
    assert gateway.requests == []
    assert Message.objects.count() == 0


# -- laid out like compose ---------------------------------------------------------------------


def test_the_page_is_compose_with_a_list_of_recipients(
    operator: Client, settings: Any, template: Template
) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "DEFAULT_SOURCE_ADDR": "DemoShop"}

    page = operator.get(URL)

    html = page.content.decode()
    form = page.context["form"]
    # The account's sender, as the placeholder of the sender left empty.
    assert form["source_addr"].value() is None
    assert 'placeholder="DemoShop"' in html
    for section in ('data-wa-type="1"', 'data-wa-type="2"', 'data-wa-type="4"'):
        assert section in html
    assert 'id="wa-preview"' in html
    assert "django_whatsapp/compose.js" in html
    assert 'id="wa-templates"' in html  # each template's placeholders, for the script
    assert 'name="recipients"' in html
    assert 'name="destination_addr"' not in html


def test_a_chosen_template_gets_one_input_per_placeholder_without_javascript(
    operator: Client, gateway: FakeGateway, template: Template
) -> None:
    page = operator.post(
        URL,
        {"recipients": "380631112233", "message_type": 4, "template": template.pk, "_refresh": "1"},
    )

    assert page.status_code == 200
    assert page.context["form"].param_names == ["param_1", "param_2"]
    assert 'name="param_2"' in page.content.decode()
    assert gateway.requests == []
    assert Message.objects.count() == 0


def test_an_image_to_many_takes_its_caption(operator: Client, gateway: FakeGateway) -> None:
    gateway.accept()
    post(
        operator,
        recipients="380631112233",
        message_type=2,
        file_url="https://example.com/a.png",
        caption="New in stock",
    )

    (body,) = gateway.sent_bodies()
    assert body["file_url"] == "https://example.com/a.png"
    assert body["text"] == "New in stock"


@pytest.mark.parametrize(
    ("language", "created", "accepted"),
    [
        ("en", "2 messages created", "Accepted: 2"),
        ("ru", "Создано 2 сообщения", "Принято: 2"),
        ("uk", "Створено 2 повідомлення", "Прийнято: 2"),
    ],
)
def test_the_report_speaks_the_users_language_with_its_plurals(
    operator: Client,
    gateway: FakeGateway,
    settings: Any,
    language: str,
    created: str,
    accepted: str,
) -> None:
    settings.LANGUAGE_CODE = language
    gateway.accept()

    response = post(operator, recipients="380631112233, 380631112244", text="Hi")

    shown = " | ".join(str(m) for m in response.context["messages"])
    assert created in shown
    assert accepted in shown
    assert "accepted" not in shown
