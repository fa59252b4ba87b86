"""One set of numbers: each scene an operator met is built here, and the numbers every page shows
of it are compared with each other and with what the scene holds: the preview of the upload,
the flash after "Create the campaign", the campaign list, the campaign's page and its live JSON,
the command's output, the message list's summary.

- an audience with good rows, rejected rows (a bad number, a recipient who opted out) and
  repeated numbers (one of a good number, one of the opted-out number): each row in exactly one
  pile, the repeated and rejected rows listed with their lines (an opted-out row counted among
  the repeated, or a rejected row among the repeated, fails here);
- a running campaign part sent: the list's progress is the page's;
- a cancelled campaign: what was sent and what was cancelled, the same everywhere;
- a funnel with a message refused before any request: not counted as sent to the gateway;
- a campaign done whose statuses still change: its page keeps refreshing until they stop.
"""

from __future__ import annotations

import io
import re
from datetime import timedelta
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_whatsapp import optout, services
from django_whatsapp.models import Campaign, Message

pytestmark = pytest.mark.django_db(transaction=True)

if find_spec("django.tasks"):  # Django 6.0+
    DUMMY = "django.tasks.backends.dummy.DummyBackend"
else:
    pytest.importorskip("django_tasks")
    DUMMY = "django_tasks.backends.dummy.DummyBackend"

ADD = "/admin/django_whatsapp/campaign/add/"
LIST = "/admin/django_whatsapp/campaign/"
Status = Message.Status

#: The scene: 10 rows. Kept: lines 2, 3, 5, 6, 9, 11 (6 recipients). Rejected: line 4 (not a
#: number), line 7 (opted out). Repeated: line 8 (of line 2), line 10 (of the opted-out line 7).
AUDIENCE = (
    "phone,name\n"
    "+380500000001,Ann\n"  # 2
    "+380500000002,Bob\n"  # 3
    "not-a-number,Cy\n"  # 4
    "+380500000004,Dee\n"  # 5
    "+380500000005,Eve\n"  # 6
    "+380500000077,Opted\n"  # 7: opted out
    "+380500000001,Ann again\n"  # 8: repeats line 2
    "+380500000009,Fay\n"  # 9
    "+380500000077,Opted again\n"  # 10: repeats line 7
    "+380500000011,Gus\n"  # 11
)
ROWS, KEPT, REJECTED, REPEATED = 10, 6, 2, 2
REJECTED_LINES, REPEATED_LINES = [4, 7], [8, 10]


@pytest.fixture(autouse=True)
def framework(settings: Any, tmp_path: Path) -> None:
    settings.TASKS = {"default": {"BACKEND": DUMMY}}
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def operator(client: Client) -> Client:
    client.force_login(User.objects.create_superuser("operator", "op@example.com", "pw"))
    return client


def lines(html: str, table: str) -> list[int]:
    """The lines listed in the table with id ``table``."""
    if f'id="{table}"' not in html:
        return []
    body = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return [int(n) for n in re.findall(r'<tr data-line="(\d+)">', body)]


def page_url(campaign: Campaign, what: str = "change") -> str:
    return reverse(f"admin:django_whatsapp_campaign_{what}", args=[campaign.pk])


def list_row(client: Client, campaign: Campaign) -> str:
    """The campaign's row of the list, found by its link (a name such as "Running" is also a
    status filter's label, which Django 6 puts before the results)."""
    html = client.get(LIST).content.decode()
    link = reverse("admin:django_whatsapp_campaign_change", args=[campaign.pk])
    return html.split(f'href="{link}"', 1)[1].split("</tr>", 1)[0]


def test_the_audience_scene_tells_the_same_numbers_everywhere(operator: Client) -> None:
    optout.opt_out("380500000077", reason="asked")
    fields = {"name": "Scene", "message_type": 1, "text": "Hi", "number_column": "phone"}
    upload = SimpleUploadedFile("a.csv", AUDIENCE.encode(), content_type="text/csv")
    first = operator.post(ADD, {**fields, "csv_file": upload, "_preview": "1"})

    # The preview.
    shown = first.context["preview"]
    assert (shown.rows_read, shown.valid, shown.rejected_count, shown.repeated_count) == (
        ROWS,
        KEPT,
        REJECTED,
        REPEATED,
    )
    html = first.content.decode()
    assert 'data-read="10" data-valid="6" data-rejected="2" data-repeated="2"' in html
    assert "10 rows read: 6 recipients, 2 rejected rows, 2 repeated numbers (sent once)." in (
        " ".join(html.split())
    )
    assert lines(html, "wa-preview-rejections") == REJECTED_LINES
    assert lines(html, "wa-preview-repeated") == REPEATED_LINES

    # "Create the campaign": the flash.
    form = first.context["form"]
    data = {name: value for name, value in form.data.items() if name != "csv_file"}
    done = operator.post(
        ADD, {**data, "upload": first.context["token"], "_create": "1"}, follow=True
    )
    flashed = " ".join(str(m) for m in done.context["messages"])
    assert "6 recipients, 2 rejected rows, 2 repeated numbers (sent once)" in flashed

    # The campaign itself.
    campaign = Campaign.objects.get()
    counts = (
        campaign.rows_read,
        campaign.recipients_count,
        campaign.rejected_count,
        campaign.duplicates_count,
    )
    assert counts == (ROWS, KEPT, REJECTED, REPEATED)
    assert campaign.rows_read == KEPT + REJECTED + REPEATED  # each row in one pile
    assert Message.objects.filter(campaign=campaign).count() == KEPT

    # Its page.
    html = done.content.decode()
    assert (
        "Rows read: 10 · recipients: 6 · rejected rows: 2 · repeated numbers (sent once): 2."
        in " ".join(html.split())
    )
    assert lines(html, "wa-rejections") == REJECTED_LINES
    assert lines(html, "wa-repeated") == REPEATED_LINES
    assert 'id="wa-rejections" data-total="2"' in html
    assert 'id="wa-repeated" data-total="2"' in html

    # The list.
    assert "6 recipients, 2 rejected, 2 repeated" in list_row(operator, campaign)

    # The command.
    out = io.StringIO()
    call_command("whatsapp_campaign", "status", str(campaign.pk), stdout=out)
    assert "0/6 settled" in out.getvalue()
    assert "rejected rows at import: 2" in out.getvalue()


