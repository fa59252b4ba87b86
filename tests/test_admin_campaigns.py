"""The admin's campaign screens: create from a CSV upload with a preview, the list, a campaign's
page with its live progress JSON, pause / resume / cancel (permissions, CSRF, POST only) and the
CSV export. The campaign's chunk tasks run as a worker would, from the framework's dummy backend,
against the fake gateway over TCP."""

from __future__ import annotations

import csv
import io
import os
from datetime import timedelta
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_whatsapp import services
from django_whatsapp.models import Campaign, Message, Template

from .conftest import FakeGateway
from .factories import staff_client

pytestmark = pytest.mark.django_db(transaction=True)

if find_spec("django.tasks"):  # Django 6.0+
    from django.tasks import default_task_backend

    DUMMY = "django.tasks.backends.dummy.DummyBackend"
else:
    pytest.importorskip("django_tasks")
    from django_tasks import default_task_backend  # type: ignore[no-redef,unused-ignore]

    DUMMY = "django_tasks.backends.dummy.DummyBackend"

ADD = "/admin/django_whatsapp/campaign/add/"
LIST = "/admin/django_whatsapp/campaign/"
CStatus = Campaign.Status
Status = Message.Status

AUDIENCE = (
    "phone,name,order\n"
    "+380500000001,Ann,A-1\n"
    "not-a-number,Bob,B-2\n"
    "+380500000003,Cy\n"
    "+380500000004,Dee,D-4\n"
)


@pytest.fixture(autouse=True)
def framework(settings: Any, tmp_path: Path) -> None:
    settings.TASKS = {"default": {"BACKEND": DUMMY}}
    settings.MEDIA_ROOT = str(tmp_path / "media")
    default_task_backend.clear()  # type: ignore[attr-defined]


def run_queue() -> None:
    """Run what was enqueued, as a worker would, until nothing new comes."""
    for _round in range(50):
        results = list(default_task_backend.results)  # type: ignore[attr-defined]
        default_task_backend.clear()  # type: ignore[attr-defined]
        if not results:
            return
        for result in results:
            result.task.call(*result.args, **result.kwargs)
    raise AssertionError("the queue never ran dry")


@pytest.fixture
def operator(client: Client) -> Client:
    user = User.objects.create_superuser("operator", "op@example.com", "pw")
    client.force_login(user)
    return client


def csv_file(text: str = AUDIENCE) -> SimpleUploadedFile:
    return SimpleUploadedFile("audience.csv", text.encode(), content_type="text/csv")


def uploads(settings: Any) -> list[Path]:
    folder = Path(settings.MEDIA_ROOT) / "django_whatsapp" / "campaign_uploads"
    return sorted(folder.glob("*.csv")) if folder.exists() else []


def preview(client: Client, audience: str = AUDIENCE, **data: Any) -> Any:
    fields = {"name": "Spring", "message_type": 1, "text": "Sale today", "number_column": "phone"}
    fields.update(data)
    return client.post(ADD, {**fields, "csv_file": csv_file(audience), "_preview": "1"})


def create(client: Client, first: Any, **data: Any) -> Any:
    """Press "Create the campaign" on the preview page ``first``."""
    form = first.context["form"]
    fields = {name: value for name, value in form.data.items() if name != "csv_file"}
    fields.update({"upload": first.context["token"], "_create": "1", **data})
    return client.post(ADD, fields, follow=True)


def page_url(campaign: Campaign, what: str = "change") -> str:
    return reverse(f"admin:django_whatsapp_campaign_{what}", args=[campaign.pk])


# -- create from a CSV upload ------------------------------------------------------------------


