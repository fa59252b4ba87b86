"""Campaigns in a real browser: upload a CSV, see the first rows as bubbles and the bad row, create
and start the campaign, and watch the page's progress bar (polled by campaign.js) reach 100%
while a worker sends it to the sandbox gateway; cancel one after its confirmation page, and see
what was sent and what was cancelled in two colours."""

from __future__ import annotations

import re
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from django_whatsapp.models import Campaign, CampaignChunk, Message, Template
from django_whatsapp.sandbox.gateway import gateway as sandbox
from django_whatsapp.tasks import send_campaign_chunk

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

if find_spec("django.tasks"):  # Django 6.0+
    from django.tasks import default_task_backend

    DUMMY = "django.tasks.backends.dummy.DummyBackend"
else:
    pytest.importorskip("django_tasks")
    from django_tasks import default_task_backend  # type: ignore[no-redef,unused-ignore]

    DUMMY = "django_tasks.backends.dummy.DummyBackend"

ADD = "/admin/django_whatsapp/campaign/add/"
AUDIENCE = (
    # The sandbox accepts these numbers (its outcome is chosen by the last four digits).
    "phone,name,order\n"
    "+380500001011,Ann,A-1\n"
    "+380500001012,Bob,B-2\n"
    "not-a-number,Cy,C-3\n"
    "+380500001014,Dee,D-4\n"
)


@pytest.fixture(autouse=True)
def framework(settings: Any, tmp_path: Path) -> None:
    """The framework's dummy backend keeps what is enqueued; the test runs it as a worker."""
    settings.TASKS = {"default": {"BACKEND": DUMMY}}
    settings.MEDIA_ROOT = str(tmp_path / "media")
    default_task_backend.clear()  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def no_callbacks_while_the_test_works(site: Any, settings: Any) -> None:
    """The sandbox's callbacks are held back (an hour away; the site's teardown cancels them):
    on SQLite in memory the live server shares the test's one connection, so a callback stored
    by a server thread while this thread records the campaign's sends would interleave two
    transactions on it. The campaign's progress counts accepted messages: no callback needed."""
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "SANDBOX_CALLBACK_DELAY": 3600}


def work_the_queue(campaign: Campaign) -> None:
    """Run the campaign's chunk tasks as a worker would, then what they enqueued. (The live
    server's thread has its own dummy backend: what the page enqueued is not seen here.)"""
    for chunk_id in CampaignChunk.objects.filter(campaign=campaign).values_list("pk", flat=True):
        send_campaign_chunk.call(chunk_id)
    for _round in range(50):
        results = list(default_task_backend.results)  # type: ignore[attr-defined]
        default_task_backend.clear()  # type: ignore[attr-defined]
        if not results:
            return
        for result in results:
            result.task.call(*result.args, **result.kwargs)
    raise AssertionError("the queue never ran dry")


@pytest.fixture
def template(db: Any) -> Template:
    return Template.objects.create(
        name="order_ready",
        namespace="ns_1234",
        language_code="en_US",
        body="Hello {{1}}, your order {{2}} is ready.",
    )


