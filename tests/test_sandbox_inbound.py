"""The sandbox's side of receiving: customers' messages delivered to the project over HTTP, and the
24-hour window kept as the gateway keeps it (only with ``SANDBOX_ENFORCE_WINDOW`` on)."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from io import StringIO
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from pytest_httpserver import HTTPServer

from django_whatsapp import inbound, sandbox, services
from django_whatsapp.client import WhatsAppClient
from django_whatsapp.conf import get_settings
from django_whatsapp.models import Contact, InboundReport, Message
from django_whatsapp.sandbox.gateway import WINDOW_SECONDS, enforce_window, gateway

from .conftest import API_KEY
from .waiting import LIMIT

AUTH = {"Authorization": "Basic " + base64.b64encode(API_KEY.encode()).decode()}
CUSTOMER = "380501234567"
WINDOW_CLOSED = {
    "name": "Service Unavailable",
    "message": "Message failed to send because more than 24 hours have passed since the customer "
    "last replied to this number. In this case, you can only send a template message",
    "code": 7,
    "status": 400,
}
TEMPLATE_PARAMS = json.dumps(
    {
        "to": CUSTOMER,
        "type": "template",
        "template": {
            "namespace": "ns",
            "language": {"policy": "deterministic", "code": "en_US"},
            "name": "order_ready",
        },
    }
)


def body(message_type: int = 1, to: str = CUSTOMER) -> dict[str, Any]:
    sent: dict[str, Any] = {
        "source_addr": "TestCo",
        "destination_addr": int(to),
        "message_type": message_type,
    }
    if message_type == 1:
        sent["text"] = "Hello"
    elif message_type == 2:
        sent["file_url"] = "https://cdn.example.com/a.png"
    else:
        sent.update(template_name="order_ready", template_params=TEMPLATE_PARAMS)
    return sent


def send(client: Client, sent: dict[str, Any]) -> Any:
    return client.post(
        reverse("django_whatsapp_sandbox:send"),
        json.dumps(sent),
        content_type="application/json",
        headers=AUTH,
    )


def simulate(client: Client, fields: Any, headers: dict[str, str] | None = None) -> Any:
    return client.post(
        reverse("django_whatsapp_sandbox:simulate-inbound"),
        json.dumps(fields),
        content_type="application/json",
        headers=AUTH if headers is None else headers,
    )


def closed_port_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/whatsapp/inbound/x/"


@pytest.fixture(autouse=True)
def clean_gateway() -> Iterator[None]:
    gateway.reset()
    yield
    gateway.reset()


@pytest.fixture
def enforce(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "SANDBOX_ENFORCE_WINDOW": True}


def as_project(settings: Any, url: str) -> str:
    """Make ``url``'s origin the project's CALLBACK_BASE_URL: the sandbox delivers to no other."""
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_BASE_URL": origin}
    return url


@pytest.fixture
def project(httpserver: HTTPServer, settings: Any) -> HTTPServer:
    """Stands for a project's inbound endpoint (its origin is CALLBACK_BASE_URL): answers every
    delivery 200."""
    as_project(settings, httpserver.url_for("/"))
    httpserver.expect_request("/whatsapp/inbound/sig/", method="POST").respond_with_json(
        {"ok": True, "outcome": "understood", "received": 1, "duplicates": 0}
    )
    return httpserver


def deliveries(server: HTTPServer) -> list[Any]:
    return [json.loads(request.get_data()) for request, _response in server.log]


# -- the window, kept as the gateway keeps it --------------------------------------------------


def test_the_window_is_not_enforced_by_default(client: Client) -> None:
    assert enforce_window() is False
    assert send(client, body()).status_code == 200


@pytest.mark.parametrize("message_type", [1, 2])
def test_enforced_a_number_that_never_wrote_gets_no_text_or_image(
    client: Client, enforce: None, message_type: int
) -> None:
    response = send(client, body(message_type))
    assert response.status_code == 400
    assert response.json() == WINDOW_CLOSED
    assert gateway.messages() == []


def test_enforced_templates_always_pass(client: Client, enforce: None) -> None:
    assert send(client, body(4)).status_code == 200


def test_enforced_a_number_that_wrote_in_the_last_24_hours_gets_text(
    client: Client, enforce: None
) -> None:
    gateway.record_inbound(CUSTOMER)
    assert send(client, body(1)).status_code == 200
    assert send(client, body(2)).status_code == 200
    assert send(client, body(1, to="380509999999")).status_code == 400


def test_enforced_the_window_closes_24_hours_after(client: Client, enforce: None) -> None:
    gateway.record_inbound(CUSTOMER, at=time.time() - WINDOW_SECONDS - 1)
    assert send(client, body()).json() == WINDOW_CLOSED
    gateway.record_inbound(CUSTOMER, at=time.time() - WINDOW_SECONDS + 60)
    assert send(client, body()).status_code == 200


def test_an_older_report_never_moves_the_window_back() -> None:
    now = time.time()
    gateway.record_inbound(CUSTOMER, at=now)
    gateway.record_inbound(CUSTOMER, at=now - 3600)
    assert gateway.last_inbound(CUSTOMER) == now


def test_scripted_failures_still_come_first(client: Client, enforce: None) -> None:
    response = send(client, body(1, to="380500000002"))
    assert response.status_code == 402


def test_reset_forgets_who_wrote() -> None:
    gateway.record_inbound(CUSTOMER)
    gateway.reset()
    assert gateway.last_inbound(CUSTOMER) is None
    assert not gateway.window_open(CUSTOMER)


def test_a_bad_enforce_setting_is_improperly_configured(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "SANDBOX_ENFORCE_WINDOW": 1}
    with pytest.raises(ImproperlyConfigured, match="SANDBOX_ENFORCE_WINDOW"):
        enforce_window()


# -- delivering a customer's message -----------------------------------------------------------


def test_deliver_inbound_posts_the_message_and_opens_the_window(project: HTTPServer) -> None:
    url = project.url_for("/whatsapp/inbound/sig/")

    delivery = gateway.deliver_inbound(url, "+" + CUSTOMER, text="Is it ready?", to="TestCo")

    assert delivery.ok
    assert (delivery.http_status, delivery.url) == (200, url)
    assert delivery.answer["outcome"] == "understood"
    (posted,) = deliveries(project)
    assert posted == {
        "message_id": delivery.message_id,
        "source_addr": CUSTOMER,
        "destination_addr": "TestCo",
        "message_type": 1,
        "text": "Is it ready?",
        "timestamp": posted["timestamp"],
    }
    assert abs(posted["timestamp"] - time.time()) < 60
    assert gateway.window_open(CUSTOMER)


def test_deliver_an_image(project: HTTPServer) -> None:
    url = project.url_for("/whatsapp/inbound/sig/")
    gateway.deliver_inbound(url, CUSTOMER, image="https://cdn.example.com/r.jpg", text="receipt")
    (posted,) = deliveries(project)
    assert (posted["message_type"], posted["file_url"], posted["text"]) == (
        2,
        "https://cdn.example.com/r.jpg",
        "receipt",
    )


def test_the_sender_defaults_to_default_source_addr(project: HTTPServer) -> None:
    gateway.deliver_inbound(project.url_for("/whatsapp/inbound/sig/"), CUSTOMER, text="x")
    assert deliveries(project)[0]["destination_addr"] == "TestCo"


@pytest.mark.parametrize(
    ("args", "kwargs", "param"),
    [
        (("https://x.io/in/", "abc"), {"text": "x"}, "from"),
        (("https://x.io/in/", "1" * 21), {"text": "x"}, "from"),
        (("ftp://x.io/in/", CUSTOMER), {"text": "x"}, "url"),
        (("https://x.io/in/", CUSTOMER), {"text": "  "}, "text"),
        (("https://x.io/in/", CUSTOMER), {"text": "x" * 4097}, "text"),
        (("https://x.io/in/", CUSTOMER), {"image": "https://x.io/a.gif"}, "image"),
        (("https://x.io/in/", CUSTOMER), {"text": "x", "to": "T" * 21}, "to"),
    ],
)
def test_deliver_inbound_refuses_bad_parameters(
    args: tuple[Any, ...], kwargs: dict[str, Any], param: str
) -> None:
    with pytest.raises(ValueError, match=f"^{param}$"):
        gateway.deliver_inbound(*args, **kwargs)
    assert gateway.last_inbound(CUSTOMER) is None


def test_an_unreachable_project_is_reported(settings: Any) -> None:
    delivery = gateway.deliver_inbound(as_project(settings, closed_port_url()), CUSTOMER, text="x")
    assert not delivery.ok
    assert delivery.http_status is None
    assert delivery.error == "ConnectionError"


def test_the_simulate_endpoint_delivers_and_answers(client: Client, project: HTTPServer) -> None:
    url = project.url_for("/whatsapp/inbound/sig/")
    response = simulate(client, {"from": CUSTOMER, "text": "Hi", "url": url})
    assert response.status_code == 200
    answer = response.json()
    assert (answer["http_status"], answer["url"]) == (200, url)
    assert answer["answer"]["outcome"] == "understood"
    assert deliveries(project)[0]["text"] == "Hi"


def test_the_simulate_endpoint_needs_a_key_and_good_parameters(client: Client) -> None:
    assert simulate(client, {"from": CUSTOMER, "text": "Hi"}, headers={}).status_code == 401
    response = simulate(client, {"from": "nobody", "text": "Hi", "url": "https://x.io/"})
    assert response.status_code == 400
    assert response.json()["name"] == "Invalid Parameter: from"
    assert simulate(client, [1]).json()["name"] == "Invalid Parameter: body"


def test_the_simulate_endpoint_says_when_the_project_did_not_take_it(
    client: Client, settings: Any
) -> None:
    url = as_project(settings, closed_port_url())
    response = simulate(client, {"from": CUSTOMER, "text": "Hi", "url": url})
    assert response.status_code == 502
    assert response.json()["error"] == "ConnectionError"


def test_in_use_follows_base_url(settings: Any) -> None:
    assert sandbox.api_root() == "/sandbox/v1/api"
    assert not sandbox.in_use()  # the tests' BASE_URL is another server
    assert sandbox.in_use("http://localhost:8000/sandbox/v1/api/")
    settings.ROOT_URLCONF = "tests.urls_without_sandbox"
    assert sandbox.api_root() is None
    assert not sandbox.in_use("http://localhost:8000/sandbox/v1/api")


# -- the command -------------------------------------------------------------------------------


def run(*args: str) -> str:
    out = StringIO()
    call_command("whatsapp_sandbox_inbound", *args, stdout=out)
    return out.getvalue()


def test_command_direct_delivery(project: HTTPServer) -> None:
    url = project.url_for("/whatsapp/inbound/sig/")
    output = run("--from", CUSTOMER, "--text", "Hi", "--url", url, "--direct")
    assert f"delivered to {url}: HTTP 200" in output
    assert deliveries(project)[0]["source_addr"] == CUSTOMER
    assert gateway.window_open(CUSTOMER)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--from", CUSTOMER], "Give --text, --image or both."),
        (["--from", "x", "--text", "Hi", "--url", "https://x.io/", "--direct"], "invalid --from"),
        (["--from", CUSTOMER, "--text", "Hi"], "is not this project's sandbox"),
    ],
)
def test_command_errors(args: list[str], error: str) -> None:
    with pytest.raises(CommandError, match=error):
        run(*args)


def test_command_without_an_inbound_url(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_BASE_URL": None}
    with pytest.raises(CommandError, match="No inbound URL"):
        run("--from", CUSTOMER, "--text", "Hi")


def test_command_when_the_server_is_not_running(settings: Any) -> None:
    root = urlsplit(closed_port_url())
    base = f"{root.scheme}://{root.netloc}/sandbox/v1/api"
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "BASE_URL": base}
    with pytest.raises(CommandError, match="is the server running"):
        run("--from", CUSTOMER, "--text", "Hi")


def test_command_reports_a_refusal(settings: Any) -> None:
    url = as_project(settings, closed_port_url())
    with pytest.raises(CommandError, match="no answer"):
        run("--from", CUSTOMER, "--text", "Hi", "--url", url, "--direct")


# -- the whole loop, offline: a live server with the sandbox mounted ---------------------------


@pytest.fixture
def live_sandbox(live_server: Any, settings: Any) -> str:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "BASE_URL": f"{live_server.url}/sandbox/v1/api",
        "CALLBACK_BASE_URL": live_server.url,
        "SANDBOX_ENFORCE_WINDOW": True,
        "SANDBOX_CALLBACK_DELAY": 0,
    }
    return str(live_server.url)


@pytest.fixture
def wa_client(live_sandbox: str) -> Iterator[WhatsAppClient]:
    """A client of its own, closed at the end: no keep-alive connection outlives the test."""
    client = WhatsAppClient.from_settings(get_settings())
    yield client
    client.close()


@pytest.mark.django_db(transaction=True)
def test_the_loop_customer_writes_then_a_text_goes_out(wa_client: WhatsAppClient) -> None:
    # No message from the customer yet: the sandbox refuses a text, as the gateway would.
    refused = services.send_text(CUSTOMER, "Your order is ready", client=wa_client)
    assert refused.status == Message.Status.NOT_SENT
    assert refused.error_name == "Service Unavailable"

    output = run("--from", CUSTOMER, "--text", "Is my order ready?")

    assert "HTTP 200" in output
    assert '"outcome": "understood"' in output
    received = Message.objects.get(direction=Message.Direction.INBOUND)
    assert (received.destination_addr, received.text) == (CUSTOMER, "Is my order ready?")
    assert received.source_addr == "TestCo"
    report = InboundReport.objects.get()
    assert report.outcome == InboundReport.Outcome.UNDERSTOOD
    assert urlsplit(inbound.inbound_url() or "").path == "/whatsapp/inbound/" + (
        inbound.sign("test-callback-secret-1a2b3c") + "/"
    )
    assert Contact.objects.get(number=CUSTOMER).last_inbound_at is not None
    gateway.wait_idle(LIMIT)

    # The callbacks wait until the send is recorded: on SQLite in memory the live server's
    # threads share this thread's one connection.
    with gateway.hold_callbacks():
        answer = services.send_text(CUSTOMER, "Yes, it is ready.", client=wa_client)

    assert answer.provider_message_id is not None
    assert gateway.wait_idle(LIMIT)
    answer.refresh_from_db()
    assert answer.status == Message.Status.SEEN  # the sandbox's callbacks came back


# -- what the command says when the sandbox's server or the project answers badly -------------


@pytest.fixture
def sandbox_server(httpserver: HTTPServer, settings: Any) -> HTTPServer:
    """Stands for the running server whose sandbox the command asks to simulate a customer
    (``BASE_URL`` is its sandbox's API root, so the command posts to it)."""
    base = httpserver.url_for(sandbox.api_root() or "/sandbox/v1/api")
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "BASE_URL": base}
    return httpserver


