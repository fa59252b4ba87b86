"""Edges no other test reached: the template list's test link and its deactivate action, an
OPTIONS request to the inbound URL, polling only messages the gateway knows, refusing a negative
age for stale sends, and the shared back-off's slot when its pause is interrupted."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.urls import reverse

from django_whatsapp import inbound, services
from django_whatsapp.client import SharedBackoff
from django_whatsapp.models import InboundReport, Message, Template
from tests.conftest import FakeGateway
from tests.factories import make_draft
from tests.waiting import wait_for_event

pytestmark = pytest.mark.django_db

TEMPLATES = reverse("admin:django_whatsapp_template_changelist")


def template(name: str, *, active: bool) -> Template:
    return Template.objects.create(
        name=name, namespace="ns", language_code="en", body="Hello {{1}}", is_active=active
    )


# -- the template list ---------------------------------------------------------------------------


def test_only_active_templates_offer_a_test_send(admin_client: Client) -> None:
    active = template("order_ready", active=True)
    template("old_offer", active=False)

    html = admin_client.get(TEMPLATES).content.decode()

    assert html.count('class="wa-send-test"') == 1
    assert f"template={active.pk}" in html


def test_the_deactivate_action_deactivates_the_selected_and_counts_them(
    admin_client: Client,
) -> None:
    chosen = [template("a", active=True), template("b", active=True)]
    kept = template("c", active=True)

    response = admin_client.post(
        TEMPLATES,
        {"action": "deactivate", "_selected_action": [t.pk for t in chosen]},
        follow=True,
    )

    assert "2 templates deactivated." in [str(m) for m in response.context["messages"]]
    assert list(Template.objects.filter(is_active=True)) == [kept]


# -- the inbound URL -----------------------------------------------------------------------------


def test_options_on_the_inbound_url_names_its_methods_and_stores_nothing(client: Client) -> None:
    url = inbound.inbound_url()
    assert url is not None

    response = client.options(urlsplit(url).path)

    assert response.status_code == 200
    answer = response.json()
    assert answer["ok"] is True
    assert "POST" in answer["methods"]
    assert not InboundReport.objects.exists()


# -- polling and settling --------------------------------------------------------------------------


def test_polling_skips_messages_the_gateway_has_no_id_for(
    gateway: FakeGateway, wa_client: Any
) -> None:
    known = make_draft(Message.Status.ACCEPTED, provider_message_id=5150)
    lost = make_draft(Message.Status.UNKNOWN, provider_message_id=None)
    gateway.status(5150, 1)

    polled = [(m, poll.result()) for m, poll in services.poll_statuses([lost, known], wa_client, 2)]

    assert [(m.pk, result.status) for m, result in polled] == [(known.pk, 1)]
    assert len(gateway.requests) == 1


def test_a_negative_age_for_stale_sends_is_refused() -> None:
    stuck = make_draft(Message.Status.SENDING)
    with pytest.raises(ValueError, match="older_than must not be negative"):
        services.settle_stale_sending(timedelta(seconds=-1))
    assert Message.objects.get(pk=stuck.pk).status == Message.Status.SENDING


# -- the shared back-off ---------------------------------------------------------------------------


def test_an_interrupted_pause_gives_the_slot_back() -> None:
    """A thread interrupted while sleeping the pause for all (Ctrl-C, a worker stopping) gives its
    slot back, so the others are not left one slot short."""
    now = [100.0]
    gate = SharedBackoff(max_in_flight=1, clock=lambda: now[0])
    ticket = gate.wait(lambda seconds: None)
    assert gate.pause(5, ticket) is True
    gate.release()

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        gate.wait(interrupted)

    now[0] += 5  # the pause is over: the one slot must be free again
    tickets: list[int] = []
    passed = threading.Event()

    def next_request() -> None:
        tickets.append(gate.wait(lambda seconds: None))
        passed.set()

    threading.Thread(target=next_request, daemon=True).start()
    wait_for_event(passed, what="the next request to get the slot back")
    gate.release()
    assert tickets == [ticket + 1]
    assert repr(gate) == "SharedBackoff(pauses=1, max_retries=10, max_in_flight=1)"


# -- a message's page ------------------------------------------------------------------------------


def message_url(message: Message | int, tool: str = "change") -> str:
    pk = message if isinstance(message, int) else message.pk
    return reverse(f"admin:django_whatsapp_message_{tool}", args=[pk])


def test_saving_a_draft_without_the_send_button_keeps_it_a_draft(
    admin_client: Client, gateway: FakeGateway
) -> None:
    draft = make_draft()
    data = {
        "message_type": 1,
        "destination_addr": "+380 67 123 45 67",
        "source_addr": "Shop",
        "text": "Edited, not sent",
        "_save": "Save",
    }

    response = admin_client.post(message_url(draft), data)

    assert response.status_code == 302
    draft.refresh_from_db()
    assert (draft.status, draft.text, draft.destination_addr) == (
        Message.Status.DRAFT,
        "Edited, not sent",
        "380671234567",
    )
    assert gateway.requests == []


@pytest.mark.parametrize("tool", ["refresh", "retry"])
def test_the_message_tools_answer_404_for_a_missing_message_and_405_for_get(
    admin_client: Client, gateway: FakeGateway, tool: str
) -> None:
    assert admin_client.post(message_url(987654, tool)).status_code == 404
    message = make_draft(Message.Status.NOT_SENT)
    assert admin_client.get(message_url(message, tool)).status_code == 405
    assert Message.objects.get(pk=message.pk).status == Message.Status.NOT_SENT
    assert gateway.requests == []


@pytest.mark.parametrize("tool", ["refresh", "retry"])
def test_the_message_tools_need_the_view_permission_too(
    django_user_model: Any, gateway: FakeGateway, tool: str
) -> None:
    from tests.factories import staff_client

    sender_only = staff_client(django_user_model, "sender", "send_message")
    message = make_draft(Message.Status.NOT_SENT, provider_message_id=77)

    assert sender_only.post(message_url(message, tool)).status_code == 403
    assert Message.objects.get(pk=message.pk).status == Message.Status.NOT_SENT
    assert gateway.requests == []


def test_an_inbound_message_without_its_raw_report_says_so(admin_client: Client) -> None:
    """A received message whose raw report was deleted: the field shows a dash, no link."""
    inbound_message = make_draft(
        Message.Status.DELIVERED, direction=Message.Direction.INBOUND, provider_message_id=None
    )
    html = admin_client.get(message_url(inbound_message)).content.decode()
    field = html[html.index("field-inbound_report_links") :]
    field = field[: field.index("</div>") + len("</div>")]
    assert re.search(r'<div class="readonly">-</div>$', field), field
    assert "inboundreport" not in field


def test_a_draft_without_a_number_links_to_no_conversation(admin_client: Client) -> None:
    with_number = make_draft()
    without = make_draft(destination_addr="")

    assert (
        'class="wa-conversation-link"'
        in admin_client.get(message_url(with_number)).content.decode()
    )
    html = admin_client.get(message_url(without)).content.decode()
    assert 'class="wa-conversation-link"' not in html
    assert "/simulate/" not in html


def test_a_raw_report_that_made_no_message_shows_a_dash_for_its_messages(
    admin_client: Client,
) -> None:
    url = inbound.inbound_url()
    assert url is not None
    assert admin_client.post(urlsplit(url).path, "nothing to read", "text/plain").status_code == 202
    report = InboundReport.objects.get()

    html = admin_client.get(
        reverse("admin:django_whatsapp_inboundreport_change", args=[report.pk])
    ).content.decode()

    field = html[html.index("field-message_links") :]
    field = field[: field.index("</div>") + len("</div>")]
    assert re.search(r'<div class="readonly">-</div>$', field), field


# -- the compose form ------------------------------------------------------------------------------


def test_editing_a_template_draft_shows_its_stored_header_and_parameters(
    admin_client: Client, template: Template
) -> None:
    draft = make_draft(
        message_type=Message.MessageType.TEMPLATE,
        text="",
        template=template,
        template_params={"body": ["Ann", "A-42"], "header": "https://example.com/order.jpg"},
    )

    html = admin_client.get(message_url(draft)).content.decode()

    assert re.search(r'<input[^>]*name="param_1"[^>]*value="Ann"', html)
    assert re.search(r'<input[^>]*name="param_2"[^>]*value="A-42"', html)
    assert re.search(r'<input[^>]*name="header"[^>]*value="https://example.com/order.jpg"', html)


def test_composing_without_a_type_says_so_and_stores_nothing(
    admin_client: Client, gateway: FakeGateway
) -> None:
    response = admin_client.post(
        reverse("admin:django_whatsapp_message_add"),
        {"destination_addr": "+380 67 123 45 67", "source_addr": "Shop", "text": "hi"},
    )

    assert response.status_code == 200
    assert "message_type" in response.context["adminform"].form.errors
    assert not Message.objects.exists()
    assert gateway.requests == []
