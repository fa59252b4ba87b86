"""Opt-outs: keywords opt a contact out and back in; nothing is requested for an opted-out
contact, whatever the send path; the optional confirmation goes out once.

Inbound messages are posted to the signed inbound URL through Django's test client; sends go to
the fake gateway over real TCP, whose request log proves that nothing was requested.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.urls import reverse

from django_whatsapp import inbound, optout, services, signals
from django_whatsapp.conf import get_settings
from django_whatsapp.exceptions import OptedOut
from django_whatsapp.models import Contact, Message, Template
from django_whatsapp.sending import send_now

from .conftest import FakeGateway
from .factories import staff_client

pytestmark = pytest.mark.django_db

CUSTOMER = "380501234567"
OTHER = "380671112233"
Status = Message.Status


def deliver(client: Client, text: str, sender: str = CUSTOMER, message_id: int = 1) -> Any:
    url = inbound.inbound_url()
    assert url is not None
    body = {"message_id": message_id, "source_addr": sender, "destination_addr": "TestCo"}
    body["text"] = text  # type: ignore[assignment]
    response = client.post(urlsplit(url).path, json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content
    return response


class Recorder:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


@pytest.fixture
def opted_out_calls() -> Any:
    recorder = Recorder()
    signals.contact_opted_out.connect(recorder, dispatch_uid="test-opted-out")
    yield recorder
    signals.contact_opted_out.disconnect(dispatch_uid="test-opted-out")


@pytest.fixture
def opted_in_calls() -> Any:
    recorder = Recorder()
    signals.contact_opted_in.connect(recorder, dispatch_uid="test-opted-in")
    yield recorder
    signals.contact_opted_in.disconnect(dispatch_uid="test-opted-in")


# -- matching ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("STOP", "out"),
        ("stop", "out"),
        ("  Stop!  ", "out"),
        ("stop.", "out"),
        ("«СТОП»", "out"),
        ("стоп", "out"),
        ("Unsubscribe", "out"),
        ("відписатися", "out"),
        ("ВІДПИСАТИСЯ!!", "out"),
        ("отписаться", "out"),
        ("\uff33\uff34\uff2f\uff30", "out"),  # fullwidth letters: NFKC
        ("START", "in"),
        ("start 🙂", "in"),
        ("Старт", "in"),
        ("please stop", None),
        ("stop it", None),
        ("stopping", None),
        ("", None),
        ("!!!", None),
        ("Hello", None),
    ],
)
def test_keywords_match_whole_texts_whatever_the_case_and_surrounding_punctuation(
    text: str, expected: str | None
) -> None:
    assert optout.keyword_action(text) == expected


def test_keywords_are_configurable(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "OPT_OUT_KEYWORDS": ["halt now"],
        "OPT_IN_KEYWORDS": ["Resume"],
    }
    assert optout.keyword_action("HALT   now!") == "out"
    assert optout.keyword_action("stop") is None
    assert optout.keyword_action("resume") == "in"


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("OPT_OUT_KEYWORDS", "STOP", "must be a list of words"),
        ("OPT_OUT_KEYWORDS", ["STOP", ""], "non-empty strings"),
        ("OPT_IN_KEYWORDS", [1], "non-empty strings"),
        ("OPT_OUT_CONFIRMATION", "Bye", "OPT_OUT_CONFIRMATION"),
        ("OPT_OUT_CONFIRMATION", {"text": ""}, "OPT_OUT_CONFIRMATION"),
        ("OPT_OUT_CONFIRMATION", {"template": "bye", "params": "x"}, "OPT_OUT_CONFIRMATION"),
        ("OPT_OUT_CONFIRMATION", {"text": "Bye", "template": "bye"}, "OPT_OUT_CONFIRMATION"),
    ],
)
def test_bad_opt_out_settings_are_named(settings: Any, key: str, value: Any, says: str) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, key: value}
    with pytest.raises(ImproperlyConfigured, match=says):
        get_settings()


# -- inbound keywords --------------------------------------------------------------------------


def test_an_inbound_stop_opts_the_contact_out_and_start_back_in(
    client: Client, opted_out_calls: Recorder, opted_in_calls: Recorder
) -> None:
    deliver(client, "Hello")
    assert not optout.is_opted_out(CUSTOMER)
    deliver(client, " Stop! ", message_id=2)
    contact = Contact.objects.get(number=CUSTOMER)
    stop = Message.objects.get(inbound_key__isnull=False, text=" Stop! ")
    assert contact.opted_out_at is not None
    assert contact.opt_out_reason == "keyword: Stop!"
    assert contact.opt_out_message == stop
    assert [(c["contact"].pk, c["message"]) for c in opted_out_calls.calls] == [(contact.pk, stop)]
    first = contact.opted_out_at
    # A second STOP keeps the first opt-out and signals nothing.
    deliver(client, "STOP", message_id=3)
    contact.refresh_from_db()
    assert contact.opted_out_at == first
    assert len(opted_out_calls.calls) == 1
    deliver(client, "start", message_id=4)
    contact.refresh_from_db()
    assert (contact.opted_out_at, contact.opt_out_reason, contact.opt_out_message) == (
        None,
        "",
        None,
    )
    assert [c["contact"].pk for c in opted_in_calls.calls] == [contact.pk]
    assert opted_in_calls.calls[0]["message"].text == "start"


def test_a_stop_from_an_unknown_number_opts_it_out_too(client: Client) -> None:
    deliver(client, "СТОП", sender=OTHER)
    assert optout.opted_out_numbers([CUSTOMER, OTHER]) == {OTHER}


def test_a_sentence_containing_stop_does_not_opt_out(client: Client) -> None:
    deliver(client, "Please don't stop sending me offers")
    assert not optout.is_opted_out(CUSTOMER)


def test_opted_out_numbers_is_one_query(django_assert_num_queries: Any) -> None:
    optout.opt_out(CUSTOMER, reason="asked by phone")
    optout.opt_out(OTHER)
    optout.opt_in(OTHER)
    with django_assert_num_queries(1):
        found = optout.opted_out_numbers([CUSTOMER, OTHER, "380000000000", CUSTOMER])
    assert found == {CUSTOMER}
    with django_assert_num_queries(0):
        assert optout.opted_out_numbers([]) == set()


# -- sends are refused locally -----------------------------------------------------------------


@pytest.fixture
def opted_out(db: Any) -> Contact:
    contact, changed = optout.opt_out(CUSTOMER, reason="keyword: STOP")
    assert changed
    return contact


def assert_refused(message: Message) -> None:
    message.refresh_from_db()
    assert message.status == Status.NOT_SENT
    assert message.error_name == optout.ERROR_NAME
    assert f"+{CUSTOMER} opted out" in message.error_message
    assert "keyword: STOP" in message.error_message
    assert message.submitted_at is None
    assert message.provider_message_id is None


def test_a_text_to_an_opted_out_contact_is_refused_and_nothing_requested(
    gateway: FakeGateway, opted_out: Contact
) -> None:
    gateway.accept()
    failures: list[Any] = []

    def record(**kwargs: Any) -> None:
        failures.append(kwargs["error"])

    signals.message_failed.connect(record, dispatch_uid="test-optout-failed")
    try:
        message = services.send_text(f"+{CUSTOMER}", "Sale today!")
    finally:
        signals.message_failed.disconnect(dispatch_uid="test-optout-failed")
    assert_refused(message)
    assert gateway.requests == []
    [error] = failures
    assert isinstance(error, OptedOut)
    event = message.events.get()
    assert (event.status, event.source, event.payload["exception"]) == (
        Status.NOT_SENT,
        "send",
        "OptedOut",
    )


def test_images_templates_and_replies_are_refused_too(
    gateway: FakeGateway, opted_out: Contact, template: Template
) -> None:
    gateway.accept()
    image = services.send_media(CUSTOMER, "https://cdn.example.com/a.png", "New!")
    tpl = services.send_template(CUSTOMER, template, ["Ann", "42"], "https://cdn.example.com/h.png")
    draft = Message.objects.create(destination_addr=CUSTOMER, source_addr="TestCo", text="Hi")
    reply = services.send_message(draft)
    for message in (image, tpl, reply):
        assert_refused(message)
    assert gateway.requests == []


def test_a_message_queued_before_the_opt_out_is_refused_when_its_turn_comes(
    gateway: FakeGateway,
) -> None:
    gateway.accept()
    queued = Message.objects.create(
        destination_addr=CUSTOMER, source_addr="TestCo", text="Hi", status=Status.QUEUED
    )
    optout.opt_out(CUSTOMER, reason="keyword: STOP")
    send_now(queued)
    assert_refused(queued)
    assert gateway.requests == []


def test_a_retry_to_an_opted_out_contact_is_refused(gateway: FakeGateway) -> None:
    gateway.answer({"name": "Internal server error", "code": 2, "status": 500}, 500)
    failed = services.send_text(CUSTOMER, "Hi", enqueue=False)
    failed.refresh_from_db()
    assert failed.status == Status.NOT_SENT
    before = len(gateway.requests)
    optout.opt_out(CUSTOMER, reason="keyword: STOP")
    services.retry_message(failed)
    assert_refused(failed)
    assert len(gateway.requests) == before


@pytest.mark.django_db(transaction=True)
def test_a_bulk_send_skips_opted_out_recipients(gateway: FakeGateway) -> None:
    optout.opt_out(CUSTOMER, reason="keyword: STOP")
    gateway.accept()
    result = services.send_bulk([f"+{CUSTOMER}", OTHER], text="Sale today!", concurrency=2)
    assert result.opted_out == [CUSTOMER]
    by_number = {m.destination_addr: m for m in result.messages}
    assert_refused(by_number[CUSTOMER])
    by_number[OTHER].refresh_from_db()
    assert by_number[OTHER].status == Status.ACCEPTED
    assert [str(b["destination_addr"]) for b in gateway.sent_bodies()] == [OTHER]


def test_after_opting_in_sends_go_out_again(gateway: FakeGateway, opted_out: Contact) -> None:
    gateway.accept()
    optout.opt_in(CUSTOMER)
    message = services.send_text(CUSTOMER, "Welcome back")
    message.refresh_from_db()
    assert message.status == Status.ACCEPTED
    assert len(gateway.sent_bodies()) == 1


# -- the confirmation ----------------------------------------------------------------------------


def test_no_confirmation_by_default(client: Client, gateway: FakeGateway) -> None:
    gateway.accept()
    deliver(client, "STOP")
    assert optout.is_opted_out(CUSTOMER)
    assert gateway.requests == []
    assert not Message.objects.filter(direction=Message.Direction.OUTBOUND).exists()


def test_a_text_confirmation_is_sent_once_to_the_opted_out_customer(
    client: Client, gateway: FakeGateway, settings: Any
) -> None:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "OPT_OUT_CONFIRMATION": {"text": "You will get no more messages. Reply START to undo."},
    }
    gateway.accept()
    deliver(client, "STOP")
    deliver(client, "stop", message_id=2)  # already opted out: no second confirmation
    [body] = gateway.sent_bodies()
    assert str(body["destination_addr"]) == CUSTOMER
    assert body["text"].startswith("You will get no more messages")
    confirmation = Message.objects.get(direction=Message.Direction.OUTBOUND)
    assert confirmation.status == Status.ACCEPTED
    # Anything else is still refused.
    assert_refused(services.send_text(CUSTOMER, "Sale!"))
    assert len(gateway.sent_bodies()) == 1


def test_a_template_confirmation(
    client: Client, gateway: FakeGateway, settings: Any, template: Template
) -> None:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "OPT_OUT_CONFIRMATION": {
            "template": template.name,
            "params": ["Ann", "0"],
            "header": "https://cdn.example.com/h.png",
        },
    }
    gateway.accept()
    deliver(client, "UNSUBSCRIBE")
    [body] = gateway.sent_bodies()
    assert body["message_type"] == 4
    assert str(body["destination_addr"]) == CUSTOMER


def test_a_failed_confirmation_keeps_the_opt_out_and_the_inbound_message(
    client: Client, gateway: FakeGateway, settings: Any
) -> None:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "OPT_OUT_CONFIRMATION": {"template": "no_such_template"},
    }
    deliver(client, "STOP")
    assert optout.is_opted_out(CUSTOMER)
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1
    assert gateway.requests == []


@pytest.mark.django_db(transaction=True)
def test_a_queued_send_to_an_opted_out_contact_is_refused_without_a_task(
    gateway: FakeGateway, settings: Any
) -> None:
    settings.TASKS = {"default": {"BACKEND": _dummy_backend()}}
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "SEND_ASYNC": True}
    optout.opt_out(CUSTOMER, reason="keyword: STOP")
    backend = _default_backend()
    backend.clear()
    message = services.send_text(CUSTOMER, "Sale!")
    assert_refused(message)
    assert list(backend.results) == []
    assert gateway.requests == []


def _dummy_backend() -> str:
    from importlib.util import find_spec

    if find_spec("django.tasks"):
        return "django.tasks.backends.dummy.DummyBackend"
    return "django_tasks.backends.dummy.DummyBackend"


def _default_backend() -> Any:
    try:
        from django.tasks import default_task_backend
    except ImportError:
        from django_tasks import default_task_backend  # type: ignore[no-redef,unused-ignore]
    return default_task_backend


# -- the admin -------------------------------------------------------------------------------------


def thread(number: str = CUSTOMER) -> str:
    return reverse("admin:django_whatsapp_conversation_thread", args=[number])


def opt_url(number: str = CUSTOMER) -> str:
    return reverse("admin:django_whatsapp_conversation_opt_out", args=[number])


def test_the_conversation_shows_the_opt_out_and_offers_no_reply_box(
    admin_client: Client, opted_out: Contact
) -> None:
    Message.objects.create(destination_addr=CUSTOMER, source_addr="TestCo", text="Hi")
    html = admin_client.get(thread()).content.decode()
    assert 'data-opted-out="yes"' in html
    assert "Opted out on" in html
    assert "keyword: STOP" in html
    assert 'id="wa-opted-out-note"' in html
    assert 'id="wa-reply"' not in html
    assert 'value="in"' in html  # the operator's button
    other = admin_client.get(thread(OTHER)).content.decode()
    assert 'data-opted-out="no"' in other
    assert 'value="out"' in other


def test_an_operator_opts_a_contact_out_and_in_and_it_is_logged(
    admin_client: Client, opted_out_calls: Recorder, opted_in_calls: Recorder
) -> None:
    response = admin_client.post(opt_url(), {"opt": "out", "reason": "asked by phone"})
    assert response.status_code == 302
    contact = Contact.objects.get(number=CUSTOMER)
    assert contact.opted_out_at is not None
    assert contact.opt_out_reason == "operator admin: asked by phone"
    assert contact.opt_out_message is None
    [call] = opted_out_calls.calls
    assert (call["message"], str(call["user"])) == (None, "admin")
    entry = LogEntry.objects.get(object_id=str(contact.pk))
    assert entry.action_flag == CHANGE
    assert entry.get_change_message() == "Opted out: asked by phone"
    assert entry.content_type.model == "contact"
    admin_client.post(opt_url(), {"opt": "in"})
    contact.refresh_from_db()
    assert contact.opted_out_at is None
    assert len(opted_in_calls.calls) == 1
    assert LogEntry.objects.count() == 2
    # Again: nothing changes, nothing more is logged.
    admin_client.post(opt_url(), {"opt": "in"})
    assert LogEntry.objects.count() == 2


@pytest.mark.parametrize(
    ("method", "data", "status"),
    [("get", {}, 405), ("post", {"opt": "maybe"}, 400), ("post", {}, 400)],
)
def test_the_opt_out_endpoint_refuses_what_it_does_not_understand(
    admin_client: Client, method: str, data: dict[str, str], status: int
) -> None:
    response = getattr(admin_client, method)(opt_url(), data)
    assert response.status_code == status
    assert not Contact.objects.exists()


def test_opting_out_needs_the_change_contact_permission_and_a_csrf_token(
    django_user_model: Any,
) -> None:
    viewer = staff_client(django_user_model, "viewer", "view_message", "send_message")
    assert viewer.post(opt_url(), {"opt": "out"}).status_code == 403
    assert 'class="wa-opt-out-form"' not in viewer.get(thread()).content.decode()
    assert not optout.is_opted_out(CUSTOMER)
    user = django_user_model.objects.create_user("changer", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(codename__in=["view_message", "change_contact"])
    )
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(opt_url(), {"opt": "out"}).status_code == 403  # no CSRF token
    assert not optout.is_opted_out(CUSTOMER)
    permitted = staff_client(django_user_model, "changer2", "view_message", "change_contact")
    assert permitted.post(opt_url(), {"opt": "out"}).status_code == 302
    assert optout.is_opted_out(CUSTOMER)


def test_a_reply_in_the_admin_to_an_opted_out_contact_is_refused(
    admin_client: Client, gateway: FakeGateway, opted_out: Contact
) -> None:
    gateway.accept()
    reply = reverse("admin:django_whatsapp_conversation_reply", args=[CUSTOMER])
    admin_client.post(reply, {"text": "Are you there?"})
    assert_refused(Message.objects.get(text="Are you there?"))
    assert gateway.requests == []


def test_compose_warns_about_an_opted_out_recipient(
    admin_client: Client, opted_out: Contact
) -> None:
    add = reverse("admin:django_whatsapp_message_add")
    html = admin_client.get(f"{add}?destination_addr={CUSTOMER}").content.decode()
    assert f"+{CUSTOMER} opted out: a message to them will not be sent." in html
    html = admin_client.get(f"{add}?destination_addr={OTHER}").content.decode()
    assert "opted out" not in html


@pytest.mark.django_db(transaction=True)
def test_the_bulk_page_reports_opted_out_recipients(
    admin_client: Client, gateway: FakeGateway
) -> None:
    optout.opt_out(CUSTOMER, reason="keyword: STOP")
    gateway.accept()
    response = admin_client.post(
        reverse("admin:django_whatsapp_message_bulk"),
        {"recipients": f"{CUSTOMER}\n{OTHER}", "message_type": 1, "text": "Sale"},
        follow=True,
    )
    assert f"Not sent, the customer opted out: +{CUSTOMER}" in response.content.decode()
    assert [str(b["destination_addr"]) for b in gateway.sent_bodies()] == [OTHER]
