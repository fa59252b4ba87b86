"""The gateway client over real TCP on 127.0.0.1: wire format, timeouts, transport, retries.

Answers come from the fake gateway (pytest-httpserver) or, where HTTP itself must misbehave
(dropped connections, stalls, a TLS mismatch), from a raw socket server below. Back-off sleeps
are recorded, not slept; the clock used for ``Retry-After`` dates is injected.
"""

from __future__ import annotations

import base64
import datetime
import email.utils
import json
import math
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from werkzeug import Request, Response

from django_whatsapp import __version__, services
from django_whatsapp.client import (
    USER_AGENT,
    Backoff,
    SendResult,
    StatusResult,
    WhatsAppClient,
    parse_retry_after,
)
from django_whatsapp.conf import get_settings
from django_whatsapp.exceptions import (
    GatewayServerError,
    InvalidParameter,
    RateLimited,
    TransportError,
    UnexpectedResponse,
    WhatsAppError,
)
from django_whatsapp.models import Message, Template
from django_whatsapp.signing import sign, verify

from .conftest import (
    API_KEY,
    CALLBACK_SECRET,
    SEND_PATH,
    STATUS_PATH,
    FakeGateway,
    SleepRecorder,
)
from .rawserver import RawServer, answer, drop, hang, http_json, not_tls

AUTHORIZATION = "Basic " + base64.b64encode(API_KEY.encode()).decode()
TEXT_PAYLOAD = {"source_addr": "TestCo", "destination_addr": 380631234567, "message_type": 1}
#: The headers requests sends, and nothing else (no cookie, no proxy header, no stray auth).
REQUEST_HEADERS = {
    "Host",
    "User-Agent",
    "Accept-Encoding",
    "Accept",
    "Connection",
    "Content-Type",
    "Content-Length",
    "Authorization",
}
FIXED_NOW = 1_735_689_600.0  # 2025-01-01 00:00:00 UTC

MakeClient = Callable[..., WhatsAppClient]