def simulate_path() -> str:
    return f"{sandbox.api_root()}/{sandbox.SIMULATE_INBOUND_PATH}"


def test_command_without_an_inbound_secret_says_what_to_set(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "CALLBACK_SECRET": None,
        "INBOUND_SECRET": None,
    }
    with pytest.raises(CommandError, match=r"Neither DJANGO_WHATSAPP\['INBOUND_SECRET'\]"):
        run("--from", CUSTOMER, "--text", "Hi")


def test_command_names_the_option_the_sandbox_refused(sandbox_server: HTTPServer) -> None:
    sandbox_server.expect_request(simulate_path(), method="POST").respond_with_json(
        {"name": "Invalid Parameter: to", "message": "", "code": 0, "status": 400}, status=400
    )
    with pytest.raises(CommandError, match=r"^Nothing was delivered: invalid --to\.$"):
        run("--from", CUSTOMER, "--text", "Hi", "--to", "x")
    assert json.loads(sandbox_server.log[0][0].get_data())["to"] == "x"


@pytest.mark.parametrize(
    ("answer", "status", "content_type"),
    [
        ("<html>Bad Gateway</html>", 502, "text/html"),  # not JSON: a proxy's page
        ('["not", "an", "object"]', 200, "application/json"),  # JSON, but no message_id
        ('{"name": "Unauthorized"}', 401, "application/json"),  # an error that names no option
    ],
)
def test_command_quotes_an_answer_it_cannot_understand(
    sandbox_server: HTTPServer, answer: str, status: int, content_type: str
) -> None:
    sandbox_server.expect_request(simulate_path(), method="POST").respond_with_data(
        answer, status=status, content_type=content_type
    )
    with pytest.raises(CommandError) as caught:
        run("--from", CUSTOMER, "--text", "Hi")
    assert str(caught.value) == f"The sandbox answered HTTP {status}: {answer}"


def test_command_fails_when_the_project_refuses_the_message(
    httpserver: HTTPServer, settings: Any
) -> None:
    url = as_project(settings, httpserver.url_for("/whatsapp/inbound/sig/"))
    httpserver.expect_request("/whatsapp/inbound/sig/", method="POST").respond_with_json(
        {"detail": "Invalid signature."}, status=403
    )
    with pytest.raises(CommandError) as caught:
        run("--from", CUSTOMER, "--text", "Hi", "--url", url, "--direct")
    assert str(caught.value).endswith(': HTTP 403 {"detail": "Invalid signature."}')
    assert str(caught.value).startswith("Inbound message ")
