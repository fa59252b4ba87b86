"""The app's pages in the admin's own look, on whichever Django runs the tests (5.2 in the main
virtualenv; 6.1 in a second one, see docs/development.rst): their inputs as tall as the inputs of
Django's own forms (one line), their text boxes a few lines, their breadcrumbs the bar Django
draws on its own pages; and, at a phone's width, no page scrolls sideways."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from django_whatsapp import optout, services
from django_whatsapp.models import Contact, Message, Template

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NUMBER = "380671234567"
#: The app's forms, and Django's own form to compare them with.
FORMS = {
    "compose": "/admin/django_whatsapp/message/add/",
    "send to many": "/admin/django_whatsapp/message/send-to-many/",
    "new campaign": "/admin/django_whatsapp/campaign/add/",
}
DJANGOS_OWN = "/admin/auth/group/add/"


def fill() -> dict[str, str]:
    """A message, a conversation, a contact, a campaign; the app's pages that show them."""
    Template.objects.create(name="order_ready", namespace="ns", body="Hello {{1}}.")
    message = Message.objects.create(
        destination_addr=NUMBER, source_addr="Shop", text="Your order is ready", status="seen"
    )
    campaign = services.create_campaign("Spring", [f"+{NUMBER}", "+380671234568"], text="Hi")
    contact, _changed = optout.opt_out(NUMBER, reason="asked by phone")
    return {
        **FORMS,
        "message list": "/admin/django_whatsapp/message/",
        "message page": f"/admin/django_whatsapp/message/{message.pk}/change/",
        "conversations": "/admin/django_whatsapp/conversation/",
        "conversation": f"/admin/django_whatsapp/conversation/{NUMBER}/",
        "campaigns": "/admin/django_whatsapp/campaign/",
        "campaign page": f"/admin/django_whatsapp/campaign/{campaign.pk}/change/",
        "campaign cancel": f"/admin/django_whatsapp/campaign/{campaign.pk}/cancel/",
        "contacts": "/admin/django_whatsapp/contact/",
        "contact page": f"/admin/django_whatsapp/contact/{contact.pk}/change/",
    }


def heights(page: Page, selector: str) -> dict[str, float]:
    """The visible fields' heights, by their name."""
    found: dict[str, float] = page.evaluate(
        """(selector) => Object.fromEntries([...document.querySelectorAll(selector)]
            .filter((node) => node.offsetParent !== null)
            .map((node) => [node.name || node.id, node.getBoundingClientRect().height]))""",
        selector,
    )
    return found


def test_inputs_are_as_tall_as_djangos_own_and_text_boxes_a_few_lines(
    console: Page, site: Any
) -> None:
    console.goto(f"{site.url}{DJANGOS_OWN}")
    own = heights(console, "#content form input#id_name")["name"]
    assert 20 <= own <= 40

    for name, url in FORMS.items():
        console.goto(f"{site.url}{url}")
        expect(console.locator("#wa-preview")).to_be_visible()  # the page's script ran
        inputs = heights(console, "#content form input[type=text], #content form input[type=url]")
        assert inputs, name
        assert all(abs(height - own) <= 2 for height in inputs.values()), (name, own, inputs)
        boxes = heights(console, "#content form textarea")
        assert boxes, name
        assert all(own < height <= 6 * own for height in boxes.values()), (name, boxes)


def breadcrumbs(page: Page) -> dict[str, Any]:
    """How the page's breadcrumbs are drawn."""
    found: dict[str, Any] = page.evaluate(
        """() => {
            const bar = document.querySelector(".breadcrumbs");
            const link = bar.querySelector("a");
            const style = getComputedStyle(bar);
            return {
                background: style.backgroundColor,
                height: Math.round(bar.getBoundingClientRect().height),
                link: getComputedStyle(link).color,
                tag: bar.tagName,
            };
        }"""
    )
    return found


def test_breadcrumbs_are_the_bar_django_draws_on_its_own_pages(console: Page, site: Any) -> None:
    pages = fill()
    console.goto(f"{site.url}/admin/auth/group/")
    own = breadcrumbs(console)
    assert own["background"] not in ("rgba(0, 0, 0, 0)", "transparent")

    for name, url in pages.items():
        console.goto(f"{site.url}{url}")
        assert breadcrumbs(console) == own, name


@pytest.mark.parametrize("locale", ["en-US", "ru-RU"])
def test_no_page_scrolls_sideways_at_a_phones_width(
    open_console: Callable[..., Page], site: Any, settings: Any, locale: str
) -> None:
    settings.LANGUAGE_CODE = locale.split("-")[0]
    pages = fill()
    Message.objects.create(
        destination_addr="380671234599",
        direction=Message.Direction.INBOUND,
        text="A customer's rather long message that wraps " * 4,
        status="delivered",
    )
    Contact.objects.update_or_create(number="380671234599", defaults={"name": "Olena Kovalenko"})
    page = open_console(locale=locale)
    page.set_viewport_size({"width": 390, "height": 844})
    for name, url in pages.items():
        page.goto(f"{site.url}{url}")
        expect(page.locator("#content")).to_be_visible()
        widths = page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1], f"{name}: {widths[0]} px wide in a {widths[1]} px window"