def test_the_list_shows_each_campaigns_progress_as_its_page_does(
    operator: Client, gateway: FakeGateway
) -> None:
    gateway.accept()
    waiting = services.create_campaign("Waiting", ["+380500000001"], text="x")
    sent = services.create_campaign("Sent", ["+380500000001", "+380500000002"], text="x")
    services.start_campaign(sent)
    run_queue()
    html = operator.get(LIST).content.decode()
    rows = {
        name: html.split(f">{name}<", 1)[1].split("</tr>", 1)[0] for name in ("Waiting", "Sent")
    }
    assert 'data-percent="0"' in rows["Waiting"]
    assert 'data-status="draft"' in rows["Waiting"]
    assert 'data-percent="100"' in rows["Sent"]
    assert 'data-status="done"' in rows["Sent"]
    assert "2 recipients, 0 rejected, 0 repeated" in rows["Sent"]
    assert waiting.pk != sent.pk


def test_a_user_who_may_not_start_gets_a_draft(django_user_model: Any) -> None:
    adder = staff_client(django_user_model, "adder", "add_campaign", "send_message")
    first = preview(adder)
    done = create(adder, first, launch="now")
    assert Campaign.objects.get().status == CStatus.DRAFT
    assert done.redirect_chain[-1][0] == LIST  # it may not see the campaign's page
    viewer = staff_client(
        django_user_model, "viewer", "add_campaign", "send_message", "view_campaign"
    )
    done = create(viewer, preview(viewer), launch="now")
    assert "stays a draft" in " ".join(str(m) for m in done.context["messages"])
    assert set(Campaign.objects.values_list("status", flat=True)) == {CStatus.DRAFT}


def test_the_list_links_to_the_upload_form(operator: Client) -> None:
    listing = operator.get(LIST)
    assert listing.status_code == 200
    assert ADD.encode() in listing.content
    page = operator.get(ADD)
    assert page.status_code == 200
    for name in (b'name="csv_file"', b'name="number_column"', b'name="template"', b'"_preview"'):
        assert name in page.content
    assert b'name="_create"' not in page.content  # nothing can be created before a preview


def test_preview_shows_bubbles_and_bad_rows_and_creates_nothing(
    operator: Client, settings: Any
) -> None:
    response = preview(operator)
    assert response.status_code == 200
    shown = response.context["preview"]
    assert (shown.rows_read, shown.valid, shown.rejected_count) == (4, 3, 1)
    html = response.content.decode()
    assert html.count('class="wa-preview-row"') == 3
    assert 'data-recipient="380500000001"' in html
    assert "Sale today" in html
    assert 'class="wa-bubble"' in html
    assert [(r.line, r.value) for r in shown.rejected] == [(3, "not-a-number")]
    assert '<tr data-line="3">' in html
    assert 'name="_create"' in html
    # Nothing was created; the file waits for the second step.
    assert Campaign.objects.count() == 0
    assert Message.objects.count() == 0
    assert len(uploads(settings)) == 1


def test_template_preview_fills_each_rows_parameters_from_its_columns(
    operator: Client, template: Template
) -> None:
    response = preview(
        operator,
        message_type=4,
        text="",
        template=template.pk,
        header="https://cdn.example.com/h.png",
        param_source="columns",
        param_columns="name, order",
    )
    html = response.content.decode()
    assert "Hello Ann, your order A-1 is ready." in html
    assert "Hello Dee, your order D-4 is ready." in html
    assert "https://cdn.example.com/h.png" in html
    reasons = {r.line: r.reason for r in response.context["preview"].rejected}
    assert set(reasons) == {3, 4}  # the bad number, the row one column short
    assert "columns" in reasons[4]


def test_template_with_the_same_parameters_for_everyone(
    operator: Client, template: Template
) -> None:
    first = preview(
        operator,
        message_type=4,
        text="",
        template=template.pk,
        header="https://cdn.example.com/h.png",
        param_1="friend",
        param_2="X-1",
    )
    assert "Hello friend, your order X-1 is ready." in first.content.decode()
    done = create(operator, first)
    campaign = Campaign.objects.get()
    assert done.redirect_chain[-1][0] == page_url(campaign)
    assert campaign.params == ["friend", "X-1"]
    bodies = {m.template_body_params[0] for m in Message.objects.filter(campaign=campaign)}
    assert bodies == {"friend"}


