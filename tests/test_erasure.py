"""Exact, complete erasure (SPEC 13): ``whatsapp_purge --contact`` takes a whole number written any
way, says what it will erase and asks first (unless ``--yes``), and then leaves the number nowhere
the app stored it, found by the normalised number and never by a part of another.

The main test seeds the number, in several spellings, into every place the app stores data (through
the real paths where there is one: sends, the inbound endpoint, a campaign import, the admin), and
an unrelated number that contains its digits; erases; and searches a dump of the whole database.
"""

from __future__ import annotations

import io
import json
import logging
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from django_whatsapp import inbound, optout, retention, services
from django_whatsapp.models import (
    CampaignRejection,
    ConsentChange,
    Contact,
    InboundReport,
    Message,
    StatusEvent,
    Template,
)
from django_whatsapp.testing import MemoryGateway

pytestmark = pytest.mark.django_db

NUMBER = "380504440001"
NATIONAL = "504440001"
#: Every way the tests write the number.
SPELLINGS = (
    "380504440001",
    "+380504440001",
    "+380 (50) 444-00-01",
    "00380504440001",
    "050 444 00 01",
    "380-50-444-00-01",
)
#: Unrelated numbers and values that hold the number's digits: never touched.
CONTAINING = "4380504440001"  # an Austrian number
LONGER_VALUE = "13805044400012"
OTHER = "380671112233"


def spelled(text: str) -> list[str]:
    """Every place in ``text`` where the number is written, any way: its national digits with
    separators between them, with its country code or national prefix or neither, not inside a
    longer run of digits. Written here on its own, not with the code under test."""
    sep = r"[\s().\-/]*"
    digits = sep.join(NATIONAL)
    pattern = rf"(?<![\d+])(?:(?:\+|00)?{sep}3{sep}8{sep}0{sep}|0{sep})?{digits}(?!\d)"
    return [match.group() for match in re.finditer(pattern, text)]


def dump() -> str:
    """The whole database, every app, as dumpdata writes it."""
    out = io.StringIO()
    call_command("dumpdata", stdout=out)
    return out.getvalue()


def purge(*args: str) -> str:
    out = io.StringIO()
    call_command("whatsapp_purge", *args, stdout=out)
    return out.getvalue()


def post_inbound(client: Client, body: dict[str, Any]) -> Any:
    url = inbound.inbound_url()
    assert url is not None
    return client.post(urlsplit(url).path, json.dumps(body), content_type="application/json")


@pytest.fixture
def ua(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "DEFAULT_REGION": "UA"}


def seed_everywhere(client: Client, admin_client: Client, admin_user: Any) -> dict[str, Any]:
    """The number in every place the app stores data, and the unrelated ones beside it."""
    made: dict[str, Any] = {}
    # Messages to them (sent: with events), in several spellings.
    made["sent"] = services.send_text("+380 (50) 444-00-01", "Your order is ready")
    services.send_text("00380504440001", "Second message")
    services.send_text("050 444 00 01", "Third message")
    # Their messages to us: STOP (the opt-out, its history, the reports).
    for index, text in enumerate(["Hello", "STOP"]):
        response = post_inbound(
            client, {"message_id": 10 + index, "source_addr": SPELLINGS[index], "text": text}
        )
        assert response.status_code == 200
    # A report nobody could read, that names them.
    response = post_inbound(client, {"weird": {"caller": "+380 50 444 00 01"}})
    assert response.status_code == 202
    # Someone else writes about them.
    response = post_inbound(
        client, {"message_id": 20, "source_addr": OTHER, "text": "my friend is 050-444-00-01"}
    )
    assert response.status_code == 200
    # Other messages' own data about them: metadata keys and values, tags, text, template
    # parameters, an event payload.
    about = services.send_text(
        OTHER,
        "Your friend (050) 444 00 01 invited you",
        metadata={
            "referred_by": "+380 (50) 444-00-01",
            "380504440001": "a key that is the number",
            "nested": {"00380504440001": {"since": 2020}, "city": "Kyiv"},
            "people": ["380-50-444-00-01", OTHER],
            "unrelated": LONGER_VALUE,
        },
        tags=["friend-380504440001", "vip"],
    )
    StatusEvent.objects.create(
        message=about,
        status="sent",
        source="poll",
        payload={"echo": {"to": 380504440001, "from": "TestCo"}, "peer": CONTAINING},
    )
    template = Template.objects.create(
        name="referral", namespace="ns", body="{{1}} invited you", header_type="none"
    )
    services.send_template(OTHER, template, ["+380504440001"])
    # A campaign: their row is rejected (opted out), as written in the file.
    campaign = services.create_campaign("Sale", ["+380 (50) 444-00-01", CONTAINING], text="Sale!")
    assert CampaignRejection.objects.filter(campaign=campaign).count() == 1
    # The admin's log: the operator opts them in and out again; a note about another object.
    url = reverse("admin:django_whatsapp_conversation_opt_out", args=[NUMBER])
    assert admin_client.post(url, {"opt": "in"}).status_code == 302
    assert admin_client.post(url, {"opt": "out", "reason": "asked by phone"}).status_code == 302
    LogEntry.objects.create(
        user=admin_user,
        content_type=ContentType.objects.get_for_model(Message),
        object_id=str(made["sent"].pk),
        object_repr=str(made["sent"]),
        action_flag=CHANGE,
        change_message="Refreshed",
    )
    LogEntry.objects.create(
        user=admin_user,
        content_type=ContentType.objects.get_for_model(Template),
        object_id=str(template.pk),
        object_repr=str(template),
        action_flag=CHANGE,
        change_message="Sent a test to +380 50 444 00 01 and to +43 80504440001",
    )
    # The unrelated number that contains theirs: its messages, contact, report.
    made["unrelated"] = services.send_text(CONTAINING, "Hallo")
    optout.opt_out(CONTAINING, reason="keyword: STOPP")
    response = post_inbound(client, {"message_id": 30, "source_addr": CONTAINING, "text": "Hi"})
    assert response.status_code == 200
    made["about"] = about
    return made