def test_upload_preview_create_start_and_watch_the_progress(
    console: Page, site: Any, template: Template
) -> None:
    console.goto(f"{site.url}{ADD}")
    console.fill("#id_name", "Orders ready")
    console.check("input[name=message_type][value='4']")
    expect(console.locator("fieldset[data-wa-type='1']")).to_be_hidden()
    console.select_option("#id_template", str(template.pk))
    expect(console.locator("#wa-template-body")).to_contain_text("your order")
    console.check("input[name=param_source][value='columns']")
    # Only the chosen source of the parameters shows.
    expect(console.locator("#wa-params")).to_be_hidden()
    console.fill("#id_param_columns", "name, order")
    console.fill("#id_number_column", "phone")
    console.set_input_files(
        "#id_csv_file",
        {"name": "audience.csv", "mimeType": "text/csv", "buffer": AUDIENCE.encode()},
    )
    console.click("input[name=_preview]")

    # The preview: the first rows as bubbles, the bad row with its line; nothing created yet.
    rows = console.locator(".wa-preview-row")
    expect(rows).to_have_count(3)
    expect(rows.first.locator(".wa-bubble-text")).to_have_text(
        "Hello Ann, your order A-1 is ready."
    )
    expect(rows.nth(2)).to_contain_text("+380500001014")
    bad = console.locator("#wa-preview-rejections tr[data-line='4']")
    expect(bad).to_contain_text("not-a-number")
    expect(console.locator(".wa-preview-counts")).to_have_attribute("data-rejected", "1")
    assert Campaign.objects.count() == 0
    # The number column is now chosen from the file's header.
    expect(console.locator("select#id_number_column")).to_have_value("phone")

    console.check("input[name=launch][value='now']")
    console.click("input[name=_create]")
    console.wait_for_url(re.compile(r"/admin/django_whatsapp/campaign/\d+/change/$"))
    campaign = Campaign.objects.get()
    assert (campaign.status, campaign.recipients_count, campaign.rejected_count) == (
        "running",
        3,
        1,
    )
    root = console.locator(".wa-campaign")
    expect(root).to_have_attribute("data-polling", "true")  # campaign.js polls the progress
    bar = console.locator("#wa-progress-bar .wa-progress")
    expect(bar).to_have_attribute("data-percent", "0")
    expect(console.locator("#wa-rejections tr[data-line='4']")).to_contain_text("not-a-number")

    work_the_queue(campaign)  # a worker sends the campaign to the sandbox

    expect(bar).to_have_attribute("data-percent", "100", timeout=20_000)
    expect(console.locator("#wa-progress-bar .wa-progress-words")).to_have_text("100%")
    expect(console.locator("#wa-campaign-badge .wa-badge")).to_have_attribute(
        "data-status", "done", timeout=20_000
    )
    outcomes = list(Message.objects.values_list("status", "error_name", "error_message"))
    assert {o[0] for o in outcomes} <= {"accepted", "sent", "delivered", "seen"}, outcomes
    expect(console.locator(".wa-funnel-step[data-step='accepted']")).to_have_attribute(
        "data-count", "3"
    )
    assert sorted(m.payload["destination_addr"] for m in sandbox.messages()) == [
        380500001011,
        380500001012,
        380500001014,
    ]
    assert Message.objects.filter(campaign=campaign).count() == 3


def test_pause_and_resume_from_the_page(console: Page, site: Any) -> None:
    from django_whatsapp import services

    campaign = services.create_campaign("Promo", ["+380500001011", "+380500001012"], text="Hi")
    services.start_campaign(campaign)
    console.goto(f"{site.url}/admin/django_whatsapp/campaign/{campaign.pk}/change/")
    console.click("input[name=_pause]")
    expect(console.locator(".messagelist")).to_contain_text("is paused")
    expect(console.locator("#wa-campaign-badge .wa-badge")).to_have_attribute(
        "data-status", "paused"
    )
    console.click("input[name=_resume]")
    expect(console.locator("#wa-campaign-badge .wa-badge")).to_have_attribute(
        "data-status", "running"
    )
    campaign.refresh_from_db()
    assert campaign.status == "running"


def test_cancel_asks_first_with_the_numbers_and_the_bar_shows_sent_and_cancelled(
    console: Page, site: Any
) -> None:
    from django_whatsapp import services

    campaign = services.create_campaign(
        "Promo", [f"+38050000{n:04d}" for n in range(1011, 1015)], text="Hi"
    )
    services.start_campaign(campaign)
    # One message went out before the operator cancels; three wait.
    first = Message.objects.filter(campaign=campaign).order_by("pk").first()
    assert first is not None
    Message.objects.filter(pk=first.pk).update(status="sent", attempts=1)
    console.goto(f"{site.url}/admin/django_whatsapp/campaign/{campaign.pk}/change/")
    console.click("a[data-action=cancel]")

    box = console.locator(".wa-confirm-box")
    expect(box).to_have_attribute("data-waiting", "3")
    expect(console.locator("#wa-confirm-waiting")).to_contain_text("3 messages not sent yet")
    expect(console.locator("#wa-confirm-settled")).to_contain_text("1 message already sent")
    campaign.refresh_from_db()
    assert campaign.status == "running"  # nothing happened yet

    console.click("input[type=submit][value='Yes, cancel the campaign']")
    expect(console.locator(".messagelist")).to_contain_text("is cancelled")
    bar = console.locator("#wa-progress-bar .wa-progress")
    expect(bar).to_have_attribute("data-sent", "25")
    expect(bar).to_have_attribute("data-cancelled", "75")
    sent_colour = console.locator("#wa-progress-bar .wa-progress-fill").evaluate(
        "node => getComputedStyle(node).backgroundColor"
    )
    cancelled_look = console.locator("#wa-progress-bar .wa-progress-cancelled").evaluate(
        "node => getComputedStyle(node).backgroundImage"
    )
    assert sent_colour not in ("", "rgba(0, 0, 0, 0)")
    assert "gradient" in cancelled_look  # striped grey: another look than the sent part
    expect(console.locator("#wa-progress-bar .wa-progress-words")).to_have_text(
        "25% sent, 75% cancelled"
    )
