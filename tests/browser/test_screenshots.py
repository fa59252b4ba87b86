"""The pictures in docs/img, taken from the running console: `python docs/screenshots.py`
(or `pytest tests/browser -m screenshots`). Skipped in ordinary runs, since they rewrite files."""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from django_whatsapp.models import Campaign, Message, StatusEvent, Template

from .conftest import REPO, wait_for_status

pytestmark = [
    pytest.mark.browser,
    pytest.mark.screenshots,
    pytest.mark.django_db(transaction=True),
]

IMG = REPO / "docs" / "img"
Status = Message.Status


def gradient_png(width: int, height: int) -> bytes:
    """A small landscape-ish picture for the image previews (no imaging library needed)."""
    rows = []
    for y in range(height):
        row = bytearray([0])
        for x in range(width):
            sky = y < height * 0.62
            r = int(90 + 120 * x / width) if sky else int(40 + 60 * x / width)
            g = int(150 + 70 * y / height) if sky else int(120 + 60 * y / height)
            b = 230 if sky else int(60 + 40 * x / width)
            row += bytes((r, g, b))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


def seed_history(template: Template) -> None:
    """A few days of traffic, so that the list's summary and funnel have something to say."""
    now = timezone.now()
    plan = [
        (Status.SEEN, 9),
        (Status.DELIVERED, 5),
        (Status.SENT, 2),
        (Status.ACCEPTED, 1),
        (Status.FAILED, 1),
        (Status.REJECTED, 1),
        (Status.NOT_SENT, 2),
        (Status.DRAFT, 2),
    ]
    texts = [
        "Your parcel is on its way and will arrive tomorrow.",
        "Thank you for your order! We will let you know when it ships.",
        "Reminder: your appointment is on Friday at 10:30.",
        "Your table for two is booked for 19:00.",
    ]
    n = 0
    for status, count in plan:
        for _ in range(count):
            n += 1
            kind = n % 3
            fields: dict[str, Any] = {
                "destination_addr": f"3806{7 + n % 3}{1234567 + n * 7919:07d}"[:12],
                "source_addr": "Demo Shop",
                "status": status,
            }
            if kind == 0:
                fields.update(
                    message_type=Message.MessageType.TEMPLATE,
                    template=template,
                    template_params={
                        "body": ["Olena", f"A-{1000 + n}", "Khreshchatyk 22"],
                        "header": "https://cdn.example.com/shop/order.png",
                    },
                )
            elif kind == 1:
                fields.update(
                    message_type=Message.MessageType.MEDIA,
                    file_url=f"https://cdn.example.com/catalogue/item-{n}.jpg",
                    text="New this week",
                )
            else:
                fields.update(text=texts[n % len(texts)])
            if status not in (Status.DRAFT, Status.NOT_SENT):
                fields["provider_message_id"] = 1_700_000_000_000 + n
            if status == Status.NOT_SENT:
                fields.update(
                    error_code=3,
                    error_name="Topup balance is required",
                    error_message="User balance is empty",
                )
            message = Message.objects.create(**fields)
            when = now - timedelta(hours=3 * n)
            Message.objects.filter(pk=message.pk).update(
                created_at=when,
                submitted_at=None if status == Status.DRAFT else when,
                status_changed_at=when,
            )
            if status != Status.DRAFT:
                event = StatusEvent.objects.create(message=message, status=status, source="send")
                StatusEvent.objects.filter(pk=event.pk).update(received_at=when)