def test_create_after_the_preview_stores_the_campaign_and_forgets_the_file(
    operator: Client, settings: Any
) -> None:
    first = preview(operator)
    done = create(operator, first, launch="draft")
    campaign = Campaign.objects.get()
    assert done.redirect_chain[-1][0] == page_url(campaign)
    assert (campaign.status, campaign.recipients_count, campaign.rejected_count) == (
        CStatus.DRAFT,
        3,
        1,
    )
    assert campaign.created_by is not None
    assert campaign.created_by.username == "operator"
    # The author is on the campaign's page (the list leaves that column out to fit 1280 px).
    assert "created by operator" in done.content.decode()
    assert list(campaign.rejections.values_list("line", "value")) == [(3, "not-a-number")]
    assert uploads(settings) == []
    assert "3 recipients" in " ".join(str(m) for m in done.context["messages"])
    assert list(default_task_backend.results) == []  # type: ignore[attr-defined]


def test_uploads_abandoned_for_a_day_are_swept(operator: Client, settings: Any) -> None:
    preview(operator)
    [abandoned] = uploads(settings)
    two_days_ago = (timezone.now() - timedelta(days=2)).timestamp()
    os.utime(abandoned, (two_days_ago, two_days_ago))
    preview(operator)
    [kept] = uploads(settings)
    assert kept != abandoned
    assert not abandoned.exists()


def test_a_fresh_upload_is_previewed_never_created_at_once(operator: Client) -> None:
    fields = {"name": "X", "message_type": 1, "text": "Hi", "number_column": "phone"}
    response = operator.post(ADD, {**fields, "csv_file": csv_file(), "_create": "1"})
    assert response.status_code == 200
    assert response.context["preview"] is not None
    assert Campaign.objects.count() == 0


def test_create_and_start_now_hands_the_chunks_out(operator: Client, gateway: FakeGateway) -> None:
    gateway.accept()
    create(operator, preview(operator), launch="now")
    campaign = Campaign.objects.get()
    assert campaign.status == CStatus.RUNNING
    run_queue()
    campaign.refresh_from_db()
    assert campaign.status == CStatus.DONE
    assert sorted(b["destination_addr"] for b in gateway.sent_bodies()) == [
        380500000001,
        380500000003,
        380500000004,
    ]


def test_create_scheduled_needs_a_future_time(operator: Client) -> None:
    first = preview(operator)
    refused = create(operator, first, launch="at", send_at="")
    assert refused.context["form"].errors["send_at"] == ["Give the time to send at."]
    past = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    refused = create(operator, first, launch="at", send_at=past)
    assert "past" in refused.context["form"].errors["send_at"][0]
    assert Campaign.objects.count() == 0
    later = timezone.localtime() + timedelta(days=1)
    create(operator, first, launch="at", send_at=later.strftime("%Y-%m-%dT%H:%M"))
    campaign = Campaign.objects.get()
    assert campaign.status == CStatus.SCHEDULED
    assert campaign.send_at is not None
    assert campaign.send_at.replace(second=0, microsecond=0) == later.replace(
        second=0, microsecond=0
    )


