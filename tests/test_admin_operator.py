"""What an operator meets in the console, and what it must say: an upload too large or a file
that cannot be read (a clear error, nothing kept, never a 500); a project whose task framework
cannot send campaigns (a form error, a check); duplicate and "send again to the failed"; the
message list by campaign and by error, exported as CSV, charted; the refusals in words (opted
out, cancelled, a campaign not running, an account paused or waiting) with what helps; compose's
warning while the number is typed; the sender that follows the account; contacts; the list's
sending actions asking first."""

from __future__ import annotations

import csv
import io
import re
import sys
from datetime import timedelta
from html import unescape
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.checks import Error
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_whatsapp import optout, services
from django_whatsapp.admin.actions import campaign_refusal
from django_whatsapp.checks import check_settings, task_framework_problem
from django_whatsapp.exceptions import CampaignNotRunning
from django_whatsapp.models import AccountState, Campaign, Contact, Message

from .conftest import FakeGateway
from .factories import make_draft

pytestmark = pytest.mark.django_db(transaction=True)

if find_spec("django.tasks"):  # Django 6.0+
    DUMMY = "django.tasks.backends.dummy.DummyBackend"
    IMMEDIATE = "django.tasks.backends.immediate.ImmediateBackend"
else:
    pytest.importorskip("django_tasks")
    DUMMY = "django_tasks.backends.dummy.DummyBackend"
    IMMEDIATE = "django_tasks.backends.immediate.ImmediateBackend"

ADD = "/admin/django_whatsapp/campaign/add/"
MESSAGES = "/admin/django_whatsapp/message/"
Status = Message.Status
AUDIENCE = "phone,name\n+380500000001,Ann\n+380500000002,Bob\n"


@pytest.fixture(autouse=True)
def framework(settings: Any, tmp_path: Path) -> None:
    settings.TASKS = {"default": {"BACKEND": DUMMY}}
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def operator(client: Client) -> Client:
    client.force_login(User.objects.create_superuser("operator", "op@example.com", "pw"))
    return client


def uploads(settings: Any) -> list[Path]:
    folder = Path(settings.MEDIA_ROOT) / "django_whatsapp" / "campaign_uploads"
    return sorted(folder.glob("*.csv")) if folder.exists() else []


def preview(client: Client, text: str = AUDIENCE, **data: Any) -> Any:
    fields = {"name": "Spring", "message_type": 1, "text": "Sale", "number_column": "phone"}
    upload = SimpleUploadedFile("audience.csv", text.encode(), content_type="text/csv")
    return client.post(ADD, {**fields, **data, "csv_file": upload, "_preview": "1"})


def create(client: Client, first: Any, **data: Any) -> Any:
    form = first.context["form"]
    fields = {name: value for name, value in form.data.items() if name != "csv_file"}
    fields.update({"upload": first.context["token"], "_create": "1", **data})
    return client.post(ADD, fields, follow=True)


def flashed(response: Any) -> str:
    return " | ".join(str(m) for m in response.context["messages"])


def page(campaign: Campaign, what: str = "change") -> str:
    return reverse(f"admin:django_whatsapp_campaign_{what}", args=[campaign.pk])


# -- the upload ---------------------------------------------------------------------------------


def test_an_upload_over_the_cap_is_refused_and_nothing_is_kept(
    operator: Client, settings: Any
) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CAMPAIGN_UPLOAD_MAX_BYTES": 2000}
    big = "phone,name\n" + "".join(f"+3805000{n:05d},Name {n}\n" for n in range(200))
    response = preview(operator, big)

    assert response.status_code == 200
    (error,) = response.context["form"].errors["csv_file"]
    assert "larger than 0.00190735 MB" in error or "CAMPAIGN_UPLOAD_MAX_BYTES" in error
    assert response.context["preview"] is None
    assert uploads(settings) == []
    assert Campaign.objects.count() == 0
    # Under the cap, the same form goes on.
    assert preview(operator).context["preview"] is not None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('phone,name\n+380500000001,"never closed\n+380500000002,Bob\n', "never closed"),
        ("phone," + ",".join(f"c{n}" for n in range(120)) + "\n+380500000001\n", "at most 100"),
        ("phone,name\n+380500000001," + "x" * 140_000 + "\n", "Line 2 of the CSV file has"),
    ],
    ids=["bad quoting", "too many columns", "an oversized field"],
)
def test_a_file_that_cannot_be_read_is_a_form_error_and_nothing_is_kept(
    operator: Client, settings: Any, text: str, says: str
) -> None:
    response = preview(operator, text)

    assert response.status_code == 200
    assert says in " ".join(response.context["form"].errors["csv_file"])
    assert uploads(settings) == []
    assert Campaign.objects.count() == 0


