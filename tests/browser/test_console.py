"""The operator's console in a real browser: compose and send each type, watch the sandbox's
callbacks take the message to seen, see a field error, use an action on the list."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from django_whatsapp.models import Message, Template
from django_whatsapp.sandbox.gateway import gateway as sandbox

from .conftest import wait_for_status

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ADD = "/admin/django_whatsapp/message/add/"
LIST = "/admin/django_whatsapp/message/"


def open_compose(console: Page, site: Any, query: str = "") -> None:
    console.goto(f"{site.url}{ADD}{query}")
    expect(console.locator("#wa-preview")).to_be_visible()


def send_and_follow(console: Page) -> Message:
    console.click("input[name=_send]")
    console.wait_for_url(re.compile(r"/admin/django_whatsapp/message/\d+/change/$"))
    expect(console.locator(".messagelist")).to_contain_text("The gateway accepted the message")
    wait_for_status(console, "seen")
    timeline = console.locator(".wa-timeline .wa-event")
    expect(timeline.first).to_contain_text("Seen")  # newest first
    expect(timeline.last).to_contain_text("Accepted")
    return Message.objects.get(pk=int(console.url.rstrip("/").split("/")[-2]))


def test_compose_and_send_a_text_until_it_is_seen(console: Page, site: Any) -> None:
    open_compose(console, site)
    console.check("input[name=message_type][value='1']")
    expect(console.locator("fieldset[data-wa-type='2']")).to_be_hidden()
    expect(console.locator("fieldset[data-wa-type='4']")).to_be_hidden()
    console.fill("#id_destination_addr", "+380 67 123 45 67")
    console.fill("#id_text", "Your order is ready for pickup.")
    expect(console.locator("#wa-bubble .wa-bubble-text")).to_have_text(
        "Your order is ready for pickup."
    )
    message = send_and_follow(console)
    assert message.destination_addr == "380671234567"
    assert message.text == "Your order is ready for pickup."
    assert [m.payload["text"] for m in sandbox.messages()] == ["Your order is ready for pickup."]
    expect(console.locator("#wa-compose")).to_have_count(0)  # a sent message is read-only


def test_compose_and_send_an_image_until_it_is_seen(console: Page, site: Any) -> None:
    open_compose(console, site)
    console.check("input[name=message_type][value='2']")
    expect(console.locator("#id_text")).to_be_hidden()
    console.fill("#id_destination_addr", "380501112233")
    console.fill("#id_file_url", "https://cdn.example.com/catalogue/spring.jpg")
    console.fill("#id_caption", "Our spring catalogue")
    expect(console.locator("#wa-bubble .wa-media")).to_be_visible()
    expect(console.locator("#wa-bubble .wa-bubble-text")).to_have_text("Our spring catalogue")
    message = send_and_follow(console)
    assert message.message_type == Message.MessageType.MEDIA
    assert message.text == "Our spring catalogue"


def test_compose_and_send_a_template_until_it_is_seen(console: Page, site: Any) -> None:
    template = Template.objects.create(
        name="order_ready",
        namespace="ns_1234",
        body="Hello {{1}}, your order {{2}} is ready.",
        header_type=Template.HeaderType.TEXT,
    )
    Template.objects.create(name="welcome", namespace="ns_1234", body="Welcome!")
    open_compose(console, site)
    console.check("input[name=message_type][value='4']")
    expect(console.locator("#wa-bubble")).to_contain_text("Choose a template")
    console.select_option("#id_template", str(template.pk))
    expect(console.locator("#wa-template-body mark")).to_have_count(2)
    expect(console.get_by_label("Placeholder {{1}}")).to_be_visible()
    expect(console.get_by_label("Header text")).to_be_visible()
    console.fill("#id_destination_addr", "380939876543")
    console.get_by_label("Header text").fill("Order update")
    console.get_by_label("Placeholder {{1}}").fill("Olena")
    expect(console.locator("#wa-bubble .wa-bubble-text")).to_have_text(
        "Hello Olena, your order {{2}} is ready."
    )
    console.get_by_label("Placeholder {{2}}").fill("A-1042")
    expect(console.locator("#wa-bubble .wa-bubble-header")).to_have_text("Order update")
    expect(console.locator("#wa-bubble .wa-bubble-text")).to_have_text(
        "Hello Olena, your order A-1042 is ready."
    )
    message = send_and_follow(console)
    assert message.template_params == {"body": ["Olena", "A-1042"], "header": "Order update"}
    expect(console.locator(".field-content .wa-bubble-text")).to_have_text(
        "Hello Olena, your order A-1042 is ready."
    )


def test_a_bad_image_url_is_shown_on_its_field_and_nothing_is_sent(
    console: Page, site: Any
) -> None:
    open_compose(console, site)
    console.check("input[name=message_type][value='2']")
    console.fill("#id_destination_addr", "380501112233")
    console.fill("#id_file_url", "https://cdn.example.com/animation.gif")
    console.click("input[name=_send]")
    error = console.locator(".field-file_url .errorlist")
    expect(error).to_have_text("The image URL must end in .jpg, .jpeg or .png.")
    expect(console.locator("#id_file_url")).to_have_value("https://cdn.example.com/animation.gif")
    expect(console.locator("fieldset[data-wa-type='1']")).to_be_hidden()  # still on the image
    assert not Message.objects.exists()
    assert sandbox.messages() == []


def test_without_javascript_the_template_form_still_works(
    open_console: Callable[..., Page], site: Any
) -> None:
    template = Template.objects.create(
        name="reminder", namespace="ns", body="See you at {{1}}.", header_type="none"
    )
    console = open_console(javascript=False)
    console.goto(f"{site.url}{ADD}")
    expect(console.locator("#wa-preview")).to_be_hidden()
    expect(console.locator("fieldset[data-wa-type='1']")).to_be_visible()  # every section shows
    console.check("input[name=message_type][value='4']")
    console.fill("#id_destination_addr", "380671234567")
    console.select_option("#id_template", str(template.pk))
    console.click("input[name=_refresh]")
    console.get_by_label("Placeholder {{1}}").fill("10:30")
    console.click("input[name=_send]")
    console.wait_for_url(re.compile(r"/change/$"))
    message = Message.objects.get()
    assert message.template_params["body"] == ["10:30"]
    assert message.status in {"accepted", "pending", "sent", "delivered", "seen"}


def test_an_action_on_the_list_sends_the_selected_drafts(console: Page, site: Any) -> None:
    drafts = [
        Message.objects.create(destination_addr=f"38067000000{i}", source_addr="Shop", text="Hi")
        for i in range(8, 10)
    ]
    refused = Message.objects.create(destination_addr="380670000002", source_addr="Shop", text="x")
    console.goto(f"{site.url}{LIST}")
    expect(console.locator("#wa-summary")).to_contain_text("3 messages")
    for message in [*drafts, refused]:
        console.check(f"input.action-select[value='{message.pk}']")
    console.select_option("select[name=action]", "send_drafts")
    console.click("button[name=index]")
    # Sending cannot be undone: the page asks first, with the numbers.
    expect(console.locator("#wa-confirm-going")).to_contain_text("3 drafts will be sent now")
    assert Message.objects.filter(status="draft").count() == 3
    console.click("input[type=submit][value='Yes, send them']")
    expect(console.locator(".messagelist")).to_contain_text(
        "2 drafts sent. 1 message not sent. 0 messages skipped: not drafts."
    )
    expect(console.locator("#wa-summary [data-status=not_sent] .wa-count")).to_have_text("1")
    refused.refresh_from_db()
    assert refused.status == Message.Status.NOT_SENT  # the sandbox's empty balance (...0002)
    console.goto(f"{site.url}/admin/django_whatsapp/message/{refused.pk}/change/")
    expect(console.locator(".wa-error-box")).to_contain_text("The account balance is empty")
    expect(console.locator("button[name=retry]")).to_be_visible()


def test_a_template_is_edited_with_its_placeholders_highlighted_and_sent_as_a_test(
    console: Page, site: Any
) -> None:
    console.goto(f"{site.url}/admin/django_whatsapp/template/add/")
    console.fill("#id_name", "appointment")
    console.fill("#id_namespace", "ns")
    console.fill("#id_body", "Hi {{1}}, see you on {{2}}.")
    expect(console.locator("#wa-highlighted-body mark")).to_have_text(["{{1}}", "{{2}}"])
    console.click("fieldset.collapse summary")
    console.fill("#id_components", '[{"parameters": []}]')
    console.click("input[name=_save]")
    expect(console.locator(".field-components .errorlist")).to_contain_text(
        'Item 1 of the components has no "type".'
    )
    console.fill("#id_components", "")
    console.click("input[name=_save]")
    expect(console.locator(".messagelist")).to_contain_text("was added successfully")
    console.click("a.wa-send-test")
    expect(console.locator("#id_template option:checked")).to_have_text("appointment (en_US)")
    expect(console.locator("input[name=message_type][value='4']")).to_be_checked()
    expect(console.get_by_label("Placeholder {{2}}")).to_be_visible()