def test_bad_input_is_shown_on_its_field_and_creates_nothing(
    operator: Client, template: Template
) -> None:
    no_file = operator.post(ADD, {"name": "X", "message_type": 1, "text": "Hi", "_preview": "1"})
    assert no_file.context["form"].errors["csv_file"] == ["Choose the CSV file of the audience."]
    empty = preview(operator, text="", number_column="phone")
    assert "text" in empty.context["form"].errors
    assert empty.context["preview"] is None
    no_column = preview(operator, number_column="mobile")
    assert "number_column" in no_column.context["form"].errors
    missing = preview(
        operator,
        message_type=4,
        template=template.pk,
        header="https://cdn.example.com/h.png",
        param_source="columns",
        param_columns="name, city",
    )
    errors = " ".join(missing.context["form"].errors["csv_file"])
    assert "city" in errors
    assert "phone, name, order" in errors
    unnamed = preview(
        operator, message_type=4, template=template.pk, param_source="columns", param_1="x"
    )
    assert "Name the columns" in unnamed.context["form"].errors["param_columns"][0]
    # Parameters for everyone: the column names typed before are not read.
    fixed = preview(
        operator,
        message_type=4,
        template=template.pk,
        header="https://cdn.example.com/h.png",
        param_source="fixed",
        param_columns="name, city",
        param_1="x",
        param_2="y",
    )
    assert fixed.context["preview"] is not None
    blank = operator.post(
        ADD, {"name": "X", "message_type": 1, "text": "Hi", "csv_file": csv_file(""), "_preview": 1}
    )
    assert "empty" in blank.context["form"].errors["csv_file"][0]
    assert Campaign.objects.count() == 0
    assert Message.objects.count() == 0


def test_an_upload_of_another_session_is_not_taken(
    operator: Client, django_user_model: Any
) -> None:
    first = preview(operator)
    other = staff_client(django_user_model, "mallory", "send_message", "add_campaign")
    stolen = create(other, first)
    assert stolen.context["form"].errors["csv_file"] == ["Choose the CSV file of the audience."]
    for token in ("../../etc/passwd", "0" * 32):
        forged = create(operator, first, upload=token)
        assert forged.context["form"].errors["csv_file"]
    assert Campaign.objects.count() == 0


def test_a_file_that_is_not_utf8_is_refused_naming_the_line(
    operator: Client, settings: Any
) -> None:
    raw = "phone,name\n+380500000001,Ann\n+38050000\xe9002,Bob\n".encode("latin-1")
    response = operator.post(
        ADD,
        {
            "name": "X",
            "message_type": 1,
            "text": "Hi",
            "number_column": "phone",
            "csv_file": SimpleUploadedFile("a.csv", raw),
            "_preview": "1",
        },
    )
    assert response.context["preview"] is None
    (error,) = response.context["form"].errors["csv_file"]
    assert "not UTF-8 text from line 3 on" in error
    assert uploads(settings) == []  # a file that cannot be read is not kept
    assert Campaign.objects.count() == 0


def test_the_forms_labels_follow_the_active_language() -> None:
    from django.utils import translation

    from django_whatsapp.admin.campaigns import CampaignForm

    english = str(CampaignForm().fields["source_addr"].label)
    with translation.override("uk"):
        ukrainian = str(CampaignForm().fields["source_addr"].label)
    assert english == "Sender"
    assert ukrainian not in ("", "Sender")


# -- permissions, CSRF, methods ----------------------------------------------------------------


def make_campaign(count: int = 3, **content: Any) -> Campaign:
    numbers = [f"+38050{n:07d}" for n in range(count)]
    return services.create_campaign("Promo", numbers, **(content or {"text": "Hi"}))


def test_the_upload_form_needs_the_sending_permission(django_user_model: Any) -> None:
    adder = staff_client(django_user_model, "adder", "add_campaign", "view_campaign")
    assert adder.get(ADD).status_code == 403
    sender = staff_client(django_user_model, "sender", "add_campaign", "send_message")
    assert sender.get(ADD).status_code == 200


def test_actions_need_the_sending_and_the_change_permission(django_user_model: Any) -> None:
    campaign = make_campaign()
    viewer = staff_client(django_user_model, "viewer", "view_campaign", "change_campaign")
    page = viewer.get(page_url(campaign))
    assert page.status_code == 200
    assert b"/start/" not in page.content  # no buttons it may not press
    assert viewer.post(page_url(campaign, "start")).status_code == 403
    sender = staff_client(django_user_model, "sender", "view_campaign", "send_message")
    assert sender.post(page_url(campaign, "cancel")).status_code == 403
    campaign.refresh_from_db()
    assert campaign.status == CStatus.DRAFT
    runner = staff_client(
        django_user_model, "runner", "view_campaign", "change_campaign", "send_message"
    )
    assert b"/start/" in runner.get(page_url(campaign)).content
    assert runner.post(page_url(campaign, "start"), {"confirmed": "yes"}).status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == CStatus.RUNNING