@pytest.fixture
def make_client(gateway: FakeGateway, sleeps: SleepRecorder, settings: Any) -> Iterator[MakeClient]:
    """Build a client from DJANGO_WHATSAPP (with overrides) whose sleeps are recorded."""
    made: list[WhatsAppClient] = []

    def make(
        *,
        rand: float = 0.5,
        now: Callable[[], float] = lambda: FIXED_NOW,
        backoff: Backoff | None = None,
        **overrides: Any,
    ) -> WhatsAppClient:
        settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, **overrides}
        client = WhatsAppClient.from_settings(
            get_settings(), sleep=sleeps, rand=lambda: rand, now=now, backoff=backoff
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def scripted(
    gateway: FakeGateway, *answers: tuple[Any, int, dict[str, str]], path: str = SEND_PATH
):
    """Answer the requests to ``path`` in turn with ``answers`` (the last one repeats)."""
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        body, status, headers = answers[min(len(seen), len(answers)) - 1]
        data = body if isinstance(body, str | bytes) else json.dumps(body)
        return Response(data, status, headers=headers, mimetype="application/json")

    gateway.server.expect_request(path, method="POST").respond_with_handler(handler)
    return seen


def _check_headers(request: Request) -> None:
    assert request.method == "POST"
    assert {name for name, _value in request.headers.items()} == REQUEST_HEADERS
    assert request.headers["Authorization"] == AUTHORIZATION
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"] == USER_AGENT
    assert request.headers["User-Agent"].startswith(f"django-whatsapp/{__version__} ")
    assert int(request.headers["Content-Length"]) == len(request.get_data())


def _only_send(gateway: FakeGateway) -> tuple[Request, dict[str, Any]]:
    (request,) = gateway.requests
    assert request.path == SEND_PATH
    _check_headers(request)
    return request, json.loads(request.get_data())


def _callback_url(message: Message) -> str:
    signature = sign(message.uuid, CALLBACK_SECRET)
    assert verify(message.uuid, signature)
    return f"https://app.example.com/whatsapp/callback/{message.uuid}/{signature}/"


# -- wire format (SPEC section 3) ---------------------------------------------------------------


@pytest.mark.django_db
def test_text_message_on_the_wire(gateway: FakeGateway, wa_client: WhatsAppClient) -> None:
    gateway.accept()

    message = services.send_text("+380 63 123-45-67", "Hello there", client=wa_client)

    _request, body = _only_send(gateway)
    assert body == {
        "source_addr": "TestCo",
        "destination_addr": 380631234567,
        "message_type": 1,
        "text": "Hello there",
        "callback_url": _callback_url(message),
    }
    assert type(body["destination_addr"]) is int
    assert message.status == Message.Status.ACCEPTED
    assert message.provider_message_id == 1001


@pytest.mark.django_db
def test_non_ascii_text_goes_as_utf8_json(gateway: FakeGateway, wa_client: WhatsAppClient) -> None:
    gateway.accept()
    text = "Привет, мир! Ваш заказ готов 👋🏽"

    services.send_text("380631234567", text, client=wa_client, source_addr="Магазин")

    request, body = _only_send(gateway)
    raw = request.get_data()
    assert text.encode("utf-8") in raw
    assert "Магазин".encode() in raw
    assert b"\\u" not in raw
    assert body["text"] == text
    assert body["source_addr"] == "Магазин"


@pytest.mark.django_db
@pytest.mark.parametrize("caption", ["", "Ваш чек 🧾"], ids=["no-caption", "caption"])
def test_image_message_on_the_wire(
    caption: str, gateway: FakeGateway, wa_client: WhatsAppClient
) -> None:
    gateway.accept()
    url = "https://cdn.example.com/receipts/r-17.JPEG"

    message = services.send_media(380631234567, url, caption, client=wa_client)

    _request, body = _only_send(gateway)
    expected: dict[str, Any] = {
        "source_addr": "TestCo",
        "destination_addr": 380631234567,
        "message_type": 2,
        "file_url": url,
        "callback_url": _callback_url(message),
    }
    if caption:
        expected["text"] = caption
    assert body == expected


@pytest.mark.django_db
def test_template_message_on_the_wire(
    gateway: FakeGateway, wa_client: WhatsAppClient, template: Template
) -> None:
    gateway.accept()
    image = "https://cdn.example.com/img/order.PNG"

    message = services.send_template(
        "380631234567", template, ["Олена", "A-17"], header=image, client=wa_client
    )

    _request, body = _only_send(gateway)
    assert isinstance(body["template_params"], str)
    assert json.loads(body["template_params"]) == {
        "to": "380631234567",
        "type": "template",
        "template": {
            "namespace": "ns_1234",
            "language": {"policy": "deterministic", "code": "en_US"},
            "name": "order_ready",
            "components": [
                {"type": "header", "parameters": [{"type": "image", "image": {"link": image}}]},
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Олена"},
                        {"type": "text", "text": "A-17"},
                    ],
                },
            ],
        },
    }
    assert "Олена" in body["template_params"]  # UTF-8 inside the string too, not \u escapes
    assert {k: v for k, v in body.items() if k != "template_params"} == {
        "source_addr": "TestCo",
        "destination_addr": 380631234567,
        "message_type": 4,
        "template_name": "order_ready",
        "callback_url": _callback_url(message),
    }


