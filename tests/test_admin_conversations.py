"""Conversations in the operator's console: the list, the thread, the reply box, the window, the
sandbox's simulated customer, and the inbound reports."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_whatsapp import window
from django_whatsapp.models import Contact, InboundReport, Message, Template
from django_whatsapp.sandbox.gateway import gateway as sandbox_gateway

from .conftest import FakeGateway
from .factories import staff_client as staff

pytestmark = pytest.mark.django_db

Status = Message.Status
Kind = Message.MessageType
INBOUND = Message.Direction.INBOUND
CUSTOMER = "380501234567"
OTHER = "380671112233"
LIST_URL = reverse("admin:django_whatsapp_conversation_changelist")
ADD_URL = reverse("admin:django_whatsapp_message_add")


def thread_url(number: str = CUSTOMER) -> str:
    return reverse("admin:django_whatsapp_conversation_thread", args=[number])


def reply_url(number: str = CUSTOMER) -> str:
    return reverse("admin:django_whatsapp_conversation_reply", args=[number])


def simulate_url(number: str = CUSTOMER) -> str:
    return reverse("admin:django_whatsapp_conversation_simulate", args=[number])


def change_url(message: Message) -> str:
    return reverse("admin:django_whatsapp_message_change", args=[message.pk])


def sent(number: str = CUSTOMER, text: str = "Your order is ready", **fields: Any) -> Message:
    values: dict[str, Any] = {
        "destination_addr": number,
        "source_addr": "Shop",
        "text": text,
        "status": Status.DELIVERED,
    }
    values.update(fields)
    return Message.objects.create(**values)


def received(number: str = CUSTOMER, text: str = "Thanks!", **fields: Any) -> Message:
    message = sent(number, text, direction=INBOUND, source_addr="Shop", **fields)
    window.record_inbound(number, timezone.now())
    return message


@pytest.fixture
def viewer(django_user_model: Any) -> Client:
    return staff(django_user_model, "viewer", "view_message")


@pytest.fixture
def policy(settings: Any) -> Any:
    def apply(value: str) -> None:
        settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "SERVICE_WINDOW_POLICY": value}

    return apply


def notices(response: Any) -> str:
    return " | ".join(str(m) for m in response.context["messages"])


def bubbles(html: str) -> list[tuple[str, str]]:
    """(direction, message id) of each bubble of a thread, in page order."""
    return re.findall(r'data-direction="(\w+)" data-message="(\d+)"', html)


# -- the list ----------------------------------------------------------------------------------


def test_the_list_shows_each_contact_once_with_its_latest_message(admin_client: Client) -> None:
    sent(CUSTOMER, "first")
    received(CUSTOMER, "customer wrote last")
    sent(OTHER, "to the other one")
    Contact.objects.filter(number=CUSTOMER).update(name="Ann")

    response = admin_client.get(LIST_URL)

    assert response.status_code == 200
    rows = response.context["rows"]
    assert [(r.number, r.total, r.waiting) for r in rows] == [
        (OTHER, 1, False),
        (CUSTOMER, 2, True),
    ]
    html = response.content.decode()
    assert "customer wrote last" in html
    assert "first" not in html
    assert "Ann" in html
    assert f'href="{thread_url(CUSTOMER)}"' in html
    assert 'data-window="good"' in html  # the customer's window is open
    assert 'data-window="quiet"' in html  # the other one never wrote


def test_the_list_filters_those_waiting_for_a_reply_and_searches(admin_client: Client) -> None:
    received(CUSTOMER, "where is my parcel")
    sent(OTHER, "hello")
    waiting = admin_client.get(LIST_URL, {"waiting": "1"}).context["rows"]
    assert [r.number for r in waiting] == [CUSTOMER]
    by_text = admin_client.get(LIST_URL, {"q": "parcel"}).context["rows"]
    assert [r.number for r in by_text] == [CUSTOMER]
    by_number = admin_client.get(LIST_URL, {"q": "+380 67 111"}).context["rows"]
    assert [r.number for r in by_number] == [OTHER]
    assert "No conversation matches." in admin_client.get(LIST_URL, {"q": "zzz"}).content.decode()


def test_the_list_pages(admin_client: Client) -> None:
    for i in range(55):
        sent(f"38050000{i:04d}")
    first = admin_client.get(LIST_URL)
    assert len(first.context["rows"]) == 50
    assert len(admin_client.get(LIST_URL, {"p": 2}).context["rows"]) == 5


def count_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(LIST_URL).status_code == 200
    return len(queries)


def test_the_list_makes_as_many_queries_for_40_contacts_as_for_4(
    admin_client: Client, template: Template
) -> None:
    def add(start: int, n: int) -> None:
        for i in range(start, start + n):
            number = f"38050000{i:04d}"
            received(number, f"hi {i}")
            sent(number, "", message_type=Kind.TEMPLATE, template=template, template_params={})

    add(0, 4)
    small = count_queries(admin_client)
    add(4, 36)
    assert count_queries(admin_client) == small


def test_the_list_is_in_the_admin_index_for_those_who_may_view_messages(
    admin_client: Client, viewer: Client, django_user_model: Any
) -> None:
    assert LIST_URL in admin_client.get(reverse("admin:index")).content.decode()
    assert viewer.get(LIST_URL).status_code == 200
    nobody = staff(django_user_model, "nobody", "view_template")
    assert nobody.get(LIST_URL).status_code == 403
    assert nobody.get(thread_url()).status_code == 403


# -- a thread ----------------------------------------------------------------------------------


def test_the_thread_shows_both_directions_in_order(
    admin_client: Client, template: Template
) -> None:
    first = sent(CUSTOMER, "Your order is ready")
    reply = received(CUSTOMER, "Great, thanks!")
    image = received(CUSTOMER, "Here it is", message_type=Kind.MEDIA, file_url="https://x.io/a.jpg")
    templated = sent(
        CUSTOMER,
        "",
        message_type=Kind.TEMPLATE,
        template=template,
        template_params={"body": ["Ann", "A-7"], "header": "https://x.io/h.jpg"},
        status=Status.SEEN,
    )
    sent(OTHER, "not in this conversation")

    response = admin_client.get(thread_url())

    assert response.status_code == 200
    html = response.content.decode()
    assert bubbles(html) == [
        ("outbound", str(first.pk)),
        ("inbound", str(reply.pk)),
        ("inbound", str(image.pk)),
        ("outbound", str(templated.pk)),
    ]
    assert 'class="wa-bubble wa-in"' in html
    assert 'class="wa-bubble wa-out"' in html
    assert "Hello Ann, your order A-7 is ready." in html
    assert 'src="https://x.io/a.jpg"' in html
    assert 'data-status="seen"' in html
    assert "not in this conversation" not in html
    assert f'href="{change_url(first)}"' in html


def test_a_long_thread_shows_the_latest_and_offers_the_rest(admin_client: Client) -> None:
    messages = [sent(CUSTOMER, f"m{i}") for i in range(105)]
    html = admin_client.get(thread_url()).content.decode()
    shown = bubbles(html)
    assert len(shown) == 100
    assert shown[-1][1] == str(messages[-1].pk)
    assert "5 earlier messages are not shown." in html
    assert len(bubbles(admin_client.get(thread_url(), {"all": "1"}).content.decode())) == 105


def test_a_partly_understood_message_says_so(admin_client: Client) -> None:
    received(CUSTOMER, "")
    assert "No text or image was understood" in admin_client.get(thread_url()).content.decode()


def test_the_window_is_shown(admin_client: Client) -> None:
    html = admin_client.get(thread_url()).content.decode()
    assert "No message from this contact" in html
    received(CUSTOMER)
    html = admin_client.get(thread_url()).content.decode()
    assert re.search(r"Window open: 2[34] h \d\d min left", html)
    Contact.objects.update(last_inbound_at=timezone.now() - timedelta(hours=30))
    assert "Window closed" in admin_client.get(thread_url()).content.decode()


def test_a_number_that_is_not_a_number_is_not_found(admin_client: Client) -> None:
    assert admin_client.get(thread_url("abc")).status_code == 404
    assert admin_client.get(thread_url("1" * 21)).status_code == 404


# -- replying ----------------------------------------------------------------------------------


def test_reply_sends_through_the_services(
    admin_client: Client, admin_user: Any, gateway: FakeGateway
) -> None:
    gateway.accept()
    received(CUSTOMER, "Is it ready?")

    response = admin_client.post(reply_url(), {"text": "Yes, come by at 5."})

    assert response.status_code == 302
    assert response["Location"] == f"{thread_url()}#wa-latest"
    reply = Message.objects.get(direction=Message.Direction.OUTBOUND)
    assert (reply.destination_addr, reply.text, reply.status) == (
        CUSTOMER,
        "Yes, come by at 5.",
        Status.ACCEPTED,
    )
    assert reply.created_by == admin_user
    assert reply.source_addr == "TestCo"
    (body,) = gateway.sent_bodies()
    assert (body["destination_addr"], body["text"]) == (int(CUSTOMER), "Yes, come by at 5.")
    followed = admin_client.get(response["Location"])
    assert bubbles(followed.content.decode())[-1] == ("outbound", str(reply.pk))


def test_reply_reports_a_gateway_refusal(admin_client: Client, gateway: FakeGateway) -> None:
    gateway.answer(
        {
            "name": "Topup balance is required",
            "message": "User balance is empty",
            "code": 3,
            "status": 402,
        },
        402,
    )
    response = admin_client.post(reply_url(), {"text": "Hello"}, follow=True)
    assert "The message was not sent: The account balance is empty." in notices(response)


def test_an_empty_reply_is_refused_and_nothing_sent(
    admin_client: Client, gateway: FakeGateway
) -> None:
    response = admin_client.post(reply_url(), {"text": "   "})
    assert response.status_code == 200
    assert "Type the reply." in response.content.decode()
    assert Message.objects.count() == 0
    assert gateway.requests == []


def test_replying_needs_the_send_permission(
    viewer: Client, django_user_model: Any, gateway: FakeGateway
) -> None:
    received(CUSTOMER)
    assert 'id="wa-reply"' not in viewer.get(thread_url()).content.decode()
    assert viewer.post(reply_url(), {"text": "Hi"}).status_code == 403
    sender = staff(django_user_model, "sender", "view_message", "add_message", "send_message")
    assert 'id="wa-reply"' in sender.get(thread_url()).content.decode()
    assert Message.objects.count() == 1
    assert gateway.requests == []


def test_reply_needs_post_and_a_csrf_token(admin_user: Any, gateway: FakeGateway) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.get(reply_url()).status_code == 405
    assert client.post(reply_url(), {"text": "Hi"}).status_code == 403
    page = client.get(thread_url())
    token = page.context["csrf_token"]
    gateway.accept()
    response = client.post(reply_url(), {"text": "Hi", "csrfmiddlewaretoken": str(token)})
    assert response.status_code == 302
    assert Message.objects.get().text == "Hi"


# -- the window in the admin -------------------------------------------------------------------


def test_enforce_closed_window_offers_a_template_instead_of_the_reply_box(
    admin_client: Client, policy: Any, gateway: FakeGateway
) -> None:
    policy("enforce")
    sent(CUSTOMER)
    html = admin_client.get(thread_url()).content.decode()
    assert 'id="wa-reply"' not in html
    assert 'id="wa-window-closed"' in html
    assert f"{ADD_URL}?message_type=4&amp;destination_addr={CUSTOMER}" in html
    # A forged reply is refused before anything is stored or sent.
    response = admin_client.post(reply_url(), {"text": "Hi"})
    assert response.status_code == 200
    assert "only a template message can be sent now" in response.content.decode()
    assert Message.objects.count() == 1
    assert gateway.requests == []


def test_enforce_open_window_keeps_the_reply_box(admin_client: Client, policy: Any) -> None:
    policy("enforce")
    received(CUSTOMER)
    html = admin_client.get(thread_url()).content.decode()
    assert 'id="wa-reply"' in html
    assert 'id="wa-window-closed"' not in html


def test_warn_closed_window_sends_and_warns(
    admin_client: Client, policy: Any, gateway: FakeGateway
) -> None:
    policy("warn")
    gateway.accept()
    assert 'id="wa-window-warning"' in admin_client.get(thread_url()).content.decode()
    response = admin_client.post(reply_url(), {"text": "Hi"}, follow=True)
    assert "The gateway accepted the message" in notices(response)
    assert "the message was sent anyway" in notices(response)
    assert len(gateway.sent_bodies()) == 1


def test_compose_under_enforce_refuses_a_text_on_the_type_field(
    admin_client: Client, policy: Any, gateway: FakeGateway
) -> None:
    policy("enforce")
    data = {"message_type": 1, "destination_addr": "+" + CUSTOMER, "source_addr": "Shop"}

    response = admin_client.post(ADD_URL, {**data, "text": "Hi", "_send": "1"})

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["message_type"]
    html = response.content.decode()
    assert "24-hour window is closed" in html
    assert f'href="{ADD_URL}?message_type=4&amp;destination_addr={CUSTOMER}"' in html
    assert Message.objects.count() == 0
    assert gateway.requests == []
    # A draft may still be saved (the customer may write before it is sent).
    assert admin_client.post(ADD_URL, {**data, "text": "Hi", "_save": "1"}).status_code == 302
    assert Message.objects.get().status == Status.DRAFT


def test_compose_under_enforce_sends_a_template(
    admin_client: Client, policy: Any, gateway: FakeGateway, template: Template
) -> None:
    policy("enforce")
    gateway.accept()
    response = admin_client.post(
        ADD_URL,
        {
            "message_type": 4,
            "destination_addr": CUSTOMER,
            "source_addr": "Shop",
            "template": template.pk,
            "param_1": "Ann",
            "param_2": "A-1",
            "header": "https://x.io/h.jpg",
            "_send": "1",
        },
    )
    assert response.status_code == 302
    assert Message.objects.get().status == Status.ACCEPTED


def test_compose_under_warn_sends_and_warns(
    admin_client: Client, policy: Any, gateway: FakeGateway
) -> None:
    policy("warn")
    gateway.accept()
    data = {"message_type": 1, "destination_addr": CUSTOMER, "source_addr": "Shop", "text": "Hi"}
    response = admin_client.post(ADD_URL, {**data, "_send": "1"}, follow=True)
    assert "the message was sent anyway" in notices(response)
    assert Message.objects.get().status == Status.ACCEPTED


def test_compose_with_the_policy_off_says_nothing(
    admin_client: Client, gateway: FakeGateway
) -> None:
    gateway.accept()
    data = {"message_type": 1, "destination_addr": CUSTOMER, "source_addr": "Shop", "text": "Hi"}
    response = admin_client.post(ADD_URL, {**data, "_send": "1"}, follow=True)
    assert "window" not in notices(response)


# -- a message's page --------------------------------------------------------------------------


def test_a_message_links_to_its_conversation(admin_client: Client) -> None:
    message = sent()
    html = admin_client.get(change_url(message)).content.decode()
    assert f'href="{thread_url()}"' in html
    assert simulate_url() not in html  # the tests' gateway is not the sandbox


def test_a_received_message_reads_as_received(admin_client: Client, client: Client) -> None:
    message = received(CUSTOMER, "Hello from the customer")
    report = InboundReport.objects.create(method="POST", body="{}", outcome="understood")
    report.messages.add(message)

    response = admin_client.get(change_url(message))

    html = response.content.decode()
    assert response.context["subtitle"] == f"Text message from +{CUSTOMER}"
    assert "Status timeline" not in html
    assert "Delivery" not in html
    assert reverse("admin:django_whatsapp_inboundreport_change", args=[report.pk]) in html
    assert 'name="_send"' not in html  # read-only


def test_the_message_list_filters_by_direction_and_counts_the_rows_it_lists(
    admin_client: Client,
) -> None:
    sent(CUSTOMER, status=Status.SEEN)
    received(CUSTOMER)
    url = reverse("admin:django_whatsapp_message_changelist")
    response = admin_client.get(url)
    result = response.context["wa_summary"]
    assert (result.total, result.incoming) == (2, 1) == (response.context["cl"].result_count, 1)
    assert [(s.status, s.count) for s in result.statuses] == [(Status.SEEN, 1)]
    html = response.content.decode()
    assert "?direction__exact=inbound" in html
    assert ">Incoming</a>" in html
    assert ">Outgoing</a>" in html
    assert ">Received</a>" not in html
    only = admin_client.get(url, {"direction__exact": "inbound"})
    assert only.context["cl"].result_count == 1 == only.context["wa_summary"].total
    assert only.context["wa_summary"].statuses == []


# -- the sandbox's simulated customer ----------------------------------------------------------


@pytest.fixture
def live_sandbox(live_server: Any, settings: Any) -> Iterator[str]:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "BASE_URL": f"{live_server.url}/sandbox/v1/api",
        "CALLBACK_BASE_URL": live_server.url,
        "SANDBOX_ENFORCE_WINDOW": True,
    }
    sandbox_gateway.reset()
    yield str(live_server.url)
    sandbox_gateway.reset()


@pytest.mark.django_db(transaction=True)
def test_simulate_a_customer_reply_from_a_message_page(
    admin_client: Client, live_sandbox: str
) -> None:
    message = sent(CUSTOMER, "Your order is ready", status=Status.NOT_SENT)
    html = admin_client.get(change_url(message)).content.decode()
    assert f'action="{simulate_url()}"' in html
    assert "Simulate a customer reply" in html

    response = admin_client.post(simulate_url(), {"text": "When can I come?"}, follow=True)

    assert response.redirect_chain[-1][0] == f"{thread_url()}#wa-latest"
    assert f"The sandbox delivered a customer reply from +{CUSTOMER}." in notices(response)
    reply = Message.objects.get(direction=INBOUND)
    assert (reply.text, reply.source_addr) == ("When can I come?", "Shop")
    assert bubbles(response.content.decode())[-1] == ("inbound", str(reply.pk))
    assert sandbox_gateway.window_open(CUSTOMER)
    assert window.state(CUSTOMER).is_open


@pytest.mark.django_db(transaction=True)
def test_simulate_without_a_text_uses_a_stock_reply(
    admin_client: Client, live_sandbox: str
) -> None:
    admin_client.post(simulate_url(), {})
    assert "simulated by the sandbox" in Message.objects.get().text


def test_simulate_needs_the_sandbox_and_the_send_permission(
    admin_client: Client, viewer: Client
) -> None:
    response = admin_client.post(simulate_url(), {"text": "x"}, follow=True)
    assert "Only the sandbox gateway can simulate a customer." in notices(response)
    assert Message.objects.count() == 0
    assert viewer.post(simulate_url(), {"text": "x"}).status_code == 403
    assert admin_client.get(simulate_url()).status_code == 405


# -- inbound reports ---------------------------------------------------------------------------


def test_inbound_reports_are_listed_and_read_only(admin_client: Client) -> None:
    report = InboundReport.objects.create(
        method="POST",
        content_type="application/json",
        body=json.dumps({"from": "?"}),
        body_size=11,
        outcome=InboundReport.Outcome.NOT_UNDERSTOOD,
        detail="No message could be read: no sender",
    )
    listing = admin_client.get(reverse("admin:django_whatsapp_inboundreport_changelist"))
    assert listing.status_code == 200
    assert 'data-outcome="not_understood"' in listing.content.decode()
    page = admin_client.get(reverse("admin:django_whatsapp_inboundreport_change", args=[report.pk]))
    html = page.content.decode()
    assert "No message could be read: no sender" in html
    assert "{&quot;from&quot;: &quot;?&quot;}" in html
    assert 'name="_save"' not in html
    assert admin_client.get(reverse("admin:django_whatsapp_inboundreport_add")).status_code == 403


@pytest.fixture(autouse=True)
def _no_sandbox_leftovers() -> Iterator[None]:
    yield
    sandbox_gateway.reset()


@pytest.mark.django_db(transaction=True)
def test_simulate_says_what_stops_the_sandbox_and_sends_nothing(
    admin_client: Client, live_sandbox: str, settings: Any
) -> None:
    def simulate(**conf: Any) -> str:
        settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, **conf}
        return notices(admin_client.post(simulate_url(), {"text": "Hello?"}, follow=True))

    # No secret to sign the inbound URL with: the setting to give is named.
    unsigned = simulate(CALLBACK_SECRET=None, INBOUND_SECRET=None)
    assert "Neither DJANGO_WHATSAPP['INBOUND_SECRET'] nor ['CALLBACK_SECRET'] is set" in unsigned
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "CALLBACK_SECRET": "test-callback-secret-1a2b3c",
    }
    # The project's inbound endpoint does not answer (CALLBACK_BASE_URL names a closed port).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    refused = simulate(CALLBACK_BASE_URL=closed)
    assert refused.startswith("The sandbox's customer reply was not taken: ")
    assert "ConnectionError" in refused
    assert Message.objects.filter(direction=INBOUND).count() == 0