# -- a project whose task framework cannot send campaigns ---------------------------------------


def test_with_the_immediate_backend_a_campaign_is_never_sent_in_the_request(
    operator: Client, settings: Any, gateway: FakeGateway
) -> None:
    gateway.accept()
    settings.TASKS = {"default": {"BACKEND": IMMEDIATE}}
    first = preview(operator)
    assert "inside the web request" in first.content.decode()  # said before "Create"

    refused = create(operator, first, launch="now")

    assert "It cannot be sent here" in refused.context["form"].errors["launch"][0]
    assert Campaign.objects.count() == 0
    created = create(operator, first, launch="draft")
    campaign = Campaign.objects.get()
    started = operator.post(page(campaign, "start"), {"confirmed": "yes"}, follow=True)
    assert "Nothing was started" in flashed(started)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT
    assert gateway.sent_bodies() == []
    assert created.status_code == 200


def test_without_a_task_framework_a_form_error_and_a_system_check_error(
    operator: Client, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = preview(operator)
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "SEND_ASYNC": True}
    with monkeypatch.context() as patched:
        # The framework is missing (Django 5.2 without django-tasks): it cannot be imported.
        for name in ("django.tasks", "django_tasks"):
            patched.setitem(sys.modules, name, None)
        assert "need Django's task framework" in (task_framework_problem() or "")
        refused = create(operator, first, launch="now")
        errors = [m for m in check_settings() if m.id == "django_whatsapp.E020"]
    assert "need Django's task framework" in refused.context["form"].errors["launch"][0]
    assert Campaign.objects.count() == 0
    assert len(errors) == 1
    assert isinstance(errors[0], Error)
    assert "campaigns cannot be sent" in errors[0].msg
    assert "pip install django-tasks" in (errors[0].hint or "")


def test_the_check_is_quiet_where_the_framework_is_installed(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "SEND_ASYNC": True}
    assert [m for m in check_settings() if m.id == "django_whatsapp.E020"] == []


# -- duplicate, send again to the failed ---------------------------------------------------------


def test_duplicate_and_send_again_to_the_failed_make_drafts(operator: Client) -> None:
    campaign = services.create_campaign(
        "Promo", ["+380500000001", "+380500000002", "+380500000003"], text="Hi"
    )
    nothing = operator.post(page(campaign, "send_again"), follow=True)
    assert "nothing to send again" in flashed(nothing)
    Message.objects.filter(campaign=campaign, destination_addr="380500000002").update(
        status=Status.FAILED, attempts=1
    )
    html = operator.get(page(campaign)).content.decode()
    assert "Send again to the 1 that failed" in html

    again = operator.post(page(campaign, "send_again"), follow=True)
    copy = Campaign.objects.exclude(pk=campaign.pk).get()
    assert (copy.name, copy.status, copy.recipients_count) == ("Promo (again)", "draft", 1)
    assert again.redirect_chain[-1][0] == page(copy)
    assert "Promo (again) created as a draft: 1 recipient" in flashed(again)

    operator.post(page(campaign, "duplicate"))
    twin = Campaign.objects.get(name="Promo (copy)")
    assert (twin.recipients_count, twin.text) == (3, "Hi")
    assert operator.get(page(campaign, "duplicate")).status_code == 405


# -- the message list ----------------------------------------------------------------------------