@pytest.mark.django_db
def test_template_with_a_text_header_and_a_components_override(
    gateway: FakeGateway, wa_client: WhatsAppClient
) -> None:
    gateway.accept(times=2)
    text_header = Template.objects.create(
        name="greeting",
        namespace="ns_9",
        language_code="uk",
        language_policy="fallback",
        body="Вітаємо, {{1}}!",
        header_type=Template.HeaderType.TEXT,
    )
    override = Template.objects.create(
        name="shipment",
        namespace="ns_9",
        language_code="en_US",
        body="Parcel {{1}} arrives {{2}}.",
        header_type=Template.HeaderType.IMAGE,
        components=[
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "{{header}}"}}]},
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "{{1}}"},
                    {"type": "date_time", "date_time": {"fallback_value": "{{ 2 }}"}},
                ],
            },
            {"type": "button", "sub_type": "url", "index": 0, "parameters": []},
        ],
    )

    services.send_template(
        "380631234567", text_header, ["Олено"], header="Сьогодні", client=wa_client
    )
    services.send_template(
        "380631234567",
        "shipment",
        ["PX-1", "tomorrow"],
        header="https://cdn.example.com/p.png",
        client=wa_client,
    )

    first, second = (json.loads(b["template_params"]) for b in gateway.sent_bodies())
    assert first["template"]["language"] == {"policy": "fallback", "code": "uk"}
    assert first["template"]["components"] == [
        {"type": "header", "parameters": [{"type": "text", "text": "Сьогодні"}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Олено"}]},
    ]
    assert second["template"]["name"] == "shipment"
    assert second["template"]["components"] == [
        {
            "type": "header",
            "parameters": [{"type": "image", "image": {"link": "https://cdn.example.com/p.png"}}],
        },
        {
            "type": "body",
            "parameters": [
                {"type": "text", "text": "PX-1"},
                {"type": "date_time", "date_time": {"fallback_value": "tomorrow"}},
            ],
        },
        {"type": "button", "sub_type": "url", "index": 0, "parameters": []},
    ]
    override.refresh_from_db()
    assert override.components[0]["parameters"][0]["image"]["link"] == "{{header}}"


@pytest.mark.django_db
def test_no_callback_url_without_callback_base_url(
    gateway: FakeGateway, wa_client: WhatsAppClient, settings: Any
) -> None:
    gateway.accept()
    settings.DJANGO_WHATSAPP = {
        k: v for k, v in settings.DJANGO_WHATSAPP.items() if k != "CALLBACK_BASE_URL"
    }

    services.send_text("380631234567", "Hi", client=wa_client)

    _request, body = _only_send(gateway)
    assert "callback_url" not in body
    assert body == {
        "source_addr": "TestCo",
        "destination_addr": 380631234567,
        "message_type": 1,
        "text": "Hi",
    }


def test_send_posts_the_payload_as_given(gateway: FakeGateway, wa_client: WhatsAppClient) -> None:
    gateway.answer({"message_id": "98765", "extra": [1, 2]})

    result = wa_client.send({**TEXT_PAYLOAD, "text": "x"})

    assert result == SendResult(
        message_id=98765, attempts=1, body={"message_id": "98765", "extra": [1, 2]}
    )
    _request, body = _only_send(gateway)
    assert body == {**TEXT_PAYLOAD, "text": "x"}


# -- status endpoint ---------------------------------------------------------------------------


def test_status_request_on_the_wire(gateway: FakeGateway, wa_client: WhatsAppClient) -> None:
    gateway.status(554, 1)

    result = wa_client.get_status(554)

    assert result == StatusResult(
        message_id=554, status=1, body={"message_id": 554, "status": 1}, attempts=1
    )
    (request,) = gateway.requests
    assert request.path == STATUS_PATH
    _check_headers(request)
    assert json.loads(request.get_data()) == {"message_id": 554}


@pytest.mark.parametrize(
    ("answer", "message_id", "status"),
    [
        ({"message_id": 554, "status": 7, "updated": "2025-01-01", "meta": {"a": 1}}, 554, 7),
        ({"message_id": "554", "status": "0"}, 554, 0),
        ({"status": 6}, 554, 6),
        ({"message_id": None, "status": 2}, 554, 2),
    ],
    ids=["extra-keys", "numeric-strings", "no-id", "null-id"],
)
def test_status_answer_is_read_tolerantly(
    answer: dict[str, Any],
    message_id: int,
    status: int,
    gateway: FakeGateway,
    wa_client: WhatsAppClient,
) -> None:
    gateway.answer(answer, path=STATUS_PATH)

    result = wa_client.get_status(554)

    assert (result.message_id, result.status, result.body) == (message_id, status, answer)


@pytest.mark.parametrize(
    "answer",
    [
        {"message_id": 554, "status": 8},
        {"message_id": 554, "status": -1},
        {"message_id": 554, "status": "seen"},
        {"message_id": 554, "status": None},
        {"message_id": 554},
        {"message_id": 554, "status": True},
    ],
    ids=["8", "negative", "name", "null", "missing", "boolean"],
)
def test_unknown_status_code_raises(
    answer: dict[str, Any], gateway: FakeGateway, wa_client: WhatsAppClient, sleeps: SleepRecorder
) -> None:
    gateway.answer(answer, path=STATUS_PATH)

    with pytest.raises(UnexpectedResponse) as caught:
        wa_client.get_status(554)

    assert caught.value.body == answer
    assert caught.value.attempts == 1
    assert caught.value.maybe_delivered is False
    assert "no known status" in str(caught.value)
    assert sleeps.calls == []


def test_status_error_body_maps_to_its_exception(
    gateway: FakeGateway, wa_client: WhatsAppClient
) -> None:
    gateway.answer(
        {
            "name": "Invalid Parameter: message_id",
            "message": "Empty parameter or parameter validation error",
            "code": 1,
            "status": 400,
        },
        400,
        path=STATUS_PATH,
    )

    with pytest.raises(InvalidParameter) as caught:
        wa_client.get_status(554)

    assert caught.value.param == "message_id"


# -- timeouts and transport --------------------------------------------------------------------


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def full_backlog_port() -> Iterator[int]:
    """A port on 127.0.0.1 whose listen queue is full, so a new connection cannot complete."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for filler in fillers:
        filler.close()
    listener.close()


def test_read_timeout_is_never_retried(
    gateway: FakeGateway, make_client: MakeClient, sleeps: SleepRecorder
) -> None:
    received: list[Request] = []
    release = threading.Event()

    def slow(request: Request) -> Response:
        received.append(request)
        release.wait(1)  # far longer than the read timeout
        return Response(json.dumps({"message_id": 1}), 200, mimetype="application/json")

    gateway.server.expect_request(SEND_PATH, method="POST").respond_with_handler(slow)
    client = make_client(TIMEOUT=(1, 0.2), MAX_RETRIES=3)
    assert client.timeout == (1.0, 0.2)

    try:
        with pytest.raises(TransportError) as caught:
            client.send(TEXT_PAYLOAD)
    finally:
        release.set()
    gateway.wait_answered(1)  # before the next test, which shares the server

    error = caught.value
    assert error.maybe_delivered is True
    assert error.retryable is False
    assert error.attempts == 1
    assert isinstance(error.__cause__, requests.exceptions.ReadTimeout)
    assert len(received) == 1
    assert sleeps.calls == []


def test_connect_failure_is_retried_then_raised(
    closed_port: int, make_client: MakeClient, sleeps: SleepRecorder
) -> None:
    client = make_client(BASE_URL=f"http://127.0.0.1:{closed_port}/v1/api", MAX_RETRIES=3)

    with pytest.raises(TransportError) as caught:
        client.send(TEXT_PAYLOAD)

    error = caught.value
    assert error.maybe_delivered is False
    assert error.retryable is True
    assert error.attempts == 4
    assert str(error) == "Transport error: Could not connect to the gateway."
    assert isinstance(error.__cause__, requests.exceptions.ConnectionError)
    assert sleeps.calls == [0.375, 0.75, 1.5]


def test_connect_timeout_is_a_connect_failure(
    full_backlog_port: int, make_client: MakeClient, sleeps: SleepRecorder
) -> None:
    client = make_client(
        BASE_URL=f"http://127.0.0.1:{full_backlog_port}/v1/api", TIMEOUT=(0.1, 5), MAX_RETRIES=1
    )

    with pytest.raises(TransportError) as caught:
        client.send(TEXT_PAYLOAD)

    assert isinstance(caught.value.__cause__, requests.exceptions.ConnectTimeout)
    assert caught.value.maybe_delivered is False
    assert caught.value.attempts == 2
    assert sleeps.calls == [0.375]


def test_failed_tls_handshake_is_a_connect_failure(
    raw_server: Callable[..., RawServer], make_client: MakeClient, sleeps: SleepRecorder
) -> None:
    server = raw_server(not_tls)
    client = make_client(BASE_URL=f"https://127.0.0.1:{server.port}/v1/api", MAX_RETRIES=1)

    with pytest.raises(TransportError) as caught:
        client.send(TEXT_PAYLOAD)

    assert isinstance(caught.value.__cause__, requests.exceptions.SSLError)
    assert caught.value.maybe_delivered is False
    assert caught.value.attempts == 2
    assert server.connections == 2
    assert server.requests == []  # no HTTP request was ever readable
    assert sleeps.calls == [0.375]


def test_dropped_connection_after_the_request_is_not_retried(
    raw_server: Callable[..., RawServer], make_client: MakeClient, sleeps: SleepRecorder
) -> None:
    server = raw_server(drop)
    client = make_client(BASE_URL=server.base_url, MAX_RETRIES=3)

    with pytest.raises(TransportError) as caught:
        client.send(TEXT_PAYLOAD)

    error = caught.value
    assert error.maybe_delivered is True
    assert error.attempts == 1
    assert str(error) == (
        "Transport error: The request was sent but the gateway's answer never came."
    )
    assert len(server.requests) == 1
    assert json.loads(server.requests[0].partition(b"\r\n\r\n")[2]) == TEXT_PAYLOAD
    assert sleeps.calls == []


@pytest.mark.parametrize(
    ("behaviour", "cause"),
    [
        (
            answer(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b'Transfer-Encoding: chunked\r\n\r\n20\r\n{"message_id"'
            ),
            requests.exceptions.ChunkedEncodingError,
        ),
        (
            answer(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b'Content-Length: 64\r\n\r\n{"message_id": ',
                then_hang=True,
            ),
            requests.exceptions.ConnectionError,
        ),
    ],
    ids=["broken-chunks", "stalled-body"],
)
def test_answer_cut_short_may_have_been_delivered(
    behaviour: Callable[[RawServer, socket.socket], None],
    cause: type[Exception],
    raw_server: Callable[..., RawServer],
    make_client: MakeClient,
    sleeps: SleepRecorder,
) -> None:
    server = raw_server(behaviour)
    client = make_client(BASE_URL=server.base_url, TIMEOUT=(1, 0.2), MAX_RETRIES=3)

    with pytest.raises(TransportError) as caught:
        client.send(TEXT_PAYLOAD)

    assert caught.value.maybe_delivered is True
    assert caught.value.attempts == 1
    assert type(caught.value.__cause__) is cause
    assert len(server.requests) == 1
    assert sleeps.calls == []


def test_request_that_cannot_be_built_is_not_sent(sleeps: SleepRecorder) -> None:
    client = WhatsAppClient(
        api_key=API_KEY, send_url="http://", status_url="http://", max_retries=0, sleep=sleeps
    )

    with pytest.raises(TransportError) as caught:
        client.send(TEXT_PAYLOAD)

    assert caught.value.maybe_delivered is False
    assert str(caught.value) == "Transport error: The request could not be made: InvalidURL."
    assert sleeps.calls == []


def test_status_poll_is_retried_after_a_read_timeout(
    raw_server: Callable[..., RawServer], make_client: MakeClient, sleeps: SleepRecorder
) -> None:
    server = raw_server(hang, answer(http_json({"message_id": 554, "status": 1})))
    client = make_client(BASE_URL=server.base_url, TIMEOUT=(1, 0.2), MAX_RETRIES=3)

    result = client.get_status(554)

    assert (result.message_id, result.status, result.attempts) == (554, 1, 2)
    assert len(server.requests) == 2
    assert all(r.startswith(b"POST /v1/api/receive-whatsapp ") for r in server.requests)
    assert sleeps.calls == [0.375]


def test_status_poll_gives_up_after_max_retries(
    raw_server: Callable[..., RawServer], make_client: MakeClient, sleeps: SleepRecorder
) -> None:
    server = raw_server(drop)
    client = make_client(BASE_URL=server.base_url, MAX_RETRIES=2)

    with pytest.raises(TransportError) as caught:
        client.get_status(554)

    assert caught.value.attempts == 3
    assert len(server.requests) == 3
    assert sleeps.calls == [0.375, 0.75]


# -- retries -----------------------------------------------------------------------------------

RATE_LIMITED = {
    "name": "Too Many Requests",
    "message": "Rate limit exceeded",
    "code": 0,
    "status": 429,
}
SERVER_ERROR = {
    "name": "Internal server error",
    "message": "The server encountered an unexpected condition",
    "code": 2,
    "status": 500,
}


@pytest.mark.parametrize(
    ("retry_after", "expected_sleep"),
    [
        ("7", 7.0),
        ("0.5", 0.5),
        ("0", 0.0),
        ("-3", 0.0),
        (email.utils.formatdate(FIXED_NOW + 42, usegmt=True), 42.0),
        ("Wed, 01 Jan 2025 00:00:30 -0000", 30.0),
        (email.utils.formatdate(FIXED_NOW - 600, usegmt=True), 0.0),
        ("86400", 60.0),
        ("inf", 60.0),
        ("soon", 0.375),
        ("nan", 0.375),
        ("", 0.375),
    ],
    ids=[
        "seconds",
        "fraction",
        "zero",
        "negative",
        "http-date",
        "http-date-minus-0000",
        "date-in-the-past",
        "huge-is-capped",
        "infinite-is-capped",
        "garbage-uses-backoff",
        "nan-uses-backoff",
        "empty-uses-backoff",
    ],
)
def test_rate_limited_then_accepted_honours_retry_after(
    retry_after: str,
    expected_sleep: float,
    gateway: FakeGateway,
    make_client: MakeClient,
    sleeps: SleepRecorder,
) -> None:
    seen = scripted(
        gateway,
        (RATE_LIMITED, 429, {"Retry-After": retry_after}),
        ({"message_id": 77}, 200, {}),
    )

    result = make_client(MAX_RETRIES=3).send(TEXT_PAYLOAD)

    assert result.message_id == 77
    assert result.attempts == 2
    assert len(seen) == 2
    assert seen[0].get_data() == seen[1].get_data()  # the same body, sent again
    assert sleeps.calls == [expected_sleep]


def test_server_error_honours_retry_after(
    gateway: FakeGateway, make_client: MakeClient, sleeps: SleepRecorder
) -> None:
    scripted(gateway, ("", 503, {"Retry-After": "4"}), ({"message_id": 5}, 200, {}))

    assert make_client().send(TEXT_PAYLOAD).attempts == 2
    assert sleeps.calls == [4.0]


@pytest.mark.parametrize(
    ("body", "status"),
    [(SERVER_ERROR, 500), ("<html><h1>502 Bad Gateway</h1></html>", 502), ("", 503)],
    ids=["500-documented", "502-html", "503-empty"],
)
def test_server_errors_then_success(
    body: Any, status: int, gateway: FakeGateway, make_client: MakeClient, sleeps: SleepRecorder
) -> None:
    seen = scripted(gateway, (body, status, {}), (body, status, {}), ({"message_id": 9}, 200, {}))

    result = make_client(MAX_RETRIES=3).send(TEXT_PAYLOAD)

    assert (result.message_id, result.attempts) == (9, 3)
    assert len(seen) == 3
    assert sleeps.calls == [0.375, 0.75]


@pytest.mark.parametrize("max_retries", [0, 1, 3, 5])
def test_retries_stop_after_max_retries(
    max_retries: int, gateway: FakeGateway, make_client: MakeClient, sleeps: SleepRecorder
) -> None:
    seen = scripted(gateway, (SERVER_ERROR, 500, {}))

    with pytest.raises(GatewayServerError) as caught:
        make_client(MAX_RETRIES=max_retries).send(TEXT_PAYLOAD)

    assert len(seen) == max_retries + 1
    assert caught.value.attempts == max_retries + 1
    assert caught.value.code == 2
    assert len(sleeps.calls) == max_retries


def test_the_last_error_is_raised(
    gateway: FakeGateway, make_client: MakeClient, sleeps: SleepRecorder
) -> None:
    scripted(gateway, (SERVER_ERROR, 500, {}), (RATE_LIMITED, 429, {"Retry-After": "2"}))

    with pytest.raises(RateLimited) as caught:
        make_client(MAX_RETRIES=2).send(TEXT_PAYLOAD)

    assert caught.value.attempts == 3
    assert caught.value.retry_after == 2.0
    assert sleeps.calls == [0.375, 2.0]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "Invalid Parameter: [text]", "message": "m", "code": 1, "status": 400}, 400),
        ({"name": "Topup balance is required", "message": "m", "code": 3, "status": 402}, 402),
        ("", 401),
        (
            {"name": "Service Unavailable", "message": "more than 24 hours have passed"},
            503,
        ),
    ],
    ids=["400", "402", "401", "service-window-503"],
)
def test_refusals_are_never_retried(
    body: Any, status: int, gateway: FakeGateway, make_client: MakeClient, sleeps: SleepRecorder
) -> None:
    seen = scripted(gateway, (body, status, {"Retry-After": "1"}))

    with pytest.raises(WhatsAppError) as caught:
        make_client(MAX_RETRIES=3).send(TEXT_PAYLOAD)

    assert caught.value.retryable is False
    assert caught.value.attempts == 1
    assert len(seen) == 1
    assert sleeps.calls == []


def test_status_poll_is_retried_after_server_errors(
    gateway: FakeGateway, make_client: MakeClient, sleeps: SleepRecorder
) -> None:
    seen = scripted(
        gateway, ("", 502, {}), ({"message_id": 3, "status": 7}, 200, {}), path=STATUS_PATH
    )

    result = make_client().get_status(3)

    assert (result.status, result.attempts) == (7, 2)
    assert len(seen) == 2
    assert sleeps.calls == [0.375]


# -- backoff -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [
        (1, 0.0, 0.25),
        (1, 1.0, 0.5),
        (2, 0.0, 0.5),
        (2, 1.0, 1.0),
        (3, 0.5, 1.5),
        (6, 1.0, 16.0),
        (7, 1.0, 30.0),
        (7, 0.0, 15.0),
        (10_000, 1.0, 30.0),
        (1, 7.0, 0.5),
        (1, -1.0, 0.25),
    ],
)
def test_backoff_delay(attempt: int, rand: float, expected: float) -> None:
    assert Backoff().delay(attempt, None, rand) == expected


@pytest.mark.parametrize(
    ("retry_after", "expected"), [(0.0, 0.0), (12.5, 12.5), (-4.0, 0.0), (60.0, 60.0), (61.0, 60.0)]
)
def test_backoff_honours_retry_after_up_to_its_cap(retry_after: float, expected: float) -> None:
    assert Backoff().delay(3, retry_after, 1.0) == expected
    assert Backoff(max_retry_after=10).delay(1, retry_after, 0.0) == min(expected, 10)


@given(
    attempt=st.integers(min_value=1, max_value=200),
    rand=st.floats(min_value=0, max_value=1),
    base=st.floats(min_value=0.01, max_value=5),
    cap=st.floats(min_value=0.01, max_value=120),
)
def test_backoff_stays_within_half_and_all_of_its_ceiling(
    attempt: int, rand: float, base: float, cap: float
) -> None:
    backoff = Backoff(base=base, cap=cap)
    ceiling = min(cap, base * 2 ** (attempt - 1))
    delay = backoff.delay(attempt, None, rand)
    assert math.isfinite(delay)
    assert ceiling / 2 - 1e-9 <= delay <= ceiling + 1e-9
    assert backoff.delay(attempt + 1, None, rand) >= delay - 1e-9  # never shrinks


@pytest.mark.parametrize(
    ("rand", "expected"), [(0.0, [0.5, 1.0, 2.0, 2.0, 2.0]), (1.0, [1.0, 2.0, 4.0, 4.0, 4.0])]
)
def test_recorded_sleeps_grow_exponentially_and_are_capped(
    rand: float,
    expected: list[float],
    gateway: FakeGateway,
    make_client: MakeClient,
    sleeps: SleepRecorder,
) -> None:
    scripted(gateway, ("", 503, {}))

    with pytest.raises(GatewayServerError):
        make_client(MAX_RETRIES=5, rand=rand, backoff=Backoff(base=1, cap=4)).send(TEXT_PAYLOAD)

    assert sleeps.calls == expected


def test_default_backoff_sleeps_with_jitter(
    gateway: FakeGateway, make_client: MakeClient, sleeps: SleepRecorder
) -> None:
    scripted(gateway, ("", 500, {}))

    with pytest.raises(GatewayServerError):
        make_client(MAX_RETRIES=3, rand=0.0).send(TEXT_PAYLOAD)

    assert sleeps.calls == [0.25, 0.5, 1.0]


def test_parse_retry_after_uses_the_given_clock() -> None:
    date = email.utils.formatdate(FIXED_NOW + 90, usegmt=True)
    assert parse_retry_after(date, now=lambda: FIXED_NOW) == 90.0
    assert parse_retry_after(date, now=lambda: FIXED_NOW + 30) == 60.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("   ") is None
    expected = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC).timestamp()
    assert expected == FIXED_NOW


# -- the client object -------------------------------------------------------------------------


def test_client_uses_the_given_session_and_closes_it(gateway: FakeGateway, settings: Any) -> None:
    class RecordingSession(requests.Session):
        closed = False

        def close(self) -> None:
            self.closed = True
            super().close()

    gateway.accept()
    session = RecordingSession()

    with WhatsAppClient.from_settings(session=session) as client:
        assert client.session is session
        assert client.send(TEXT_PAYLOAD).message_id == 1001
        assert not session.closed

    assert session.closed


def test_a_client_of_its_own_session_hands_each_send_to_the_adapter(
    gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a session given, each send skips ``Session.request`` (its settings merged, the
    environment scanned, hooks run for every send) and goes straight to the adapter, with the
    request prepared once per URL: the same request on the wire, every time."""
    gateway.accept()
    client = WhatsAppClient.from_settings()

    def not_this_way(*args: Any, **kwargs: Any) -> requests.Response:
        raise AssertionError("Session.request was called")

    monkeypatch.setattr(requests.Session, "request", not_this_way)
    first = client.send(TEXT_PAYLOAD)
    second = client.send({**TEXT_PAYLOAD, "text": "a longer text than the first: " + "é" * 40})

    assert (first.message_id, second.message_id) == (1001, 1002)
    for request in gateway.requests:
        _check_headers(request)
    assert json.loads(gateway.requests[1].get_data())["text"].endswith("é" * 40)
    assert "_Route('http://" in repr(client.__dict__)
    assert API_KEY not in repr(client.__dict__)
    client.close()


def test_a_client_of_its_own_session_reads_the_environment_once(
    gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy settings are read when the client is made: a proxy named afterwards (here one
    that would refuse every connection) is not looked up for each send."""
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    gateway.accept()
    client = WhatsAppClient.from_settings()
    with socket.socket() as unused:  # a port nothing listens on: a proxy there refuses
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")

    assert client.send(TEXT_PAYLOAD).message_id == 1001
    assert client.session.trust_env is False
    client.close()


def test_a_proxy_that_cannot_be_reached_means_the_send_never_went_out(
    gateway: FakeGateway,
) -> None:
    """A proxy refusing the connection is a connection that failed, not a request that may
    have reached the gateway (it was taken for one: the message ended ``unknown``)."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    session = requests.Session()
    session.trust_env = False
    session.proxies = {"http": f"http://127.0.0.1:{port}", "https": f"http://127.0.0.1:{port}"}
    with (
        WhatsAppClient.from_settings(session=session, max_retries=0) as client,
        pytest.raises(TransportError, match="Could not connect") as caught,
    ):
        client.send(TEXT_PAYLOAD)
    assert caught.value.maybe_delivered is False
    assert gateway.requests == []


def test_authorization_is_not_replaced_by_netrc(
    gateway: FakeGateway, wa_client: WhatsAppClient, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text("default login someone password other-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    gateway.accept()

    wa_client.send(TEXT_PAYLOAD)

    (request,) = gateway.requests
    assert request.headers["Authorization"] == AUTHORIZATION


def test_client_module_knows_nothing_of_the_orm_or_signals() -> None:
    code = (
        "import sys, django_whatsapp.client\n"
        "loaded = [m for m in sys.modules if m.startswith(('django.db', 'django.dispatch',"
        " 'django_whatsapp.models', 'django_whatsapp.signals', 'django_whatsapp.services'))]\n"
        "print(loaded)\n"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter, fixed code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "[]"