def test_screenshots(
    open_console: Callable[..., Page], site: Any, settings: Any, tmp_path: Path
) -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "spring-sale.png").write_bytes(gradient_png(480, 270))
    settings.STATICFILES_DIRS = [tmp_path]
    picture = f"{site.url}/static/demo/spring-sale.png"
    template = Template.objects.create(
        name="order_ready",
        namespace="demo_shop",
        language_code="en_US",
        body="Hello {{1}}, your order {{2}} is ready for pickup at {{3}}. See you soon!",
        header_type=Template.HeaderType.IMAGE,
    )
    Template.objects.create(
        name="appointment_reminder",
        namespace="demo_shop",
        body="Hi {{1}}, this is a reminder of your appointment on {{2}}.",
        header_type=Template.HeaderType.TEXT,
    )
    seed_history(template)

    page = open_console()
    page.goto(
        f"{site.url}/admin/django_whatsapp/message/add/?message_type=4&template={template.pk}"
    )
    page.fill("#id_destination_addr", "+380 67 123 45 67")
    page.fill("#id_header", picture)
    page.get_by_label("Placeholder {{1}}").fill("Olena")
    page.get_by_label("Placeholder {{2}}").fill("A-1042")
    page.get_by_label("Placeholder {{3}}").fill("Khreshchatyk 22")
    expect(page.locator("#wa-bubble .wa-media.wa-media-loaded")).to_be_visible()
    page.screenshot(path=IMG / "compose.png", full_page=True)

    page.click("input[name=_send]")
    page.wait_for_url(re.compile(r"/change/$"))
    wait_for_status(page, "seen")
    expect(page.locator(".field-content .wa-media img")).to_be_visible()
    page.screenshot(path=IMG / "message.png", full_page=True)

    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{site.url}/admin/django_whatsapp/message/")
    page.click("#toggle-nav-sidebar")  # more room for the list
    expect(page.locator("#wa-summary")).to_be_visible()
    page.screenshot(path=IMG / "changelist.png", full_page=True)

    failed = Message.objects.filter(status=Status.NOT_SENT).first()
    assert failed is not None
    page.goto(f"{site.url}/admin/django_whatsapp/template/{template.pk}/change/")
    expect(page.locator("#wa-highlighted-body mark")).to_have_count(3)
    page.screenshot(path=IMG / "template.png", full_page=True)

    dark = open_console(dark=True)
    dark.set_viewport_size({"width": 1440, "height": 900})
    dark.goto(f"{site.url}/admin/django_whatsapp/message/?status__exact=seen")
    dark.click("#toggle-nav-sidebar")
    expect(dark.locator("#wa-summary")).to_be_visible()
    dark.evaluate("window.scrollTo(0, 0)")
    dark.screenshot(path=IMG / "changelist-dark.png")

    page.set_viewport_size({"width": 1280, "height": 900})
    page.click("#toggle-nav-sidebar")
    settings.LANGUAGE_CODE = "ru"
    page.goto(f"{site.url}/admin/django_whatsapp/message/{failed.pk}/change/")
    expect(page.locator(".wa-error-box")).to_contain_text("На счёте нет средств")  # noqa: RUF001
    page.screenshot(path=IMG / "message-ru.png", full_page=True)
    page.goto(f"{site.url}/admin/django_whatsapp/message/add/?message_type=2")
    page.fill("#id_file_url", "https://cdn.example.com/catalogue/spring.gif")
    page.fill("#id_destination_addr", "380671234567")
    page.click("input[name=_save]")
    expect(page.locator(".field-file_url .errorlist")).to_be_visible()
    page.screenshot(path=IMG / "compose-ru.png", full_page=True)

    # A campaign: its page (progress, counts, funnel, chart, rejected and repeated rows), and the
    # upload's preview.
    from django_whatsapp import services

    # Campaigns sent by workers (the framework's dummy backend here: nothing runs in the page).
    from .test_campaigns import DUMMY

    settings.TASKS = {"default": {"BACKEND": DUMMY}}
    settings.MEDIA_ROOT = str(tmp_path / "media")  # where the upload waits for the campaign
    audience = [f"+3806712{n:05d}" for n in range(40)] + ["+380671200003", "not-a-number"]
    campaign = services.create_campaign("Spring sale", audience, text="Spring sale: -20% today!")
    Campaign.objects.filter(pk=campaign.pk).update(status="running", started_at=now_minus(3))
    plan = [(Status.SEEN, 16), (Status.DELIVERED, 9), (Status.SENT, 4), (Status.FAILED, 2)]
    ids = list(
        Message.objects.filter(campaign=campaign).order_by("pk").values_list("pk", flat=True)
    )
    start = 0
    for status, count in plan:
        for index, pk in enumerate(ids[start : start + count]):
            when = now_minus(3 - (start + index) / 12)
            Message.objects.filter(pk=pk).update(
                status=status, attempts=1, submitted_at=when, status_changed_at=when
            )
        start += count
    page.set_viewport_size({"width": 1280, "height": 900})
    settings.LANGUAGE_CODE = "en"
    page.goto(f"{site.url}/admin/django_whatsapp/campaign/{campaign.pk}/change/")
    expect(page.locator("#wa-chart")).to_be_visible()
    page.screenshot(path=IMG / "campaign.png", full_page=True)

    page.goto(f"{site.url}/admin/django_whatsapp/campaign/add/")
    page.fill("#id_name", "Orders ready")
    page.fill("#id_text", "Your order is ready for pickup.")
    page.fill("#id_number_column", "phone")
    page.set_input_files(
        "#id_csv_file",
        {
            "name": "audience.csv",
            "mimeType": "text/csv",
            "buffer": (
                b"phone,name\n+380671234561,Olena\n+380671234562,Taras\n+380671234563,Iryna\n"
                b"not-a-number,Petro\n+380671234561,Olena\n"
            ),
        },
    )
    page.click("input[name=_preview]")
    expect(page.locator("#wa-campaign-preview")).to_be_visible()
    page.screenshot(path=IMG / "campaign-add.png", full_page=True)


def now_minus(hours: float) -> Any:
    return timezone.now() - timedelta(hours=hours)