def test_the_message_list_by_campaign_and_by_error(operator: Client) -> None:
    campaign = services.create_campaign("Spring", ["+380500000001", "+380500000002"], text="Hi")
    Message.objects.filter(campaign=campaign, destination_addr="380500000002").update(
        status=Status.NOT_SENT, error_name="Opted out"
    )
    make_draft(Status.FAILED, error_name="Internal server error", attempts=1)

    html = operator.get(MESSAGES).content.decode()
    assert "Campaign:" in html  # shown by campaign
    assert ">Spring</a>" in html
    assert "The customer opted out" in html  # and by error, in words
    by_campaign = operator.get(MESSAGES, {"campaign__id__exact": campaign.pk})
    assert by_campaign.context["cl"].result_count == 2
    by_error = operator.get(MESSAGES, {"error": "Opted out"})
    assert by_error.context["cl"].result_count == 1
    any_error = operator.get(MESSAGES, {"error": "*"})
    assert any_error.context["cl"].result_count == 2


def test_the_filtered_message_list_exports_as_streamed_csv(operator: Client) -> None:
    make_draft(Status.SEEN, destination_addr="380500000001", text="=HYPERLINK(1)", attempts=1)
    make_draft(Status.FAILED, destination_addr="380500000002", error_name="Failed", attempts=1)
    html = operator.get(MESSAGES, {"status__exact": "seen"}).content.decode()
    assert "export/?status__exact=seen" in html

    response = operator.get(f"{MESSAGES}export/", {"status__exact": "seen"})

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode()  # type: ignore[arg-type]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["recipient"], r["status"]) for r in rows] == [("+380500000001", "seen")]
    assert rows[0]["text"] == "'=HYPERLINK(1)"  # never run as a formula
    assert operator.get(f"{MESSAGES}export/", {"status__exact": "\x00"}).status_code == 400
    assert operator.get(f"{MESSAGES}export/", {"nonsense": "1"}).status_code == 400


def test_the_chart_counts_sends_deliveries_and_failures_per_hour(operator: Client) -> None:
    now = timezone.now()
    for status, attempts in [(Status.SEEN, 1), (Status.DELIVERED, 1), (Status.FAILED, 1)]:
        message = make_draft(status, attempts=attempts)
        Message.objects.filter(pk=message.pk).update(submitted_at=now)
    refused = make_draft(Status.NOT_SENT, error_name="Opted out")
    Message.objects.filter(pk=refused.pk).update(submitted_at=now - timedelta(hours=2))

    html = operator.get(MESSAGES).content.decode()
    chart = html.split('id="wa-chart"', 1)[1].split("</figure>", 1)[0]

    assert 'data-hourly="true"' in html
    counts = [
        (part.split('class="wa-chart-')[1].split('"')[0], part.split('data-count="')[1][0])
        for part in chart.split("<rect")[1:]
    ]
    # The hour of the refusal: nothing went to the gateway, one failed; then 3 sent, 2 delivered.
    assert counts == [
        ("sent", "0"),
        ("delivered", "0"),
        ("failed", "1"),
        ("sent", "3"),
        ("delivered", "2"),
        ("failed", "1"),
    ]


# -- refusals in words, with what helps ----------------------------------------------------------


def message_page(client: Client, message: Message) -> str:
    url = reverse("admin:django_whatsapp_message_change", args=[message.pk])
    return client.get(url).content.decode()


def test_a_message_to_a_customer_who_opted_out_says_so_and_offers_no_copy(
    operator: Client,
) -> None:
    contact, _changed = optout.opt_out("380671234567", reason="asked by phone")
    message = make_draft(Status.NOT_SENT, error_name="Opted out", error_message="Not sent: ...")

    html = message_page(operator, message)

    assert "The customer opted out" in html
    assert "asked by phone" in html
    assert "The gateway refused" not in html
    assert "The gateway said" not in html  # the gateway was never asked
    assert "Compose a copy" not in html
    assert 'name="retry"' not in html
    contact_url = reverse("admin:django_whatsapp_contact_change", args=[contact.pk])
    assert f'href="{contact_url}"' in html
    # Opted in since: it can be sent again.
    optout.opt_in("380671234567")
    assert "They have opted in again since" in message_page(operator, message)