def test_actions_answer_get_with_405_and_need_the_csrf_token(operator: Client) -> None:
    campaign = make_campaign()
    services.start_campaign(campaign)
    for action in ("pause", "resume"):
        assert operator.get(page_url(campaign, action)).status_code == 405
    for action in ("start", "cancel"):  # they ask first: GET is the question
        assert operator.get(page_url(campaign, action)).status_code == 200
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(User.objects.get(username="operator"))
    assert guarded.post(page_url(campaign, "pause")).status_code == 403
    campaign.refresh_from_db()
    assert campaign.status == CStatus.RUNNING
    page = guarded.get(page_url(campaign))
    token = page.cookies["csrftoken"].value if "csrftoken" in page.cookies else None
    assert token is not None
    done = guarded.post(page_url(campaign, "pause"), {"csrfmiddlewaretoken": token})
    assert done.status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == CStatus.PAUSED


def test_pause_resume_and_cancel_change_the_campaign_through_the_services(
    operator: Client, gateway: FakeGateway
) -> None:
    gateway.accept()
    campaign = make_campaign(5)
    operator.post(page_url(campaign, "start"), {"confirmed": "yes"})
    campaign.refresh_from_db()
    assert campaign.status == CStatus.RUNNING
    paused = operator.post(page_url(campaign, "pause"), follow=True)
    campaign.refresh_from_db()
    assert campaign.status == CStatus.PAUSED
    assert "paused" in " ".join(str(m) for m in paused.context["messages"])
    run_queue()  # a paused campaign sends nothing
    assert gateway.sent_bodies() == []
    refused = operator.post(page_url(campaign, "pause"), follow=True)
    assert any(m.level_tag == "error" for m in refused.context["messages"])
    operator.post(page_url(campaign, "resume"))
    campaign.refresh_from_db()
    assert campaign.status == CStatus.RUNNING
    operator.post(page_url(campaign, "cancel"), {"confirmed": "yes"})
    campaign.refresh_from_db()
    assert campaign.status == CStatus.CANCELLED
    run_queue()
    assert gateway.sent_bodies() == []
    assert set(Message.objects.values_list("status", flat=True)) == {Status.NOT_SENT}
    page = operator.get(page_url(campaign))
    assert b"/resume/" not in page.content
    assert b"/cancel/" not in page.content


# -- the page, its progress and the export -----------------------------------------------------


def test_the_page_shows_progress_counts_funnel_and_rejected_rows(
    operator: Client, gateway: FakeGateway
) -> None:
    gateway.accept()
    campaign = make_campaign(4)
    bad = services.create_campaign("Mixed", ["+380500000001", "oops", "+380500000002"], text="x")
    page = operator.get(page_url(bad))
    html = page.content.decode()
    assert '<tr data-line="2">' in html
    assert "oops" in html
    assert 'data-percent="0"' in html
    services.start_campaign(campaign)
    run_queue()
    page = operator.get(page_url(campaign))
    html = page.content.decode()
    assert 'id="wa-progress-bar"' in html
    assert 'data-percent="100"' in html
    assert 'data-step="accepted" data-count="4"' in html
    assert '<li data-status="accepted">' in html
    assert "campaign__id__exact=" in html  # counts link to the campaign's messages