def test_a_running_campaigns_progress_is_the_same_on_the_list_and_its_page(
    operator: Client,
) -> None:
    campaign = services.create_campaign(
        "Running", [f"+38050000{n:04d}" for n in range(8)], text="Hi", chunk_size=4
    )
    services.start_campaign(campaign)
    messages = list(Message.objects.filter(campaign=campaign).order_by("pk"))
    # Two answered and one in flight, of the first chunk; no chunk is finished.
    Message.objects.filter(pk__in=[m.pk for m in messages[:2]]).update(
        status=Status.ACCEPTED, attempts=1
    )
    Message.objects.filter(pk=messages[2].pk).update(status=Status.SENDING)

    row = list_row(operator, campaign)
    state = operator.get(page_url(campaign, "progress")).json()
    page = operator.get(page_url(campaign)).content.decode()

    assert 'data-percent="25"' in row  # 2 settled of 8
    assert state["percent"] == 25
    assert (state["settled"], state["in_flight"], state["waiting"]) == (2, 1, 5)
    assert 'data-percent="25"' in page.split('id="wa-progress-bar"', 1)[1]


def test_a_cancelled_campaign_tells_sent_and_cancelled_the_same_everywhere(
    operator: Client,
) -> None:
    campaign = services.create_campaign(
        "Cancelled", [f"+38050000{n:04d}" for n in range(8)], text="Hi"
    )
    services.start_campaign(campaign)
    sent = list(Message.objects.filter(campaign=campaign).order_by("pk")[:2])
    Message.objects.filter(pk__in=[m.pk for m in sent]).update(status=Status.SENT, attempts=1)
    asked = operator.get(page_url(campaign, "cancel")).content.decode()
    assert 'data-waiting="6" data-settled="2"' in asked  # the question says what will happen
    operator.post(page_url(campaign, "cancel"), {"confirmed": "yes"})

    row = list_row(operator, campaign)
    state = operator.get(page_url(campaign, "progress")).json()
    page = operator.get(page_url(campaign)).content.decode()

    assert (state["sent"], state["cancelled"]) == (2, 6)
    assert (state["sent_percent"], state["cancelled_percent"]) == (25, 75)
    for shown in (row, page, state["bar"]):
        assert 'data-sent="25" data-cancelled="75"' in shown
        assert "25% sent, 75% cancelled" in shown
    assert "not_sent" in {m.status for m in Message.objects.filter(campaign=campaign)}


def test_the_funnel_counts_what_reached_the_gateway(operator: Client) -> None:
    campaign = services.create_campaign("Funnel", [f"+38050000000{n}" for n in range(5)], text="Hi")
    by_number = {m.destination_addr: m for m in Message.objects.filter(campaign=campaign)}
    statuses = [Status.ACCEPTED, Status.DELIVERED, Status.SEEN, Status.FAILED]
    for number, status in zip(sorted(by_number), statuses, strict=False):
        Message.objects.filter(pk=by_number[number].pk).update(status=status, attempts=1)
    # Opted out after the import: refused by the worker before any request.
    last = sorted(by_number)[4]
    optout.opt_out(last, reason="asked later")
    Message.objects.filter(pk=by_number[last].pk).update(
        status=Status.NOT_SENT, attempts=0, error_name="Opted out"
    )

    state = operator.get(page_url(campaign, "progress")).json()
    listed = operator.get(
        reverse("admin:django_whatsapp_message_changelist"),
        {"campaign__id__exact": campaign.pk},
    )

    assert (state["submitted"], state["refused"]) == (4, 1)
    assert state["funnel"][0] == {"key": "accepted", "count": 4, "percent": 100}
    summary = listed.context["wa_summary"]
    assert (summary.submitted, summary.refused) == (4, 1)
    for html in (state["summary_html"], listed.content.decode()):
        assert "of 4 messages sent to the gateway" in html
        assert "1 refused before sending (not counted)" in html


def test_a_done_campaigns_page_refreshes_until_its_statuses_stop_changing(
    operator: Client,
) -> None:
    campaign = services.create_campaign("Settling", ["+380500000001", "+380500000002"], text="Hi")
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.DONE)
    messages = Message.objects.filter(campaign=campaign)
    messages.update(status=Status.DELIVERED, attempts=1, status_changed_at=timezone.now())

    live = operator.get(page_url(campaign, "progress")).json()
    assert (live["status"], live["live"]) == ("done", True)
    assert 'data-live="true"' in operator.get(page_url(campaign)).content.decode()

    # The reports go on arriving: the page's next poll shows them.
    messages.update(status=Status.SEEN, status_changed_at=timezone.now())
    seen = operator.get(page_url(campaign, "progress")).json()
    assert seen["funnel"][2] == {"key": "seen", "count": 2, "percent": 100}

    # Nothing changed for a while: the page stops asking.
    messages.update(status_changed_at=timezone.now() - timedelta(hours=1))
    quiet = operator.get(page_url(campaign, "progress")).json()
    assert quiet["live"] is False
    assert 'data-live="false"' in operator.get(page_url(campaign)).content.decode()