def test_a_campaign_cancelled_and_a_message_of_a_campaign_not_running(operator: Client) -> None:
    cancelled = make_draft(Status.NOT_SENT, error_name="Campaign cancelled")
    html = message_page(operator, cancelled)
    assert "The campaign was cancelled before this message was sent" in html
    assert "Compose a copy" not in html

    campaign = services.create_campaign("Paused", ["+380500000001"], text="Hi")
    Campaign.objects.filter(pk=campaign.pk).update(
        status=Campaign.Status.PAUSED, pause_reason="the balance is empty"
    )
    campaign.refresh_from_db()
    said = campaign_refusal(CampaignNotRunning(campaign))
    assert "belongs to the campaign “Paused”, which is paused" in said
    assert "It was paused: the balance is empty." in said
    assert "Resume the campaign to send it." in said


def test_an_account_paused_or_waiting_is_said_on_the_campaign_list_and_page(
    operator: Client,
) -> None:
    campaign = services.create_campaign("Held", ["+380500000001"], text="Hi")
    Campaign.objects.filter(pk=campaign.pk).update(
        status=Campaign.Status.PAUSED, pause_reason="the balance is empty"
    )
    AccountState.objects.create(
        account="default", held_since=timezone.now(), held_reason="the balance is empty"
    )
    listed = operator.get("/admin/django_whatsapp/campaign/").content.decode()
    shown = operator.get(page(campaign)).content.decode()
    state = operator.get(page(campaign, "progress")).json()
    for html in (listed, shown):
        assert "Paused: the balance is empty (since " in html
    assert state["notice"].startswith("Paused: the balance is empty (since ")

    running = services.create_campaign("Waiting", ["+380500000002"], text="Hi")
    Campaign.objects.filter(pk=running.pk).update(status=Campaign.Status.RUNNING)
    AccountState.objects.filter(account="default").update(
        held_since=None,
        waiting_since=timezone.now(),
        next_try_at=timezone.now() + timedelta(minutes=3),
        wait_reason="the gateway does not answer",
    )
    html = operator.get(page(running)).content.decode()
    assert "Waiting for the gateway since " in html
    assert "next try " in html
    assert "the gateway does not answer" in html

    refused = make_draft(Status.NOT_SENT, error_code=3, error_name="Topup balance is required")
    AccountState.objects.filter(account="default").update(
        held_since=timezone.now(), held_reason="the balance is empty"
    )
    assert "Paused: the balance is empty" in message_page(operator, refused)


# -- compose -------------------------------------------------------------------------------------


def test_compose_warns_while_the_number_is_typed(operator: Client) -> None:
    optout.opt_out("380671234567", reason="asked by phone")
    url = reverse("admin:django_whatsapp_message_recipient_check")
    page_html = operator.get(reverse("admin:django_whatsapp_message_add")).content.decode()
    assert f'data-wa-check-url="{url}"' in page_html
    assert 'id="wa-recipient-warning"' in page_html

    warned = operator.get(url, {"number": "+380 67 123 45 67"}).json()
    fine = operator.get(url, {"number": "+380671234568"}).json()
    half = operator.get(url, {"number": "+38"}).json()

    assert len(warned["warnings"]) == 1
    assert "opted out on" in warned["warnings"][0]
    assert "asked by phone" in warned["warnings"][0]
    assert fine == half == {"warnings": []}


def test_with_several_accounts_the_sender_follows_the_account(
    operator: Client, settings: Any, gateway: FakeGateway
) -> None:
    gateway.accept()
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "DEFAULT_SOURCE_ADDR": "DemoShop",
        "ACCOUNTS": {
            "outlet": {
                "API_KEY": "outlet-key",
                "DEFAULT_SOURCE_ADDR": "Outlet",
                "BASE_URL": gateway.base_url,
            }
        },
    }
    add = reverse("admin:django_whatsapp_message_add")
    html = operator.get(add).content.decode()
    assert "data-wa-senders" in html
    assert "&quot;outlet&quot;: &quot;Outlet&quot;" in html

    operator.post(
        add,
        {
            "message_type": 1,
            "destination_addr": "+380671234567",
            "source_addr": "",
            "account": "outlet",
            "text": "Hi",
            "_send": "1",
        },
    )
    message = Message.objects.get()
    assert (message.account, message.source_addr) == ("outlet", "Outlet")
    assert "Account" in message_page(operator, message)