def test_erasure_leaves_the_number_nowhere_and_touches_no_other_number(
    ua: None,
    whatsapp_gateway: MemoryGateway,
    client: Client,
    admin_client: Client,
    admin_user: Any,
) -> None:
    made = seed_everywhere(client, admin_client, admin_user)
    before = dump()
    for place in ("django_whatsapp.message", "django_whatsapp.inboundreport", "admin.logentry"):
        assert place in before
    assert len(spelled(before)) >= 20  # the number is in the dump, in many places and forms
    kept_before = {
        "messages": Message.objects.exclude(destination_addr=NUMBER).count(),
        "unrelated": Message.objects.filter(destination_addr=CONTAINING).count(),
    }

    output = purge("--contact", "050 444 00 01", "--yes", "--no-progress")

    assert "Erasing everything about +380504440001." in output
    after = dump()
    assert spelled(after) == [], spelled(after)
    for spelling in SPELLINGS[1:]:  # the bare digits are inside the unrelated number
        assert spelling not in after
    # Nothing of anyone else's went: the unrelated number, the other customer's messages...
    assert Message.objects.count() == kept_before["messages"]
    assert Message.objects.filter(destination_addr=CONTAINING).count() == kept_before["unrelated"]
    assert Contact.objects.get(number=CONTAINING).opted_out_at is not None
    assert InboundReport.objects.filter(sender=CONTAINING).count() == 1
    assert InboundReport.objects.filter(sender=OTHER).count() == 1
    assert LONGER_VALUE in after
    assert CONTAINING in after
    # ...and what was theirs in other people's data is gone, the rest of it kept.
    about = Message.objects.get(pk=made["about"].pk)
    assert about.metadata == {
        "nested": {"city": "Kyiv"},
        "people": [OTHER],
        "unrelated": LONGER_VALUE,
    }
    assert about.tags == ["vip"]
    assert about.text == "Your friend [erased] invited you"  # "(050) 444 00 01" all of it
    assert about.events.get(source="poll").payload == {
        "echo": {"from": "TestCo"},
        "peer": CONTAINING,
    }
    note = LogEntry.objects.get(content_type__model="template")
    assert note.change_message == "Sent a test to [erased] and to +43 80504440001"
    assert not Contact.objects.filter(number=NUMBER).exists()
    assert not ConsentChange.objects.filter(contact__number=NUMBER).exists()
    assert InboundReport.objects.get(sender=OTHER).body.count("[erased]") == 1


