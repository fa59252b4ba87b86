"""Issue #10, item 8: the sandbox calls only the project's own callback and inbound URLs
(``CALLBACK_BASE_URL`` followed by the app's path); anything else is refused with a 400 that says
so, and nothing is fetched (a server on 127.0.0.1 proves it got no request)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.urls import reverse
from pytest_httpserver import HTTPServer

from django_whatsapp import inbound
from django_whatsapp.sandbox import CALLBACK, INBOUND, is_project_url
from django_whatsapp.sandbox.gateway import gateway
from django_whatsapp.signing import callback_url, mask_url

from .conftest import API_KEY

pytestmark = pytest.mark.django_db

AUTH = {"Authorization": "Basic " + base64.b64encode(API_KEY.encode()).decode()}
CUSTOMER = "380501234567"
INBOUND_PATH = reverse("django_whatsapp:inbound", kwargs={"signature": "ab" * 32})
CALLBACK_PATH = reverse(
    "django_whatsapp:callback",
    kwargs={"message_uuid": "5a0f6f0e-0c1e-4c8e-9a57-2c3d4e5f6a7b", "signature": "cd" * 32},
)
REFUSED_URL = {
    "name": "Invalid Parameter: url",
    "message": "The sandbox only calls this project's own inbound URL (CALLBACK_BASE_URL followed "
    "by the app's signed inbound path); nothing was fetched.",
    "code": 1,
    "status": 400,
}
REFUSED_CALLBACK = {
    "name": "Invalid Parameter: callback_url",
    "message": "The sandbox only calls this project's own status callback URL (CALLBACK_BASE_URL "
    "followed by the app's signed status callback path); nothing was fetched.",
    "code": 1,
    "status": 400,
}


@pytest.fixture(autouse=True)
def clean_gateway() -> Any:
    gateway.reset()
    yield
    gateway.reset()


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def base(settings: Any, url: str) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_BASE_URL": url}


def simulate(client: Client, url: str) -> Any:
    return client.post(
        reverse("django_whatsapp_sandbox:simulate-inbound"),
        json.dumps({"from": CUSTOMER, "text": "Hi", "url": url}),
        content_type="application/json",
        headers=AUTH,
    )


def send(client: Client, url: str) -> Any:
    body = {
        "source_addr": "TestCo",
        "destination_addr": int(CUSTOMER),
        "message_type": 1,
        "text": "Hello",
        "callback_url": url,
    }
    return client.post(
        reverse("django_whatsapp_sandbox:send"),
        json.dumps(body),
        content_type="application/json",
        headers=AUTH,
    )


def test_simulate_inbound_refuses_another_host_and_fetches_nothing(
    client: Client, settings: Any, httpserver: HTTPServer
) -> None:
    base(settings, "https://app.example.com")
    httpserver.expect_request(INBOUND_PATH).respond_with_json({"ok": True})
    response = simulate(client, httpserver.url_for(INBOUND_PATH))
    assert (response.status_code, response.json()) == (400, REFUSED_URL)
    assert httpserver.log == []
    assert gateway.last_inbound(CUSTOMER) is None


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        reverse("django_whatsapp_sandbox:send"),
        CALLBACK_PATH,  # the project's, but not the inbound URL
        f"{INBOUND_PATH}?next=http://elsewhere.example/",
        "/whatsapp/inbound/",
    ],
)
def test_simulate_inbound_refuses_another_path_of_the_project(
    client: Client, settings: Any, httpserver: HTTPServer, path: str
) -> None:
    base(settings, origin(httpserver.url_for("/")))
    httpserver.expect_request(path.split("?")[0]).respond_with_json({"ok": True})
    response = simulate(client, httpserver.url_for(path))
    assert (response.status_code, response.json()) == (400, REFUSED_URL)
    assert httpserver.log == []


def test_simulate_inbound_delivers_to_the_projects_inbound_url(
    client: Client, settings: Any, httpserver: HTTPServer
) -> None:
    base(settings, origin(httpserver.url_for("/")))
    httpserver.expect_request(INBOUND_PATH, method="POST").respond_with_json({"ok": True})
    response = simulate(client, httpserver.url_for(INBOUND_PATH))
    assert response.status_code == 200
    assert len(httpserver.log) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "https://evil.example.com" + CALLBACK_PATH,
        "https://app.example.com/admin/",
        "https://app.example.com" + INBOUND_PATH,  # the project's, but not a callback URL
        "https://user:pw@app.example.com" + CALLBACK_PATH,
        "https://app.example.com" + CALLBACK_PATH + "?x=1",
        "https://app.example.com:8443" + CALLBACK_PATH,
        "http://app.example.com" + CALLBACK_PATH,
    ],
)
def test_a_send_with_a_callback_url_elsewhere_is_refused(client: Client, url: str) -> None:
    response = send(client, url)
    assert (response.status_code, response.json()) == (400, REFUSED_CALLBACK)
    assert gateway.messages() == []


def test_a_send_with_the_projects_callback_url_is_accepted(client: Client, settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "SANDBOX_CALLBACK_DELAY": 3600}
    for url in (
        "https://app.example.com" + CALLBACK_PATH,
        "HTTPS://APP.example.com:443" + CALLBACK_PATH,
    ):
        assert send(client, url).status_code == 200


def test_is_project_url_names_the_apps_two_urls_only(settings: Any) -> None:
    base(settings, "https://app.example.com")
    assert is_project_url("https://app.example.com" + INBOUND_PATH, INBOUND)
    assert is_project_url("https://app.example.com" + CALLBACK_PATH, CALLBACK)
    assert not is_project_url("https://app.example.com" + CALLBACK_PATH, INBOUND)
    assert not is_project_url("https://app.example.com\\@evil.example" + INBOUND_PATH, INBOUND)
    assert not is_project_url(None, INBOUND)
    # Dot segments and escapes that a proxy may turn into another path of the host.
    assert not is_project_url("https://app.example.com/whatsapp/callback/../../", CALLBACK)
    assert not is_project_url("https://app.example.com/whatsapp/inbound/%2e%2e/", INBOUND)
    # The admin passes the address its own request came to.
    assert is_project_url(
        "http://127.0.0.1:8000" + INBOUND_PATH, INBOUND, origin="http://127.0.0.1:8000/"
    )
    base(settings, None)
    assert not is_project_url("https://app.example.com" + INBOUND_PATH, INBOUND)


def test_mask_url_hides_every_signature() -> None:
    url = callback_url("5a0f6f0e-0c1e-4c8e-9a57-2c3d4e5f6a7b")
    assert url is not None
    signature = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    masked = mask_url(url)
    assert signature not in masked
    assert masked.endswith("/5a0f6f0e-0c1e-4c8e-9a57-2c3d4e5f6a7b/<signature>/")
    inbound_url = inbound.inbound_url()
    assert inbound_url is not None
    assert mask_url(inbound_url) == "https://app.example.com/whatsapp/inbound/<signature>/"
    assert mask_url(f"{inbound_url}?sig=secret#x") == mask_url(inbound_url)