def test_with_one_account_no_account_row_or_developer_text(operator: Client) -> None:
    message = make_draft(Status.SEEN, attempts=1)
    html = message_page(operator, message)
    assert "DJANGO_WHATSAPP" not in html
    assert "field-account" not in html


# -- contacts ------------------------------------------------------------------------------------


def test_contacts_list_and_page(operator: Client) -> None:
    make_draft(Status.SEEN, destination_addr="380671234567", attempts=1)
    make_draft(Status.SEEN, destination_addr="380671234567", attempts=1)
    contact, _changed = optout.opt_out("380671234567", reason="asked by phone")
    Contact.objects.create(number="380671234568", name="Olena")

    listed = operator.get("/admin/django_whatsapp/contact/").content.decode()
    only_out = operator.get("/admin/django_whatsapp/contact/", {"opted_out": "yes"})
    page_url = reverse("admin:django_whatsapp_contact_change", args=[contact.pk])
    shown = operator.get(page_url).content.decode()

    assert "+380671234567" in listed
    assert "Olena" in listed
    assert 'data-opted-out="yes"' in listed
    assert 'data-opted-out="no"' in listed
    assert only_out.context["cl"].result_count == 1
    assert ">2</a>" in listed  # two messages, linking to them
    assert shown.count('<tr data-message="') == 2
    assert "asked by phone" in shown
    assert operator.get("/admin/django_whatsapp/contact/add/").status_code == 403
    assert operator.post(page_url, {"name": "x"}).status_code == 405

    # Opted in from its page, and back to it.
    back = operator.post(
        reverse("admin:django_whatsapp_conversation_opt_out", args=["380671234567"]),
        {"opt": "in", "next": page_url},
    )
    assert back["Location"] == page_url
    assert not optout.is_opted_out("380671234567")
    elsewhere = operator.post(
        reverse("admin:django_whatsapp_conversation_opt_out", args=["380671234567"]),
        {"opt": "out", "next": "https://evil.example/"},
    )
    assert elsewhere["Location"].endswith("/conversation/380671234567/")


# -- the sending actions ask first ---------------------------------------------------------------


def test_sending_the_selected_drafts_asks_first_with_the_numbers(
    operator: Client, gateway: FakeGateway
) -> None:
    gateway.accept()
    drafts = [make_draft(), make_draft()]
    done = make_draft(Status.SEEN, attempts=1)
    chosen = {
        "action": "send_drafts",
        "index": 0,
        "_selected_action": [m.pk for m in (*drafts, done)],
    }

    asked = operator.post(MESSAGES, chosen)

    html = asked.content.decode()
    assert 'data-going="2" data-skipped="1"' in html
    assert "2 drafts will be sent now" in html
    assert gateway.sent_bodies() == []
    sent = operator.post(MESSAGES, {**chosen, "post": "yes"}, follow=True)
    assert "2 drafts sent." in flashed(sent)
    assert len(gateway.sent_bodies()) == 2


def test_refusals_and_rejected_rows_read_in_the_operators_language(
    operator: Client, settings: Any
) -> None:
    optout.opt_out("380671234567", reason="asked by phone")
    message = make_draft(Status.NOT_SENT, error_name="Opted out", error_message="Not sent: ...")
    campaign = services.create_campaign("Mixed", ["+380500000001", "+380500000001", "x"], text="Hi")
    settings.LANGUAGE_CODE = "ru"  # the operator's language (no LocaleMiddleware here)

    refusal = message_page(operator, message)
    rows = operator.get(page(campaign)).content.decode()

    assert "Клиент отписался" in refusal
    assert "The customer opted out" not in refusal
    assert "Not sent: ..." not in refusal.split('class="wa-error-box"')[1].split("<details")[0]
    assert "Этот номер указан несколько раз: он получит одно сообщение." in rows
    assert "This number is listed more than once" not in rows
    assert "digits only" not in rows  # the bad number's reason, translated too


