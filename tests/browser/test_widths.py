"""The console fits a 1280 px wide screen: no page of the app scrolls sideways, in English or in
the longer Russian and Ukrainian labels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from django_whatsapp import services
from django_whatsapp.models import Campaign, Message, Template

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

Status = Message.Status
PAGES = {
    "message list": "/admin/django_whatsapp/message/",
    "compose": "/admin/django_whatsapp/message/add/",
    "send to many": "/admin/django_whatsapp/message/send-to-many/",
    "conversations": "/admin/django_whatsapp/conversation/",
    "campaigns": "/admin/django_whatsapp/campaign/",
    "new campaign": "/admin/django_whatsapp/campaign/add/",
}


def fill_the_list() -> tuple[Message, str]:
    """Messages of every kind, with long texts and a long template, as an operator's list has."""
    template = Template.objects.create(
        name="a_rather_long_template_name_for_order_notifications",
        language_code="uk",
        body="Hello {{1}}, your order {{2}} is ready for pickup at {{3}} until {{4}}.",
        is_active=True,
    )
    long_text = "Your parcel is on its way, track it at https://example.com/" + "x" * 120
    for index, status in enumerate(Status.values):
        Message.objects.create(
            destination_addr=f"3806712345{index:02d}",
            source_addr="AVeryLongSenderName1",
            text=long_text,
            status=status,
            provider_message_id=10_000_000_000 + index,
            error_name="Invalid Parameter: destination_addr" if status == "not_sent" else "",
        )
    template_message = Message.objects.create(
        destination_addr="380671234599",
        message_type=Message.MessageType.TEMPLATE,
        template=template,
        text="",
        status=Status.NOT_SENT,
        error_code=7,
        error_name="Service Unavailable",
        error_message="more than 24 hours have passed since the customer last replied",
        template_params={"body": ["Anna-Maria", "A-1042-XYZ", "the shop on the corner", "9 pm"]},
    )
    Message.objects.create(
        destination_addr="380671234599",
        direction=Message.Direction.INBOUND,
        text="Thanks! " * 30,
        status=Status.DELIVERED,
    )
    services.create_campaign(
        "Spring sale for the customers of the shop on the corner, second wave",
        [f"+3806700000{n:02d}" for n in range(30)],
        text=long_text,
    )
    return template_message, "380671234599"


def assert_no_sideways_scroll(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("#content")).to_be_visible()
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"{url}: {widths[0]} px wide in a {widths[1]} px window"
    # Nor does any box inside it (the admin puts the list's table in a box that scrolls).
    overflowing = page.evaluate(
        """() => [...document.querySelectorAll("#content *")]
            .filter((node) => node.scrollWidth > node.clientWidth + 1
                && ["auto", "scroll"].includes(getComputedStyle(node).overflowX))
            .map((node) => `${node.className}: ${node.scrollWidth} > ${node.clientWidth}`)"""
    )
    assert overflowing == [], f"{url}: {overflowing}"


@pytest.mark.parametrize("locale", ["en-US", "ru-RU", "uk-UA"])
def test_no_page_scrolls_sideways_at_1280_px(
    open_console: Callable[..., Page], site: Any, settings: Any, locale: str
) -> None:
    settings.LANGUAGE_CODE = locale.split("-")[0]
    message, number = fill_the_list()
    page = open_console(locale=locale)
    page.set_viewport_size({"width": 1280, "height": 800})
    urls = [
        *PAGES.values(),
        f"/admin/django_whatsapp/message/{message.pk}/change/",
        f"/admin/django_whatsapp/conversation/{number}/",
        f"/admin/django_whatsapp/campaign/{Campaign.objects.get().pk}/change/",
    ]

    for url in urls:
        assert_no_sideways_scroll(page, f"{site.url}{url}")
