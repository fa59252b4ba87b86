""" "Send to many" in a real browser: the same type switching, per-placeholder inputs and preview
as compose, the sender prefilled, and a template sent to several recipients."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from django_whatsapp.models import Message, Template

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BULK = "/admin/django_whatsapp/message/send-to-many/"


def test_send_a_template_to_many_as_on_compose(console: Page, site: Any, settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "DEFAULT_SOURCE_ADDR": "DemoShop"}
    template = Template.objects.create(
        name="order_ready",
        namespace="ns_1234",
        body="Hello {{1}}, your order {{2}} is ready.",
        header_type=Template.HeaderType.TEXT,
    )
    console.goto(f"{site.url}{BULK}")
    expect(console.locator("#wa-preview")).to_be_visible()
    # The sender left empty is the account's: the placeholder says which.
    expect(console.locator("#id_source_addr")).to_have_attribute("placeholder", "DemoShop")

    # Text: only the text section; the preview follows the typing.
    console.check("input[name=message_type][value='1']")
    expect(console.locator("fieldset[data-wa-type='2']")).to_be_hidden()
    expect(console.locator("fieldset[data-wa-type='4']")).to_be_hidden()
    console.fill("#id_text", "Sale starts today")
    expect(console.locator("#wa-bubble .wa-bubble-text")).to_have_text("Sale starts today")

    # Image: its own section.
    console.check("input[name=message_type][value='2']")
    expect(console.locator("fieldset[data-wa-type='1']")).to_be_hidden()
    expect(console.locator("#id_file_url")).to_be_visible()

    # Template: one input per placeholder, filled into the preview.
    console.check("input[name=message_type][value='4']")
    expect(console.locator("#wa-bubble")).to_contain_text("Choose a template")
    console.select_option("#id_template", str(template.pk))
    expect(console.locator("#wa-template-body mark")).to_have_count(2)
    console.fill("#id_recipients", "380631112233\n380631112244")
    console.get_by_label("Header text").fill("Order update")
    console.get_by_label("Placeholder {{1}}").fill("Olena")
    console.get_by_label("Placeholder {{2}}").fill("A-1042")
    expect(console.locator("#wa-bubble .wa-bubble-text")).to_have_text(
        "Hello Olena, your order A-1042 is ready."
    )

    console.click("input[name=_send]")

    console.wait_for_url(f"{site.url}/admin/django_whatsapp/message/")
    expect(console.locator(".messagelist")).to_contain_text("2 messages created (Accepted: 2).")
    sent = Message.objects.order_by("destination_addr")
    assert [m.destination_addr for m in sent] == ["380631112233", "380631112244"]
    assert {m.source_addr for m in sent} == {"DemoShop"}
    assert all(
        m.template_params == {"body": ["Olena", "A-1042"], "header": "Order update"} for m in sent
    )