def test_conversations_leave_out_campaign_only_numbers_and_say_who_opted_out(
    operator: Client,
) -> None:
    campaign = services.create_campaign("Spring", ["+380500000001", "+380500000002"], text="Hi")
    assert campaign.recipients_count == 2
    # One recipient wrote back, and then opted out.
    Message.objects.create(
        destination_addr="380500000002",
        direction=Message.Direction.INBOUND,
        text="Thanks",
        status=Status.DELIVERED,
    )
    Contact.objects.create(number="380500000002", last_inbound_at=timezone.now())
    optout.opt_out("380500000002", reason="keyword: STOP")

    html = operator.get("/admin/django_whatsapp/conversation/").content.decode()

    assert 'data-number="380500000002"' in html
    assert 'data-number="380500000001"' not in html  # only ever got a campaign message
    row = html.split('data-number="380500000002"', 1)[1].split("</tr>", 1)[0]
    assert 'data-window="opted-out"' in row
    assert "Window open" not in row


def test_the_capped_upload_still_needs_the_csrf_token(operator: Client) -> None:
    """The upload's cap is installed before the body is read, outside Django's CSRF middleware:
    the admin view inside still checks the token."""
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(User.objects.get(username="operator"))
    upload = SimpleUploadedFile("audience.csv", AUDIENCE.encode(), content_type="text/csv")
    fields = {"name": "X", "message_type": 1, "text": "Hi", "number_column": "phone"}

    refused = guarded.post(ADD, {**fields, "csv_file": upload, "_preview": "1"})

    assert refused.status_code == 403
    assert Campaign.objects.count() == 0
    page_html = guarded.get(ADD)
    token = page_html.cookies["csrftoken"].value
    upload = SimpleUploadedFile("audience.csv", AUDIENCE.encode(), content_type="text/csv")
    fine = guarded.post(
        ADD, {**fields, "csv_file": upload, "_preview": "1", "csrfmiddlewaretoken": token}
    )
    assert fine.status_code == 200
    assert fine.context["preview"] is not None


def test_the_error_filter_offers_the_errors_in_words(operator: Client) -> None:
    make_draft(Status.NOT_SENT, error_name="Opted out")
    make_draft(Status.NOT_SENT, error_name="Something odd", attempts=1)

    html = operator.get(MESSAGES).content.decode()

    assert ">The customer opted out</a>" in html  # what the app knows, in words
    assert ">Something odd</a>" in html  # what it does not, as it was named
    assert "?error=Opted+out" in html


def test_a_campaign_whose_account_was_removed_opens_says_so_and_is_neither_started_nor_copied(
    operator: Client, settings: Any
) -> None:
    accounts = {"outlet": {"API_KEY": "outlet-key", "DEFAULT_SOURCE_ADDR": "Outlet"}}
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "ACCOUNTS": accounts}
    campaign = services.create_campaign("Promo", ["+380500000001"], text="Hi", account="outlet")
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "ACCOUNTS": {}}
    removed = "DJANGO_WHATSAPP['ACCOUNTS'] has no account 'outlet'. Known accounts: default."

    opened = operator.get(page(campaign))
    assert opened.status_code == 200
    [note] = re.findall(r'<p [^>]*id="wa-account-problem"[^>]*>(.*?)</p>', opened.content.decode())
    assert unescape(note) == f"This campaign's account cannot be used: {removed}"

    started = operator.post(page(campaign, "start"), {"confirmed": "1"}, follow=True)
    assert flashed(started) == f"Nothing was started: {removed}"
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT
    assert Message.objects.get(campaign=campaign).status == Status.DRAFT

    copied = operator.post(page(campaign, "duplicate"), follow=True)
    assert flashed(copied) == f"No copy was made: {removed}"
    assert Campaign.objects.count() == 1


def test_a_campaign_page_takes_only_get_and_names_an_unknown_campaign(operator: Client) -> None:
    campaign = services.create_campaign("Promo", ["+380500000001"], text="Hi")
    assert operator.post(page(campaign)).status_code == 405
    missing = operator.get(reverse("admin:django_whatsapp_campaign_change", args=[campaign.pk + 1]))
    assert missing.status_code == 404