def test_a_kept_metadata_key_naming_the_number_fails_the_dump_search(
    whatsapp_gateway: MemoryGateway,
) -> None:
    """The dump search catches a key left behind (an erasure that dropped only values)."""
    services.send_text(OTHER, "x", metadata={"380504440001": "a key that is the number"})
    assert spelled(dump()) == ["380504440001"]
    retention.erase_contact(NUMBER)
    assert spelled(dump()) == []


def test_the_command_says_what_it_will_erase_and_asks_first(
    whatsapp_gateway: MemoryGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    services.send_text(NUMBER, "hi")
    services.send_text(OTHER, "x", metadata={"friend": NUMBER})
    asked: list[str] = []

    def answer(reply: str) -> None:
        def given(prompt: str) -> str:
            asked.append(prompt)
            return reply

        monkeypatch.setattr("builtins.input", given)

    answer("no")
    output = purge("--contact", "+380 50 444 00 01", "--no-progress")
    assert "This erases everything stored about +380504440001:" in output
    assert "to delete: 1 messages, 1 metadata entries, 1 status events." in output
    assert "to redact" not in output
    assert "Erasure cancelled: nothing was changed." in output
    assert "Type 'yes'" in asked[0]
    assert Message.objects.filter(destination_addr=NUMBER).count() == 1

    answer("yes")
    output = purge("--contact", "+380 50 444 00 01", "--no-progress")
    assert "Deleted: 1 messages, 1 metadata entries, 1 status events." in output
    assert not Message.objects.filter(destination_addr=NUMBER).exists()
    assert len(asked) == 2

    output = purge("--contact", NUMBER, "--noinput")
    assert "Nothing is stored about +380504440001." in output
    assert len(asked) == 2  # --noinput never asks


@pytest.mark.parametrize("fragment", ["50", "380 50", "+380 50 444", "0504440001"])
def test_a_part_of_a_number_is_refused_and_nothing_is_erased(
    whatsapp_gateway: MemoryGateway, fragment: str
) -> None:
    """No DEFAULT_REGION here: a national number is not a whole number either."""
    services.send_text(NUMBER, "hi")
    InboundReport.objects.create(method="POST", sender=OTHER, body='{"from": "380671150505"}')
    with pytest.raises(CommandError, match=r"a part of a number is never erased"):
        purge("--contact", fragment, "--yes")
    assert Message.objects.count() == 1
    assert InboundReport.objects.count() == 1


def test_the_service_itself_refuses_a_part_of_a_number(whatsapp_gateway: MemoryGateway) -> None:
    from django.core.exceptions import ValidationError

    services.send_text(NUMBER, "hi")
    with pytest.raises(ValidationError) as caught:
        retention.erase_contact("+380 50 444")
    assert caught.value.code == "fragment"
    assert caught.value.messages == [
        "+38050444 is only a part of a number (one that can only be dialled locally): an "
        "erasure takes a whole number."
    ]
    assert Message.objects.count() == 1


def test_only_the_exact_number_goes_however_many_contain_its_digits(
    whatsapp_gateway: MemoryGateway,
) -> None:
    """The issue's case: ``--contact 50`` deleted 722 reports of other senders. Now even the
    whole number takes nothing that merely contains it."""
    for index in range(5):
        InboundReport.objects.create(
            method="POST", sender=f"38050444000{index + 2}", body=f'{{"n": "{LONGER_VALUE}"}}'
        )
    CampaignRejection.objects.create(
        campaign=services.create_campaign("c", [OTHER], text="x"),
        line=2,
        value=LONGER_VALUE,
        reason="not a number",
    )
    counts = retention.erase_contact(NUMBER)
    assert counts == {}
    assert InboundReport.objects.count() == 5
    assert CampaignRejection.objects.count() == 1


def test_log_lines_hold_no_whole_number(
    ua: None,
    whatsapp_gateway: MemoryGateway,
    client: Client,
    caplog: pytest.LogCaptureFixture,
    settings: Any,
) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "SERVICE_WINDOW_POLICY": "warn"}
    with caplog.at_level(logging.DEBUG, logger="django_whatsapp"):
        post_inbound(client, {"message_id": 1, "source_addr": NUMBER, "text": "STOP"})
        optout.opt_in(NUMBER)
        services.send_text("+380 (50) 444-00-01", "hi")
        services.send_text(OTHER, "hi")  # the window is closed: a warning
    assert caplog.records
    assert "380*******01" in caplog.text
    assert spelled(caplog.text) == []
    assert NUMBER not in caplog.text
