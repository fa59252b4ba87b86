"""``manage.py whatsapp_campaign``: create from a CSV file, start / pause / resume / cancel, status
with a progress bar on a terminal; user errors are CommandErrors that say what is wrong."""

from __future__ import annotations

import io
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from django_whatsapp.models import Campaign, Message, Template
from tests.conftest import FakeGateway

pytestmark = pytest.mark.django_db(transaction=True)

if find_spec("django.tasks"):  # Django 6.0+
    from django.tasks import default_task_backend

    DUMMY = "django.tasks.backends.dummy.DummyBackend"
else:
    pytest.importorskip("django_tasks")
    from django_tasks import default_task_backend  # type: ignore[no-redef,unused-ignore]

    DUMMY = "django_tasks.backends.dummy.DummyBackend"


@pytest.fixture(autouse=True)
def framework(settings: Any, gateway: FakeGateway) -> None:
    settings.TASKS = {"default": {"BACKEND": DUMMY}}
    default_task_backend.clear()  # type: ignore[attr-defined]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(*args: str, stdout: io.StringIO | None = None) -> str:
    out = stdout or io.StringIO()
    call_command("whatsapp_campaign", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def audience(tmp_path: Path) -> Path:
    path = tmp_path / "audience.csv"
    path.write_text(
        "\ufeffphone,name,order\n"
        "+380500000001,Ann,A-1\n"
        "oops,Bob,B-2\n"
        "+380500000003,Cy,C-3\n"
        "+380500000001,Ann,A-1\n",
        encoding="utf-8",
    )
    return path


def test_create_from_csv_with_template_parameters_and_start(
    audience: Path, template: Template
) -> None:
    output = run(
        "create",
        "--name",
        "Orders",
        "--template",
        "order_ready",
        "--header",
        "https://cdn.example.com/h.png",
        "--csv",
        str(audience),
        "--number-column",
        "phone",
        "--param-column",
        "name",
        "--param-column",
        "order",
        "--start",
    )
    campaign = Campaign.objects.get()
    assert (
        f"Campaign {campaign.pk} (Orders) created: 2 recipients, 1 rejected rows, 1 dup" in output
    )
    assert "line 3: 'oops':" in output
    assert f"Campaign {campaign.pk} is running." in output
    assert campaign.status == Campaign.Status.RUNNING
    params = Message.objects.get(destination_addr="380500000003").template_params
    assert params["body"] == ["Cy", "C-3"]
    assert {r.task.name for r in default_task_backend.results} == {  # type: ignore[attr-defined]
        "send_campaign_chunk",
        "campaign_tick",
    }


def test_create_with_send_at_schedules_it(audience: Path) -> None:
    output = run(
        "create",
        "--name",
        "Later",
        "--text",
        "Hi",
        "--csv",
        str(audience),
        "--number-column",
        "phone",
        "--start",
        "--send-at",
        "2099-01-01T09:00:00+00:00",
    )
    campaign = Campaign.objects.get()
    assert campaign.status == Campaign.Status.SCHEDULED
    assert "is scheduled for 2099-01-01T09:00:00+00:00" in output


def test_status_pause_resume_cancel(audience: Path) -> None:
    run("create", "--name", "S", "--text", "Hi", "--csv", str(audience), "--number-column", "phone")
    campaign = Campaign.objects.get()
    output = run("status", str(campaign.pk))
    assert f"Campaign {campaign.pk} (S): draft" in output
    assert "draft      2" in output
    assert "0/2 settled (0.0%)" in output
    assert "rejected rows at import: 1" in output
    assert "is running" in run("start", str(campaign.pk))
    assert "is paused" in run("pause", str(campaign.pk))
    assert "is running" in run("resume", str(campaign.pk))
    assert "is cancelled" in run("cancel", str(campaign.pk))
    assert "not_sent   2" in run("status", str(campaign.pk))
    with pytest.raises(CommandError, match="cancelled: it cannot be started"):
        run("start", str(campaign.pk))


def test_status_watch_draws_a_progress_bar_on_a_terminal(audience: Path) -> None:
    run("create", "--name", "W", "--text", "Hi", "--csv", str(audience), "--number-column", "phone")
    campaign = Campaign.objects.get()
    run("cancel", str(campaign.pk))
    output = run("status", str(campaign.pk), "--watch", stdout=Terminal())
    assert "\r[" in output
    assert "2/2" in output
    assert output.rstrip().endswith(f"Campaign {campaign.pk} is cancelled.")
    # Not a terminal: no bar.
    assert "\r[" not in run("status", str(campaign.pk), "--watch")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["start", "999"], "There is no campaign 999"),
        (["create", "--name", "X", "--text", "Hi", "--csv", "/nonexistent.csv"], "--csv"),
        (["create", "--name", "X", "--text", "Hi", "--csv", "AUDIENCE"], "no column number"),
        (
            ["create", "--name", "X", "--text", "Hi", "--csv", "AUDIENCE", "--send-at", "soon"],
            "--send-at 'soon' is not an ISO 8601",
        ),
        (
            [
                "create",
                "--name",
                "X",
                "--text",
                "",
                "--csv",
                "AUDIENCE",
                "--number-column",
                "phone",
            ],
            "text",
        ),
    ],
)
def test_user_errors_say_what_is_wrong(audience: Path, args: list[str], message: str) -> None:
    args = [str(audience) if a == "AUDIENCE" else a for a in args]
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert Campaign.objects.count() == 0


def test_a_file_that_is_not_utf8_is_a_command_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"number,name\n+380500000001,Jos\xe9\n")
    with pytest.raises(CommandError, match="not UTF-8"):
        run("create", "--name", "X", "--text", "Hi", "--csv", str(path))


def test_create_an_image_campaign(audience: Path) -> None:
    output = run(
        "create",
        "--name",
        "Pictures",
        "--image",
        "https://cdn.example.com/sale.png",
        "--caption",
        "Sale",
        "--csv",
        str(audience),
        "--number-column",
        "phone",
    )
    campaign = Campaign.objects.get()
    assert "2 recipients" in output
    assert (campaign.file_url, campaign.text) == ("https://cdn.example.com/sale.png", "Sale")
    assert set(Message.objects.values_list("message_type", flat=True)) == {2}


def test_a_campaign_whose_account_was_removed_is_neither_started_nor_resumed(
    settings: Any,
) -> None:
    from django_whatsapp import services

    accounts = {"outlet": {"API_KEY": "outlet-key", "DEFAULT_SOURCE_ADDR": "Outlet"}}
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "ACCOUNTS": accounts}
    draft = services.create_campaign("Draft", ["+380500000001"], text="Hi", account="outlet")
    paused = services.create_campaign("Paused", ["+380500000002"], text="Hi", account="outlet")
    services.pause_campaign(services.start_campaign(paused))
    default_task_backend.clear()  # type: ignore[attr-defined]
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "ACCOUNTS": {}}
    removed = "DJANGO_WHATSAPP['ACCOUNTS'] has no account 'outlet'. Known accounts: default."

    for campaign, action in ((draft, "start"), (paused, "resume")):
        with pytest.raises(CommandError) as refused:
            run(action, str(campaign.pk))
        assert str(refused.value) == removed
    draft.refresh_from_db()
    paused.refresh_from_db()
    assert (draft.status, paused.status) == (Campaign.Status.DRAFT, Campaign.Status.PAUSED)
    assert set(Message.objects.values_list("status", flat=True)) <= {"draft", "queued"}
    assert list(default_task_backend.results) == []  # type: ignore[attr-defined]