def test_the_export_refuses_a_number_beyond_any_column_and_those_who_may_not_view(
    operator: Client, django_user_model: Any
) -> None:
    from .factories import staff_client

    make_draft(Status.SEEN, destination_addr="380500000001", attempts=1)
    beyond = operator.get(f"{MESSAGES}export/", {"attempts": "9" * 25})
    assert beyond.status_code == 400
    assert beyond.content.decode() == "attempts is not a number this list holds."
    outsider = staff_client(django_user_model, "outsider")  # staff, no message permission
    assert outsider.get(f"{MESSAGES}export/").status_code == 403
    assert outsider.get(f"{MESSAGES}recipient-check/", {"number": "+380500000001"}).status_code == (
        403
    )


def test_a_campaign_message_page_links_to_its_campaign(operator: Client) -> None:
    campaign = services.create_campaign("Spring <sale>", ["+380500000001"], text="Hi")
    Message.objects.filter(campaign=campaign).update(status=Status.SEEN, attempts=1)
    message = Message.objects.get(campaign=campaign)
    html = operator.get(reverse("admin:django_whatsapp_message_change", args=[message.pk]))
    assert f'<a href="{page(campaign)}">Spring &lt;sale&gt;</a>' in html.content.decode()
    alone = make_draft(Status.SEEN, destination_addr="380500000002", attempts=1)
    html = operator.get(reverse("admin:django_whatsapp_message_change", args=[alone.pk]))
    assert page(campaign) not in html.content.decode()


def test_an_image_campaign_from_the_form_and_its_caption_errors_on_the_caption(
    operator: Client, settings: Any
) -> None:
    image = {"message_type": 2, "file_url": "https://cdn.example.com/sale.png"}
    too_long = preview(operator, **image, caption="x" * 4097)
    assert too_long.status_code == 200
    errors = too_long.context["form"].errors
    assert set(errors) == {"caption"}, errors
    assert "4096" in " ".join(errors["caption"])
    assert Campaign.objects.count() == 0

    first = preview(operator, **image, caption="Spring sale")
    created = create(operator, first)
    campaign = Campaign.objects.get()
    assert (campaign.message_type, campaign.file_url, campaign.text) == (
        Message.MessageType.MEDIA,
        "https://cdn.example.com/sale.png",
        "Spring sale",
    )
    assert campaign.recipients_count == 2
    assert created.redirect_chain[-1][0] == page(campaign)


def test_sending_hours_and_an_expiry_from_the_form_and_on_the_campaigns_page(
    operator: Client,
) -> None:
    first = preview(operator)
    assert first.status_code == 200
    # One end of the hours without the other, an end that is no time, an expiry out of range.
    for data, field, error in (
        ({"hours_start": "09:00"}, "hours_end", "Give both ends of the sending hours, or neither."),
        ({"hours_end": "20:00"}, "hours_start", "Give both ends of the sending hours, or neither."),
        ({"hours_start": "9 am", "hours_end": "20:00"}, "hours_start", "Enter a valid time."),
        ({"hours_start": "09:00", "hours_end": "09:00"}, "hours_start", "must not start where"),
        ({"expires_in_hours": "0"}, "expires_in_hours", "greater than or equal to 1"),
        ({"expires_in_hours": "721"}, "expires_in_hours", "less than or equal to 720"),
    ):
        refused = create(operator, first, **data)
        assert error in " ".join(refused.context["form"].errors[field]), (data, refused)
        assert Campaign.objects.count() == 0

    before = timezone.now()
    created = create(operator, first, hours_start="09:00", hours_end="20:00", expires_in_hours="12")
    campaign = Campaign.objects.get()
    assert (str(campaign.sending_hours_start), str(campaign.sending_hours_end)) == (
        "09:00:00",
        "20:00:00",
    )
    assert campaign.expires_at is not None
    assert timedelta(hours=12) <= campaign.expires_at - before <= timedelta(hours=12, minutes=1)
    assert set(Message.objects.filter(campaign=campaign).values_list("expires_at", flat=True)) == {
        campaign.expires_at
    }
    [limits] = re.findall(r'<p id="wa-campaign-limits">(.*?)</p>', created.content.decode())
    assert unescape(limits).startswith(
        "Sending hours: 09:00-20:00, in each recipient's own time. Messages not sent by "
    )
    assert unescape(limits).endswith(" expire.")
