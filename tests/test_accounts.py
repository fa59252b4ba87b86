"""Several WhatsApp accounts in one project: each message goes to its own account's gateway with
its own key and sender, whatever the path (send, bulk, queued, retry, poll, resync, command).

Two fake gateways over real TCP: the top-level settings (the ``"default"`` account) point at one,
``ACCOUNTS["brand2"]`` at the other, each with its own key.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from pytest_httpserver import HTTPServer

from django_whatsapp import checks, services
from django_whatsapp.conf import account_for_sender, account_names, get_settings
from django_whatsapp.models import Message, Template
from django_whatsapp.sending import get_client, send_now

from .conftest import API_KEY, FakeGateway

pytestmark = pytest.mark.django_db

BRAND2_KEY = "brand2-key-3e5f7a"
TO = "380501234567"
Status = Message.Status


def auth(key: str) -> str:
    return "Basic " + base64.b64encode(key.encode()).decode()


@pytest.fixture
def second_server() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture
def brand2(second_server: HTTPServer, gateway: FakeGateway, settings: Any) -> FakeGateway:
    """The second account's gateway; the first (``gateway``) stays the default account's."""
    fake = FakeGateway(second_server)
    fake._next_id = 5000
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "ACCOUNTS": {
            "brand2": {
                "API_KEY": BRAND2_KEY,
                "BASE_URL": fake.base_url,
                "DEFAULT_SOURCE_ADDR": "Brand2",
                "MAX_RETRIES": 0,
            }
        },
    }
    return fake


def senders(fake: FakeGateway) -> list[tuple[str, str, str]]:
    """(Authorization, source_addr, destination_addr) of each send request."""
    return [
        (
            r.headers["Authorization"],
            *(str(json.loads(r.get_data())[k]) for k in ("source_addr", "destination_addr")),
        )
        for r in fake.requests
        if r.path.endswith("send-whatsapp")
    ]


# -- settings ------------------------------------------------------------------------------------


def test_the_top_level_keys_are_the_default_account(brand2: FakeGateway) -> None:
    default = get_settings()
    assert default == get_settings("default")
    assert default.account == "default"
    assert default.API_KEY == API_KEY
    assert account_names() == ("default", "brand2")


def test_an_account_inherits_transport_settings_but_not_the_key_or_sender(
    settings: Any,
) -> None:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "TIMEOUT": (3, 7),
        "ACCOUNTS": {"bare": {}, "full": {"API_KEY": "k2", "DEFAULT_SOURCE_ADDR": "Full"}},
    }
    bare = get_settings("bare")
    assert (bare.account, bare.API_KEY, bare.DEFAULT_SOURCE_ADDR) == ("bare", None, None)
    assert bare.TIMEOUT == (3.0, 7.0)
    assert bare.BASE_URL == get_settings().BASE_URL
    full = get_settings("full")
    assert (full.API_KEY, full.DEFAULT_SOURCE_ADDR) == ("k2", "Full")
    assert "k2" not in repr(full)
    assert "account='full'" in repr(full)
    with pytest.raises(ImproperlyConfigured, match="API_KEY"):
        bare.require_api_key()


@pytest.mark.parametrize(
    ("accounts", "says"),
    [
        ([], "must be a dict"),
        ({"default": {}}, "must not name 'default'"),
        ({"": {}}, "names must be strings"),
        ({"x" * 65: {}}, "names must be strings"),
        ({"b": "key"}, r"\['b'\] must be a dict"),
        ({"b": {"CALLBACK_SECRET": "s"}}, "unknown keys: CALLBACK_SECRET"),
    ],
)
def test_bad_accounts_are_named(settings: Any, accounts: Any, says: str) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "ACCOUNTS": accounts}
    with pytest.raises(ImproperlyConfigured, match=says):
        get_settings()


def test_a_bad_value_in_an_account_names_the_account(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "ACCOUNTS": {"brand2": {"BASE_URL": "ftp://nowhere"}},
    }
    get_settings()  # the default account is fine
    with pytest.raises(ImproperlyConfigured, match=r"Account 'brand2'.*BASE_URL"):
        get_settings("brand2")


def test_an_unknown_account_is_a_clear_configuration_error(brand2: FakeGateway) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"no account 'brand3'.*default, brand2"):
        get_settings("brand3")
    with pytest.raises(ImproperlyConfigured, match="brand3"):
        services.send_text(TO, "hi", account="brand3")
    assert not Message.objects.exists()


def test_the_sender_number_finds_its_account(brand2: FakeGateway) -> None:
    assert account_for_sender("Brand2") == "brand2"
    assert account_for_sender("TestCo") == "default"
    assert account_for_sender("") == "default"


# -- every send path -----------------------------------------------------------------------------


def test_each_message_goes_to_its_accounts_gateway_with_its_key(
    gateway: FakeGateway, brand2: FakeGateway, template: Template
) -> None:
    gateway.accept()
    brand2.accept()
    a = services.send_text(TO, "from the default account")
    b = services.send_text(TO, "from brand2", account="brand2")
    image = services.send_media(TO, "https://cdn.example.com/a.png", account="brand2")
    tpl = services.send_template(
        TO, template, ["Ann", "1"], "https://cdn.example.com/h.png", account="brand2"
    )
    assert senders(gateway) == [(auth(API_KEY), "TestCo", TO)]
    assert senders(brand2) == [(auth(BRAND2_KEY), "Brand2", TO)] * 3
    assert a.account == "default"
    assert (b.account, image.account, tpl.account) == ("brand2",) * 3
    assert Message.objects.get(pk=b.pk).account == "brand2"
    assert b.provider_message_id == 5001


def test_a_stored_message_is_sent_through_its_own_account(
    gateway: FakeGateway, brand2: FakeGateway
) -> None:
    brand2.accept()
    queued = Message.objects.create(
        destination_addr=TO, source_addr="Brand2", text="hi", status=Status.QUEUED, account="brand2"
    )
    send_now(queued)  # what the worker's task does
    assert queued.status == Status.ACCEPTED
    assert senders(brand2) == [(auth(BRAND2_KEY), "Brand2", TO)]
    assert gateway.requests == []


def test_a_retry_goes_through_the_messages_account(
    gateway: FakeGateway, brand2: FakeGateway
) -> None:
    brand2.answer({"name": "Internal server error", "code": 2, "status": 500}, 500, ordered=True)
    brand2.accept()
    failed = services.send_text(TO, "hi", account="brand2")
    assert failed.status == Status.NOT_SENT
    services.retry_message(failed)
    assert failed.status == Status.ACCEPTED
    assert [s[0] for s in senders(brand2)] == [auth(BRAND2_KEY)] * 2
    assert gateway.requests == []


@pytest.mark.django_db(transaction=True)
def test_a_bulk_send_through_an_account(gateway: FakeGateway, brand2: FakeGateway) -> None:
    brand2.accept()
    result = services.send_bulk([TO, "380671112233"], text="Sale", account="brand2", concurrency=2)
    assert {m.account for m in result.messages} == {"brand2"}
    assert sorted(s[2] for s in senders(brand2)) == ["380501234567", "380671112233"]
    assert {s[:2] for s in senders(brand2)} == {(auth(BRAND2_KEY), "Brand2")}
    assert gateway.requests == []


def test_the_command_sends_through_an_account(gateway: FakeGateway, brand2: FakeGateway) -> None:
    brand2.accept()
    out = io.StringIO()
    call_command("whatsapp_send", "--to", TO, "--text", "hi", "--account", "brand2", stdout=out)
    assert "accepted" in out.getvalue()
    assert senders(brand2) == [(auth(BRAND2_KEY), "Brand2", TO)]
    with pytest.raises(CommandError, match="no account 'nope'"):
        call_command("whatsapp_send", "--to", TO, "--text", "hi", "--account", "nope")


# -- polls and resync ----------------------------------------------------------------------------


def test_a_poll_goes_to_the_messages_account(gateway: FakeGateway, brand2: FakeGateway) -> None:
    message = Message.objects.create(
        destination_addr=TO,
        source_addr="Brand2",
        status=Status.ACCEPTED,
        provider_message_id=5001,
        account="brand2",
    )
    brand2.status(5001, 7)  # seen
    services.refresh_status(message)
    assert message.status == Status.SEEN
    [poll] = brand2.requests
    assert poll.headers["Authorization"] == auth(BRAND2_KEY)
    assert gateway.requests == []


def test_resync_polls_each_message_at_its_own_account(
    gateway: FakeGateway, brand2: FakeGateway
) -> None:
    for pid, account in ((11, "default"), (12, "brand2"), (13, "default"), (14, "brand2")):
        Message.objects.create(
            destination_addr=TO,
            source_addr="x",
            status=Status.ACCEPTED,
            provider_message_id=pid,
            account=account,
        )
    gateway.status(11, 7)
    gateway.status(13, 7)
    brand2.status(12, 7)
    brand2.status(14, 7)
    out = io.StringIO()
    call_command("whatsapp_resync", "--no-progress", stdout=out)
    assert "Polled 4: 4 changed" in out.getvalue()
    assert {r.headers["Authorization"] for r in gateway.requests} == {auth(API_KEY)}
    assert {r.headers["Authorization"] for r in brand2.requests} == {auth(BRAND2_KEY)}
    assert len(brand2.requests) == 2
    assert set(Message.objects.values_list("status", flat=True)) == {Status.SEEN}


def test_resync_of_one_account(gateway: FakeGateway, brand2: FakeGateway) -> None:
    for pid, account in ((11, "default"), (12, "brand2")):
        Message.objects.create(
            destination_addr=TO,
            source_addr="x",
            status=Status.ACCEPTED,
            provider_message_id=pid,
            account=account,
        )
    brand2.status(12, 7)
    out = io.StringIO()
    call_command("whatsapp_resync", "--account", "brand2", "--no-progress", stdout=out)
    assert "Polled 1: 1 changed" in out.getvalue()
    assert gateway.requests == []
    with pytest.raises(CommandError, match="no account 'nope'"):
        call_command("whatsapp_resync", "--account", "nope")


def test_clients_are_kept_per_account(brand2: FakeGateway) -> None:
    assert get_client(account="brand2") is get_client(account="brand2")
    assert get_client(account="brand2") is not get_client()


# -- system checks -------------------------------------------------------------------------------


def test_checks_name_the_account(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "ACCOUNTS": {
            "nokey": {"BASE_URL": "https://gateway.example.com/v1/api"},
            "local": {"BASE_URL": "http://127.0.0.1:8000/sandbox/v1/api"},
            "broken": {"TIMEOUT": -1},
        },
    }
    found = {(m.id, m.msg) for m in checks.check_settings()}
    assert (
        "django_whatsapp.E002",
        "DJANGO_WHATSAPP['ACCOUNTS']['nokey'] has no API_KEY, and its BASE_URL is the real "
        "gateway.",
    ) in found
    assert any(i == "django_whatsapp.E001" and "'broken'" in m and "TIMEOUT" in m for i, m in found)
    assert not any("'local'" in m for _i, m in found)


# -- the admin -------------------------------------------------------------------------------------

ADD_URL = "/admin/django_whatsapp/message/add/"
LIST_URL = "/admin/django_whatsapp/message/"
BULK_URL = "/admin/django_whatsapp/message/send-to-many/"


def test_one_account_shows_no_account_choice(admin_client: Any) -> None:
    assert 'name="account"' not in admin_client.get(ADD_URL).content.decode()
    assert 'name="account"' not in admin_client.get(BULK_URL).content.decode()
    assert "?account=" not in admin_client.get(LIST_URL).content.decode()


def test_compose_through_the_chosen_account(
    admin_client: Any, gateway: FakeGateway, brand2: FakeGateway
) -> None:
    brand2.accept()
    html = admin_client.get(ADD_URL).content.decode()
    assert '<select name="account"' in html
    assert '<option value="brand2">brand2</option>' in html
    response = admin_client.post(
        ADD_URL,
        {
            "message_type": 1,
            "destination_addr": f"+{TO}",
            "source_addr": "",
            "text": "From the second brand",
            "account": "brand2",
            "_send": "1",
        },
    )
    assert response.status_code == 302
    sent = Message.objects.get()
    assert (sent.account, sent.status, sent.source_addr) == ("brand2", Status.ACCEPTED, "Brand2")
    assert senders(brand2) == [(auth(BRAND2_KEY), "Brand2", TO)]
    assert gateway.requests == []
    page = admin_client.get(f"{LIST_URL}{sent.pk}/change/").content.decode()
    assert "brand2" in page
    listing = admin_client.get(LIST_URL).content.decode()
    assert "?account=brand2" in listing  # the filter
    assert 'class="field-account">brand2<' in listing  # the column
    filtered = admin_client.get(f"{LIST_URL}?account=default").content.decode()
    assert "0 messages" in filtered or "0 of 1" in filtered


def test_compose_refuses_an_account_that_is_not_configured(
    admin_client: Any, brand2: FakeGateway
) -> None:
    response = admin_client.post(
        ADD_URL,
        {"message_type": 1, "destination_addr": TO, "text": "x", "account": "nope", "_send": "1"},
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not Message.objects.exists()
    assert brand2.requests == []


@pytest.mark.django_db(transaction=True)
def test_bulk_through_the_chosen_account(
    admin_client: Any, gateway: FakeGateway, brand2: FakeGateway
) -> None:
    brand2.accept()
    assert '<select name="account"' in admin_client.get(BULK_URL).content.decode()
    admin_client.post(
        BULK_URL,
        {
            "recipients": f"{TO}\n380671112233",
            "message_type": 1,
            "text": "Sale",
            "account": "brand2",
        },
    )
    assert set(Message.objects.values_list("account", flat=True)) == {"brand2"}
    assert len(senders(brand2)) == 2
    assert gateway.requests == []


# -- python -m django_whatsapp -------------------------------------------------------------------


@pytest.mark.parametrize("valid", [True, False])
def test_the_report_masks_every_accounts_key(
    capsys: pytest.CaptureFixture[str], settings: Any, valid: bool
) -> None:
    from django_whatsapp.__main__ import main

    accounts: dict[str, Any] = {"brand2": {"API_KEY": BRAND2_KEY, "DEFAULT_SOURCE_ADDR": "B2"}}
    if not valid:
        accounts["broken"] = BRAND2_KEY + "-as-a-string"
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "ACCOUNTS": accounts}
    main([])
    out = capsys.readouterr().out
    assert BRAND2_KEY not in out
    (line,) = [line for line in out.splitlines() if line.strip().startswith("ACCOUNTS ")]
    assert "'brand2': {'API_KEY': '***', 'DEFAULT_SOURCE_ADDR': 'B2'}" in line
    if not valid:
        assert "'broken': '***'" in line


def test_resync_names_an_account_that_is_no_longer_configured(gateway: FakeGateway) -> None:
    Message.objects.create(
        destination_addr=TO,
        source_addr="x",
        status=Status.ACCEPTED,
        provider_message_id=21,
        account="gone",
    )
    with pytest.raises(CommandError, match=r"account 'gone' cannot be polled.*--account"):
        call_command("whatsapp_resync", "--no-progress", stdout=io.StringIO())
    assert gateway.requests == []


def test_a_reply_in_a_conversation_goes_through_the_account_the_customer_wrote_to(
    admin_client: Any, gateway: FakeGateway, brand2: FakeGateway
) -> None:
    brand2.accept()
    Message.objects.create(
        destination_addr=TO,
        source_addr="Brand2",
        text="Hello brand 2",
        direction=Message.Direction.INBOUND,
        status=Status.DELIVERED,
    )
    reply = f"/admin/django_whatsapp/conversation/{TO}/reply/"
    assert admin_client.post(reply, {"text": "Hi from brand 2"}).status_code == 302
    sent = Message.objects.get(direction=Message.Direction.OUTBOUND)
    assert (sent.account, sent.status) == ("brand2", Status.ACCEPTED)
    assert senders(brand2) == [(auth(BRAND2_KEY), "Brand2", TO)]
    # The next reply follows the latest message: brand2's again.
    admin_client.post(reply, {"text": "Anything else?"})
    assert len(senders(brand2)) == 2
    assert gateway.requests == []


def test_an_inbound_message_is_stored_with_the_account_it_was_written_to(
    brand2: FakeGateway,
) -> None:
    """Regression: every received message was stored as the default account's."""
    from django_whatsapp.testing import deliver_inbound

    to_brand2 = deliver_inbound(TO, "Hello brand 2", to="Brand2")
    to_default = deliver_inbound(TO, "Hello", to="TestCo")
    to_nobody = deliver_inbound(TO, "Hello?", to="SomeoneElse")
    assert (to_brand2.account, to_default.account, to_nobody.account) == (
        "brand2",
        "default",
        "default",
    )
    assert Message.objects.get(pk=to_brand2.pk).account == "brand2"