def test_the_progress_json_follows_the_campaign(operator: Client, gateway: FakeGateway) -> None:
    gateway.accept()
    campaign = make_campaign(4)
    before = operator.get(page_url(campaign, "progress")).json()
    assert (before["status"], before["total"], before["percent"], before["waiting"]) == (
        "draft",
        4,
        0,
        4,
    )
    services.start_campaign(campaign)
    run_queue()
    after = operator.get(page_url(campaign, "progress")).json()
    assert (after["status"], after["finished"], after["percent"], after["settled"]) == (
        "done",
        True,
        100,
        4,
    )
    assert [(c["status"], c["count"]) for c in after["counts"]] == [("accepted", 4)]
    assert after["funnel"][0] == {"key": "accepted", "count": 4, "percent": 100}
    # The counts and funnel as the page renders them, for the page's script to swap in.
    assert 'data-step="accepted" data-count="4"' in after["summary_html"]
    assert '<li data-status="accepted">' in after["summary_html"]


def test_a_campaign_being_sent_cannot_be_deleted(operator: Client) -> None:
    campaign = make_campaign()
    services.start_campaign(campaign)
    assert operator.get(page_url(campaign, "delete")).status_code == 403
    assert b"delete_selected" not in operator.get(LIST).content
    services.cancel_campaign(campaign)
    assert operator.get(page_url(campaign, "delete")).status_code == 200


def test_pages_need_the_view_permission(django_user_model: Any) -> None:
    campaign = make_campaign()
    nobody = staff_client(django_user_model, "nobody")
    for what in ("change", "progress", "export"):
        assert nobody.get(page_url(campaign, what)).status_code == 403
    viewer = staff_client(django_user_model, "viewer", "view_campaign")
    assert viewer.get(page_url(campaign, "progress")).status_code == 200


def test_export_streams_one_row_per_message(operator: Client, gateway: FakeGateway) -> None:
    gateway.accept()
    campaign = make_campaign(3)
    services.start_campaign(campaign)
    run_queue()
    Message.objects.filter(campaign=campaign, destination_addr="380500000002").update(
        status=Status.FAILED, error_name="=HYPERLINK(1)", error_message="Undeliverable"
    )
    response = operator.get(page_url(campaign, "export"))
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode()  # type: ignore[arg-type]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["recipient"] for r in rows] == ["+380500000000", "+380500000001", "+380500000002"]
    assert {r["status"] for r in rows[:2]} == {"accepted"}
    assert all(r["provider_message_id"].isdigit() for r in rows)
    assert all(r["created_at"] and r["submitted_at"] for r in rows)
    assert rows[2]["status"] == "failed"
    assert rows[2]["error_name"] == "'=HYPERLINK(1)"  # never run as a formula
    assert rows[2]["error_message"] == "Undeliverable"


# -- queries constant in the campaign's size ---------------------------------------------------


def queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
        if getattr(response, "streaming", False):
            b"".join(response.streaming_content)
    assert response.status_code == 200
    return len(captured)


def test_queries_do_not_grow_with_the_campaign(operator: Client) -> None:
    small = make_campaign(3)
    large = make_campaign(1200)
    services.create_campaign("Bad", ["x"] * 3 + ["+380500000001"], text="x")
    for what in ("change", "progress"):
        assert queries(operator, page_url(small, what)) == queries(operator, page_url(large, what))
    few = queries(operator, LIST)
    for n in range(10):
        make_campaign(2 + n)
    assert queries(operator, LIST) == few


def test_with_several_accounts_the_campaign_goes_through_the_chosen_one(
    operator: Client, settings: Any
) -> None:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "ACCOUNTS": {"outlet": {"API_KEY": "outlet-key-0a9b", "DEFAULT_SOURCE_ADDR": "Outlet"}},
    }
    first = preview(operator, account="outlet")
    assert "account" in first.context["form"].fields
    assert 'name="account"' in first.content.decode()  # offered on the page
    create(operator, first, launch="draft")
    campaign = Campaign.objects.get()
    assert campaign.account == "outlet"
    assert set(campaign.messages.values_list("account", flat=True)) == {"outlet"}


def test_with_one_account_no_account_is_offered(operator: Client) -> None:
    assert "account" not in preview(operator).context["form"].fields
