"""The management commands, through call_command against the fake gateway."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from django_whatsapp import signals
from django_whatsapp.management.commands.whatsapp_resync import parse_since
from django_whatsapp.models import Message, Template
from tests.conftest import STATUS_PATH, FakeGateway

pytestmark = pytest.mark.django_db

TO = "+380 50 123 45 67"
IMAGE = "https://cdn.example.com/img/photo.png"


@pytest.fixture(autouse=True)
def no_retries(settings: Any) -> None:
    # The commands build their client from settings; a retry would really sleep.
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "MAX_RETRIES": 0}


def run(name: str, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def send(*args: str) -> str:
    return run("whatsapp_send", *args)[0]


def refused(name: str, *args: str) -> str:
    with pytest.raises(CommandError) as caught:
        run(name, *args)
    return str(caught.value)


# -- whatsapp_send ----------------------------------------------------------------------------


def test_send_text(gateway: FakeGateway) -> None:
    gateway.accept()
    out = send("--to", TO, "--text", "Hello from the shell")
    message = Message.objects.get()
    assert out == f"Message {message.pk} to +380501234567: accepted, provider id 1001.\n"
    [body] = gateway.sent_bodies()
    assert body["text"] == "Hello from the shell"
    assert body["source_addr"] == "TestCo"
    assert body["destination_addr"] == 380501234567


def test_send_image_with_a_caption_and_a_sender(gateway: FakeGateway) -> None:
    gateway.accept()
    out = send("--to", TO, "--image", IMAGE, "--caption", "Look", "--from", "Shop")
    assert "accepted, provider id 1001." in out
    [body] = gateway.sent_bodies()
    assert (body["message_type"], body["file_url"], body["text"]) == (2, IMAGE, "Look")
    assert body["source_addr"] == "Shop"


def test_send_template(gateway: FakeGateway, template: Template) -> None:
    gateway.accept()
    out = send(
        "--to", TO, "--template", "order_ready", "--param", "Ann", "--param", "42",
        "--header", IMAGE,
    )  # fmt: skip
    assert "accepted, provider id 1001." in out
    [body] = gateway.sent_bodies()
    assert body["template_name"] == "order_ready"
    components = json.loads(body["template_params"])["template"]["components"]
    assert components[0]["parameters"][0]["image"]["link"] == IMAGE
    assert [p["text"] for p in components[1]["parameters"]] == ["Ann", "42"]
    assert Message.objects.get().template_params == {"body": ["Ann", "42"], "header": IMAGE}


@pytest.mark.parametrize(
    ("args", "option", "words"),
    [
        (["--to", "abc", "--text", "hi"], "--to", "digits only"),
        (["--to", "1" * 21, "--text", "hi"], "--to", "at most 20"),
        (["--to", TO, "--text", ""], "--text", "Enter the message text"),
        (["--to", TO, "--text", "x" * 4097], "--text", "at most 4096"),
        (["--to", TO, "--text", "hi", "--from", "S" * 21], "--from", "at most 20"),
        (["--to", TO, "--image", "https://cdn.example.com/a.gif"], "--image", ".png"),
        (["--to", TO, "--image", "ftp://cdn.example.com/a.png"], "--image", "http"),
        (["--to", TO, "--image", IMAGE, "--caption", "x" * 4097], "--caption", "4096"),
        (["--to", TO, "--template", "nope"], "--template", "no template named nope"),
        (["--to", TO, "--template", "order_ready", "--header", IMAGE], "--param", "2 parameters"),
        (
            ["--to", TO, "--template", "order_ready", "--param", "A", "--param", "B"],
            "--header",
            "needs a header",
        ),
    ],
)
def test_send_refuses_invalid_input_naming_the_option(
    gateway: FakeGateway, template: Template, args: list[str], option: str, words: str
) -> None:
    gateway.accept()
    error = refused("whatsapp_send", *args)
    assert error.startswith("Nothing was sent. ")
    assert f"{option}: " in error
    assert words in error
    assert gateway.requests == []
    assert Message.objects.count() == 0


def test_send_reports_every_bad_option(gateway: FakeGateway) -> None:
    error = refused("whatsapp_send", "--to", "abc", "--text", "", "--from", "S" * 21)
    assert all(f"{option}: " in error for option in ("--to", "--text", "--from"))
    assert gateway.requests == []


def test_send_without_a_sender_names_the_setting(gateway: FakeGateway, settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "DEFAULT_SOURCE_ADDR": None}
    error = refused("whatsapp_send", "--to", TO, "--text", "hi")
    assert "--from: " in error
    assert "DEFAULT_SOURCE_ADDR" in error


def test_send_without_an_api_key(gateway: FakeGateway, settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "API_KEY": None}
    error = refused("whatsapp_send", "--to", TO, "--text", "hi")
    assert "API_KEY" in error
    assert Message.objects.count() == 0


def test_send_vetoed_by_a_message_sending_receiver(gateway: FakeGateway) -> None:
    def veto(sender: Any, **kwargs: Any) -> None:
        raise ValidationError("Quiet hours: nothing goes out before 9:00.")

    signals.message_sending.connect(veto, weak=False)
    try:
        error = refused("whatsapp_send", "--to", TO, "--text", "hi")
    finally:
        signals.message_sending.disconnect(veto)
    assert error == "Nothing was sent. Quiet hours: nothing goes out before 9:00."
    assert gateway.requests == []
    assert Message.objects.get().status == "not_sent"


def test_send_refused_by_the_gateway(gateway: FakeGateway) -> None:
    gateway.answer(
        {"name": "Topup balance is required", "message": "User balance is empty", "code": 3},
        402,
    )
    error = refused("whatsapp_send", "--to", TO, "--text", "hi")
    message = Message.objects.get()
    assert message.status == "not_sent"
    assert error == (
        f"Message {message.pk} to +380501234567: not_sent: "
        "Topup balance is required: User balance is empty"
    )


def test_send_with_no_answer(gateway: FakeGateway) -> None:
    gateway.answer("<html>oops</html>", 200)
    error = refused("whatsapp_send", "--to", TO, "--text", "hi")
    assert Message.objects.get().status == "unknown"
    assert "Do not send it again" in error


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--to", TO, "--text", "hi", "--image", IMAGE], "not allowed with argument"),
        (["--to", TO, "--text", "hi", "--template", "t"], "not allowed with argument"),
        (["--to", TO], "one of the arguments --text --image --template is required"),
        (["--text", "hi"], "the following arguments are required: --to"),
        (["--to", TO, "--text", "hi", "--caption", "c"], "--caption goes with --image"),
        (
            ["--to", TO, "--text", "hi", "--param", "p"],
            "--param, --header and --language go with --template",
        ),
        (["--to", TO, "--image", IMAGE, "--header", IMAGE], "--header and --language go with"),
    ],
)
def test_send_options_that_do_not_go_together(
    gateway: FakeGateway, args: list[str], words: str
) -> None:
    assert words in refused("whatsapp_send", *args)
    assert gateway.requests == []
    assert Message.objects.count() == 0


# -- whatsapp_resync --------------------------------------------------------------------------


def message(status: str, provider_message_id: int | None, **fields: Any) -> Message:
    return Message.objects.create(
        source_addr="TestCo",
        destination_addr="380501234567",
        text="hi",
        status=status,
        provider_message_id=provider_message_id,
        **fields,
    )


def polled_ids(gateway: FakeGateway) -> list[int]:
    return [json.loads(r.get_data())["message_id"] for r in gateway.requests]


@pytest.fixture
def messages(db: Any) -> dict[str, Message]:
    """Three messages to poll, and three that must not be polled."""
    return {
        "accepted": message("accepted", 1001),
        "sent": message("sent", 1002),
        "delivered": message("delivered", 1003),
        "failed": message("failed", 1004),
        "not_sent": message("not_sent", None),
        "unknown": message("unknown", None),
    }


def test_resync_polls_what_is_not_final(gateway: FakeGateway, messages: dict[str, Message]) -> None:
    gateway.status(1001, 1)
    gateway.status(1002, 7)
    gateway.status(1003, 1)
    out, err = run("whatsapp_resync")
    a, s, d = messages["accepted"].pk, messages["sent"].pk, messages["delivered"].pk
    assert out.splitlines() == [
        f"[1/3] message {a}: accepted -> delivered",
        f"[2/3] message {s}: sent -> seen",
        f"[3/3] message {d}: delivered (unchanged)",
        "Polled 3: 2 changed, 1 unchanged, 0 failed.",
    ]
    assert err == ""
    assert polled_ids(gateway) == [1001, 1002, 1003]
    statuses = dict(Message.objects.values_list("provider_message_id", "status"))
    assert statuses[1001] == "delivered"
    assert statuses[1002] == "seen"
    assert messages["delivered"].events.get().source == "poll"


def test_resync_counts_a_failure_and_goes_on(
    gateway: FakeGateway, messages: dict[str, Message]
) -> None:
    gateway.status(1001, 0)
    gateway.answer(
        {"name": "Internal server error", "message": "oops", "code": 2, "status": 500},
        500,
        path=STATUS_PATH,
    )  # every other id: the gateway fails
    out, err = run("whatsapp_resync")
    assert polled_ids(gateway) == [1001, 1002, 1003]
    lines = out.splitlines()
    assert lines[0] == f"[1/3] message {messages['accepted'].pk}: accepted -> sent"
    assert lines[-1] == "Polled 3: 1 changed, 0 unchanged, 2 failed."
    assert err.splitlines() == [
        f"[2/3] message {messages['sent'].pk}: failed: Internal server error: oops "
        "(code 2, status 500)",
        f"[3/3] message {messages['delivered'].pk}: failed: Internal server error: oops "
        "(code 2, status 500)",
    ]
    assert Message.objects.get(pk=messages["sent"].pk).status == "sent"


def test_resync_counts_a_report_about_another_message_as_failed(gateway: FakeGateway) -> None:
    target = message("accepted", 1001)
    gateway.answer({"message_id": 999, "status": 1}, path=STATUS_PATH)
    out, err = run("whatsapp_resync")
    assert out.splitlines() == ["Polled 1: 0 changed, 0 unchanged, 1 failed."]
    assert err.startswith(f"[1/1] message {target.pk}: failed: ")
    assert Message.objects.get(pk=target.pk).status == "accepted"


def test_resync_ids(gateway: FakeGateway, messages: dict[str, Message]) -> None:
    gateway.status(1003, 7)
    ids = [messages["delivered"].pk, messages["failed"].pk, messages["unknown"].pk]
    out, _err = run("whatsapp_resync", "--ids", *map(str, ids))
    assert polled_ids(gateway) == [1003]
    assert out.splitlines()[-1] == "Polled 1: 1 changed, 0 unchanged, 0 failed."


def test_resync_since(gateway: FakeGateway, messages: dict[str, Message]) -> None:
    old = timezone.now() - timedelta(days=3)
    Message.objects.filter(pk__in=[messages["accepted"].pk, messages["sent"].pk]).update(
        created_at=old
    )
    gateway.status(1003, 1)
    out, _err = run("whatsapp_resync", "--since", "2d")
    assert polled_ids(gateway) == [1003]
    assert out.splitlines()[-1] == "Polled 1: 0 changed, 1 unchanged, 0 failed."
    gateway.server.clear_log()
    gateway.status(1001, 1)
    gateway.status(1002, 1)
    run("whatsapp_resync", "--since", "4d")
    assert polled_ids(gateway) == [1001, 1002, 1003]


def test_resync_limit(gateway: FakeGateway, messages: dict[str, Message]) -> None:
    gateway.status(1001, 1)
    gateway.status(1002, 0)
    out, _err = run("whatsapp_resync", "--limit", "2")
    assert polled_ids(gateway) == [1001, 1002]
    assert out.splitlines()[-1] == "Polled 2: 1 changed, 1 unchanged, 0 failed."


def test_resync_dry_run_polls_nothing(gateway: FakeGateway, messages: dict[str, Message]) -> None:
    out, _err = run("whatsapp_resync", "--dry-run", "--limit", "2")
    assert gateway.requests == []
    a, s = messages["accepted"].pk, messages["sent"].pk
    assert out.splitlines() == [
        f"would poll message {a} (provider id 1001, accepted)",
        f"would poll message {s} (provider id 1002, sent)",
        "Dry run: 2 message(s) would be polled.",
    ]
    assert Message.objects.get(pk=a).events.count() == 0


def test_resync_with_nothing_to_do(gateway: FakeGateway) -> None:
    message("failed", 1004)
    out, _err = run("whatsapp_resync")
    assert out == "Polled 0: 0 changed, 0 unchanged, 0 failed.\n"
    assert gateway.requests == []


@pytest.mark.parametrize("since", ["", "2", "d", "2 days", "-2d", "2y", "1.5h"])
def test_resync_refuses_a_bad_since(gateway: FakeGateway, since: str) -> None:
    assert "is not a duration" in refused("whatsapp_resync", f"--since={since}")
    assert gateway.requests == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--limit", "0"], "--limit must be at least 1"),
        (["--limit", "-3"], "--limit must be at least 1"),
        (["--limit", "many"], "invalid int value"),
        (["--ids", "one"], "invalid int value"),
    ],
)
def test_resync_refuses_bad_options(gateway: FakeGateway, args: list[str], words: str) -> None:
    assert words in refused("whatsapp_resync", *args)
    assert gateway.requests == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("12h", timedelta(hours=12)),
        ("2d", timedelta(days=2)),
        (" 1 w ", timedelta(weeks=1)),
        ("0d", timedelta(0)),
    ],
)
def test_parse_since(value: str, expected: timedelta) -> None:
    assert parse_since(value) == expected


@pytest.mark.django_db
def test_send_template_by_name_and_language(gateway: FakeGateway, template: Template) -> None:
    gateway.accept()
    Template.objects.create(
        name=template.name, namespace="ns", language_code="uk", body="Привіт {{1}}"
    )
    out = io.StringIO()
    call_command(
        "whatsapp_send",
        "--to",
        "+380631234567",
        "--template",
        template.name,
        "--language",
        "uk",
        "--param",
        "Оля",
        stdout=out,
    )
    body = json.loads(gateway.sent_bodies()[0]["template_params"])
    assert body["template"]["language"]["code"] == "uk"
    assert "accepted" in out.getvalue()


@pytest.mark.django_db
def test_send_template_in_a_missing_language_is_a_command_error(
    gateway: FakeGateway, template: Template
) -> None:
    with pytest.raises(CommandError, match="no template 'order_ready' in language 'fr'"):
        call_command(
            "whatsapp_send",
            "--to",
            "380631234567",
            "--template",
            "order_ready",
            "--language",
            "fr",
            "--param",
            "a",
            "--param",
            "b",
        )
    assert gateway.requests == []


@pytest.mark.django_db
def test_language_without_template_is_a_command_error(gateway: FakeGateway) -> None:
    with pytest.raises(CommandError, match="--language go with --template"):
        call_command("whatsapp_send", "--to", "380631234567", "--text", "hi", "--language", "uk")
