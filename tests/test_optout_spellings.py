"""One number, one person (SPEC 13), as a property: after a number opts out written one way, a send
to it written any other way (``+``, ``00``, neither; spaces, dashes, dots, brackets; nationally
with DEFAULT_REGION) is refused on every send path, and nothing is requested for it: send_text,
send_media, send_template, send_bulk (inline and queued), create_campaign, and a queued send.

The memory gateway (``memory://``) records every request; the task framework's dummy backend
every task enqueued. Each example commits (inline bulk sends must) and cleans up after itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib.util import find_spec
from typing import Any

import phonenumbers
import pytest
from django.conf import settings as django_settings
from django.test import override_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_whatsapp import optout, services
from django_whatsapp.models import Campaign, CampaignRejection, Contact, Message, Template
from django_whatsapp.testing import MemoryGateway
from tests.examples import examples

if find_spec("django.tasks"):  # Django 6.0+
    from django.tasks import default_task_backend

    DUMMY = "django.tasks.backends.dummy.DummyBackend"
else:
    pytest.importorskip("django_tasks")
    from django_tasks import default_task_backend  # type: ignore[no-redef,unused-ignore]

    DUMMY = "django_tasks.backends.dummy.DummyBackend"

pytestmark = pytest.mark.django_db(transaction=True)

IMAGE = "https://cdn.example.com/a.jpg"
#: Someone who did not opt out, sent to beside them on the batch paths.
BYSTANDER = "380671112233"
#: Each region's example mobile number.
EXAMPLES = {
    region: phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    for region in ("UA", "DE", "GB", "FR", "US", "PL", "IT", "BR", "IN", "RU")
}
#: Regions whose national numbers start with a national prefix (0, 8): a national spelling
#: there can be no valid international number (see numbers.py on the others).
NATIONAL = ("UA", "DE", "GB", "FR", "RU")


def digits(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]


@st.composite
def spelling(draw: Any, region: str) -> tuple[str, bool]:
    """One way of writing the region's example number, and whether it is a national one."""
    number = EXAMPLES[region]
    forms = ["+", "00", ""] + (["national"] if region in NATIONAL else [])
    form = draw(st.sampled_from(forms))
    if form == "national":
        national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        body = re.sub(r"\D", "", national)
    else:
        body = digits(number)
    cuts = sorted(draw(st.sets(st.integers(1, len(body) - 1), max_size=5)))
    groups = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    bracket = draw(st.none() | st.integers(0, len(groups) - 1))
    if bracket is not None:
        groups[bracket] = f"({groups[bracket]})"
    seps = draw(
        st.lists(
            st.sampled_from(["", " ", "-", ".", " - ", "  ", "\u00a0", "/"]),
            min_size=len(groups) - 1,
            max_size=len(groups) - 1,
        )
    )
    text = groups[0] + "".join(sep + group for sep, group in zip(seps, groups[1:], strict=True))
    prefix = {"+": "+", "00": "00", "": "", "national": ""}[form]
    gap = draw(st.sampled_from(["", " "])) if prefix else ""
    pad = draw(st.sampled_from(["", " ", "\t"]))
    return f"{pad}{prefix}{gap}{text}{pad}", form == "national"


def refused_alone(message: Message) -> None:
    assert message.status == Message.Status.NOT_SENT
    assert message.error_name == optout.ERROR_NAME


def send_text(to: str, template: Template) -> None:
    refused_alone(services.send_text(to, "hi"))


def send_media(to: str, template: Template) -> None:
    refused_alone(services.send_media(to, IMAGE, "caption"))


def send_template(to: str, template: Template) -> None:
    refused_alone(services.send_template(to, template, ["Ann", "1"], IMAGE))


def queued_send(to: str, template: Template) -> None:
    refused_alone(services.send_text(to, "hi", enqueue=True))


def bulk(to: str, template: Template) -> None:
    result = services.send_bulk([to, BYSTANDER], text="hi", concurrency=2)
    [mine] = [m for m in result.messages if m.destination_addr != BYSTANDER]
    assert result.opted_out == [mine.destination_addr]
    refused_alone(mine)


def queued_bulk(to: str, template: Template) -> None:
    result = services.send_bulk([to, BYSTANDER], text="hi", enqueue=True)
    [mine] = [m for m in result.messages if m.destination_addr != BYSTANDER]
    assert result.opted_out == [mine.destination_addr]
    refused_alone(Message.objects.get(pk=mine.pk))


def campaign(to: str, template: Template) -> None:
    made = services.create_campaign("Sale", [to, BYSTANDER], text="hi")
    assert list(Message.objects.filter(campaign=made).values_list("destination_addr", flat=True))
    assert made.recipients_count == 1
    [rejected] = CampaignRejection.objects.filter(campaign=made)
    assert rejected.value == str(to)[:255]


PATHS: dict[str, Callable[[str, Template], None]] = {
    f.__name__: f
    for f in (send_text, send_media, send_template, queued_send, bulk, queued_bulk, campaign)
}


@hypothesis_settings(
    max_examples=examples(120),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_spelling_is_refused_after_an_opt_out_on_every_send_path(
    data: st.DataObject, whatsapp_gateway: MemoryGateway, template: Template
) -> None:
    region = data.draw(st.sampled_from(sorted(EXAMPLES)), label="region")
    opted, opted_national = data.draw(spelling(region), label="opted out as")
    sent, sent_national = data.draw(spelling(region), label="sent as")
    # The project's DEFAULT_REGION: the number's country when a spelling is national.
    choices = [region] if opted_national or sent_national else [None, region, "US", "DE"]
    default_region = data.draw(st.sampled_from(choices), label="DEFAULT_REGION")
    path = data.draw(st.sampled_from(sorted(PATHS)), label="path")
    conf = {**django_settings.DJANGO_WHATSAPP, "DEFAULT_REGION": default_region}
    requested = len(whatsapp_gateway.requests)
    with override_settings(DJANGO_WHATSAPP=conf, TASKS={"default": {"BACKEND": DUMMY}}):
        try:
            optout.opt_out(opted)
            assert optout.is_opted_out(sent)
            PATHS[path](sent, template)
            sent_to = [item.to for item in whatsapp_gateway.outbox[requested:]]
            assert digits(EXAMPLES[region]) not in sent_to
            assert set(sent_to) <= {BYSTANDER}
            # A queued path enqueues the bystander's message only.
            tasks = [job.args[0] for job in default_task_backend.results]  # type: ignore[attr-defined]
            bystander = Message.objects.filter(destination_addr=BYSTANDER)
            assert tasks in ([], list(bystander.values_list("pk", flat=True)))
        finally:
            default_task_backend.clear()  # type: ignore[attr-defined]
            Message.objects.all().delete()
            Campaign.objects.all().delete()
            Contact.objects.all().delete()
