"""The sandbox gateway: validation, scripted failures, message ids, status steps and callbacks."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.urls import reverse
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from django_whatsapp.sandbox.gateway import (
    Gateway,
    ProviderStatus,
    SandboxMessage,
    SandboxResponse,
    gateway,
    is_authorized,
    load_body,
)
from tests.threads import HelperThreads
from tests.waiting import LIMIT, clock_passes, wait_until

AUTH = {"Authorization": "Basic dGVzdC1hcGkta2V5LTlmOGU3ZA=="}
TINY_DELAY = 0.05

INVALID_MESSAGE = "Empty parameter or parameter validation error"
SEEN_STEPS = [0, 1, 7]
FAILED_STEPS = [0, 4]
REJECTED_STEPS = [2]


def invalid(param: str) -> dict[str, Any]:
    return {
        "name": f"Invalid Parameter: {param}",
        "message": INVALID_MESSAGE,
        "code": 1,
        "status": 400,
    }


TEMPLATE_OBJECT: dict[str, Any] = {
    "to": "380501234567",
    "type": "template",
    "template": {
        "namespace": "acme_ns",
        "language": {"policy": "deterministic", "code": "en_US"},
        "name": "order_ready",
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}],
    },
}


def text_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source_addr": "TestCo",
        "destination_addr": 380501234567,
        "message_type": 1,
        "text": "Hello",
    }
    body.update(changes)
    return body


def media_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source_addr": "TestCo",
        "destination_addr": 380501234567,
        "message_type": 2,
        "file_url": "https://cdn.example.com/images/photo.jpg",
        "text": "A caption",
    }
    body.update(changes)
    return body


def template_body(template: Any = None, **changes: Any) -> dict[str, Any]:
    params = TEMPLATE_OBJECT if template is None else template
    body: dict[str, Any] = {
        "source_addr": "TestCo",
        "destination_addr": 380501234567,
        "message_type": 4,
        "template_name": "order_ready",
        "template_params": params if isinstance(params, str) else json.dumps(params),
    }
    body.update(changes)
    return body


def without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


def template_with(**template_changes: Any) -> dict[str, Any]:
    """TEMPLATE_OBJECT with keys of ``template`` replaced, or dropped when given ``...``."""
    template = dict(TEMPLATE_OBJECT["template"])
    for key, value in template_changes.items():
        if value is ...:
            template.pop(key)
        else:
            template[key] = value
    return {**TEMPLATE_OBJECT, "template": template}


def post(
    client: Client,
    name: str,
    body: Any,
    headers: dict[str, str] | None = None,
) -> Any:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(
        reverse(f"django_whatsapp_sandbox:{name}"),
        data=data,
        content_type="application/json",
        headers=AUTH if headers is None else headers,
    )


def send(client: Client, body: Any, headers: dict[str, str] | None = None) -> Any:
    return post(client, "send", body, headers)


def poll(client: Client, message_id: Any) -> Any:
    return post(client, "status", {"message_id": message_id})


@pytest.fixture(autouse=True)
def clean_gateway() -> Iterator[None]:
    gateway.reset()
    yield
    gateway.reset()


@pytest.fixture
def set_delay(settings: Any) -> Callable[[Any], None]:
    def apply(delay: Any) -> None:
        settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "SANDBOX_CALLBACK_DELAY": delay}

    apply(TINY_DELAY)
    return apply


#: A path of the app's status callback (the sandbox calls no other path).
CB = reverse(
    "django_whatsapp:callback",
    kwargs={"message_uuid": "5a0f6f0e-0c1e-4c8e-9a57-2c3d4e5f6a7b", "signature": "ab" * 32},
)


def closed_port_url() -> str:
    """A callback URL on 127.0.0.1 where nothing listens, so a POST is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{CB}"


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@pytest.fixture
def project(settings: Any) -> Callable[[str], str]:
    """Make ``url``'s origin the project's CALLBACK_BASE_URL (the only one the sandbox calls)
    and answer ``url``."""

    def at(url: str) -> str:
        settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_BASE_URL": origin_of(url)}
        return url

    return at


def callback_bodies(httpserver: HTTPServer) -> list[Any]:
    return [json.loads(request.get_data()) for request, _response in httpserver.log]


# --- URLs, methods and authorization ----------------------------------------------------------


def test_urls_sit_under_the_gateway_root() -> None:
    assert reverse("django_whatsapp_sandbox:send") == "/sandbox/v1/api/send-whatsapp"
    assert reverse("django_whatsapp_sandbox:status") == "/sandbox/v1/api/receive-whatsapp"


@pytest.mark.parametrize("name", ["send", "status"])
@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_only_post_is_allowed(client: Client, name: str, method: str) -> None:
    response = getattr(client, method)(reverse(f"django_whatsapp_sandbox:{name}"), headers=AUTH)
    assert response.status_code == 405
    assert response["Allow"] == "POST"


@pytest.mark.parametrize("name", ["send", "status"])
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Basic"},
        {"Authorization": "Basic    "},
        {"Authorization": "Bearer abc"},
        {"Authorization": "abc"},
    ],
    ids=["missing", "empty", "scheme-only", "blank-key", "bearer", "no-scheme"],
)
def test_missing_or_empty_key_is_401(client: Client, name: str, headers: dict[str, str]) -> None:
    response = post(client, name, text_body(), headers=headers)
    assert response.status_code == 401
    assert response.json() == {
        "name": "Unauthorized",
        "message": "Access key is missing or invalid",
        "code": 401,
        "status": 401,
    }
    assert gateway.messages() == []


@pytest.mark.parametrize("header", ["Basic anything", "basic a2V5", "  Basic x  "])
def test_any_non_empty_basic_key_is_accepted(client: Client, header: str) -> None:
    response = send(client, text_body(), headers={"Authorization": header})
    assert response.status_code == 200


def test_no_login_and_no_csrf_token_needed() -> None:
    """The test project runs LoginRequiredMiddleware and CsrfViewMiddleware."""
    client = Client(enforce_csrf_checks=True)
    assert send(client, text_body()).status_code == 200


# --- validation -------------------------------------------------------------------------------

BODY_ERRORS = [
    pytest.param(b"", id="empty"),
    pytest.param(b"not json", id="not-json"),
    pytest.param(b"\xff\xfe{}", id="not-utf8"),
    pytest.param(b"null", id="null"),
    pytest.param(b"[1, 2]", id="list"),
    pytest.param(b'"text"', id="string"),
    pytest.param(b"[" * 100_000, id="deeply-nested"),
]


@pytest.mark.parametrize("raw", BODY_ERRORS)
def test_send_body_must_be_a_json_object(client: Client, raw: bytes) -> None:
    response = send(client, raw)
    assert response.status_code == 400
    assert response.json() == invalid("body")


LONG = "x" * 4097

SEND_ERRORS = [
    # source_addr
    (without(text_body(), "source_addr"), "source_addr"),
    (text_body(source_addr=""), "source_addr"),
    (text_body(source_addr="   "), "source_addr"),
    (text_body(source_addr="A" * 21), "source_addr"),
    (text_body(source_addr=12345), "source_addr"),
    (text_body(source_addr=None), "source_addr"),
    # destination_addr
    (without(text_body(), "destination_addr"), "destination_addr"),
    (text_body(destination_addr=""), "destination_addr"),
    (text_body(destination_addr="38050abc"), "destination_addr"),
    (text_body(destination_addr="+380501234567"), "destination_addr"),
    (text_body(destination_addr="380 50 123"), "destination_addr"),
    (text_body(destination_addr="1" * 21), "destination_addr"),
    (text_body(destination_addr=10**20), "destination_addr"),
    (text_body(destination_addr=-380501234567), "destination_addr"),
    (text_body(destination_addr=3805012.5), "destination_addr"),
    (text_body(destination_addr=True), "destination_addr"),
    (text_body(destination_addr="\u0661\u0662\u0663"), "destination_addr"),
    (text_body(destination_addr=[380501234567]), "destination_addr"),
    # message_type
    (without(text_body(), "message_type"), "message_type"),
    (text_body(message_type=0), "message_type"),
    (text_body(message_type=3), "message_type"),
    (text_body(message_type=5), "message_type"),
    (text_body(message_type="1"), "message_type"),
    (text_body(message_type=1.0), "message_type"),
    (text_body(message_type=True), "message_type"),
    (text_body(message_type=None), "message_type"),
    # type 1: text
    (without(text_body(), "text"), "text"),
    (text_body(text=""), "text"),
    (text_body(text="  \n "), "text"),
    (text_body(text=LONG), "text"),
    (text_body(text=42), "text"),
    (text_body(text=None), "text"),
    # type 2: file_url and caption
    (without(media_body(), "file_url"), "file_url"),
    (media_body(file_url=""), "file_url"),
    (media_body(file_url="ftp://cdn.example.com/photo.jpg"), "file_url"),
    (media_body(file_url="cdn.example.com/photo.jpg"), "file_url"),
    (media_body(file_url="https:///photo.jpg"), "file_url"),
    (media_body(file_url="https://cdn.example.com/photo.gif"), "file_url"),
    (media_body(file_url="https://cdn.example.com/photo.jpg.exe"), "file_url"),
    (media_body(file_url="https://cdn.example.com/photo"), "file_url"),
    (media_body(file_url="https://cdn.example.com/get?file=photo.jpg"), "file_url"),
    (media_body(file_url="https://cdn.example.com:99999/photo.jpg"), "file_url"),
    (media_body(file_url=" https://cdn.example.com/photo.jpg"), "file_url"),
    (media_body(file_url=["https://cdn.example.com/photo.jpg"]), "file_url"),
    (media_body(text=LONG), "text"),
    (media_body(text=7), "text"),
    # type 4: template_name and template_params
    (without(template_body(), "template_name"), "template_name"),
    (template_body(template_name=""), "template_name"),
    (template_body(template_name=7), "template_name"),
    (without(template_body(), "template_params"), "template_params"),
    (template_body(template_params=TEMPLATE_OBJECT), "template_params"),
    (template_body("not json"), "template_params"),
    (template_body("[]"), "template_params"),
    (template_body(""), "template_params"),
    (template_body(without(TEMPLATE_OBJECT, "to")), "template_params"),
    (template_body({**TEMPLATE_OBJECT, "to": ""}), "template_params"),
    (template_body({**TEMPLATE_OBJECT, "type": "text"}), "template_params"),
    (template_body(without(TEMPLATE_OBJECT, "type")), "template_params"),
    (template_body(without(TEMPLATE_OBJECT, "template")), "template_params"),
    (template_body({**TEMPLATE_OBJECT, "template": "order_ready"}), "template_params"),
    (template_body(template_with(namespace=...)), "template_params"),
    (template_body(template_with(namespace="")), "template_params"),
    (template_body(template_with(name=...)), "template_params"),
    (template_body(template_with(language=...)), "template_params"),
    (template_body(template_with(language="en_US")), "template_params"),
    (template_body(template_with(language={"policy": "deterministic"})), "template_params"),
    (template_body(template_with(language={"code": "en_US"})), "template_params"),
    (template_body(template_with(components={"type": "body"})), "template_params"),
    # callback_url
    (text_body(callback_url=""), "callback_url"),
    (text_body(callback_url="not a url"), "callback_url"),
    (text_body(callback_url="ftp://app.example.com/cb"), "callback_url"),
    (text_body(callback_url="http://"), "callback_url"),
    (text_body(callback_url=5), "callback_url"),
]


@pytest.mark.parametrize(
    ("body", "param"), SEND_ERRORS, ids=[f"{i}-{p}" for i, (_b, p) in enumerate(SEND_ERRORS)]
)
def test_send_validation_errors(client: Client, body: dict[str, Any], param: str) -> None:
    response = send(client, body)
    assert response.status_code == 400
    assert response.json() == invalid(param)
    assert gateway.messages() == []


SEND_ACCEPTED = [
    pytest.param(text_body(), id="text"),
    pytest.param(text_body(source_addr="S" * 20, text="t" * 4096), id="text-at-limits"),
    pytest.param(text_body(text="Привіт 👋"), id="text-unicode"),
    pytest.param(text_body(destination_addr="380501234567"), id="destination-digit-string"),
    pytest.param(text_body(destination_addr="9" * 20), id="destination-20-digits"),
    pytest.param(text_body(callback_url=None), id="callback-null"),
    pytest.param(text_body(callback_url=f"https://app.example.com{CB}"), id="callback-url"),
    pytest.param(text_body(file_url=7, template_name=8, unknown="x"), id="extra-keys-ignored"),
    pytest.param(media_body(), id="media"),
    pytest.param(media_body(file_url="http://cdn.example.com/a/B.JPEG?v=2"), id="media-upper"),
    pytest.param(media_body(file_url="https://cdn.example.com/a.png"), id="media-png"),
    pytest.param(without(media_body(), "text"), id="media-no-caption"),
    pytest.param(media_body(text=""), id="media-empty-caption"),
    pytest.param(template_body(), id="template"),
    pytest.param(template_body(template_with(components=...)), id="template-no-components"),
    pytest.param(template_body({**TEMPLATE_OBJECT, "to": 380501234567}), id="template-int-to"),
]


@pytest.mark.parametrize("body", SEND_ACCEPTED)
def test_send_accepts_valid_messages(client: Client, body: dict[str, Any]) -> None:
    response = send(client, body)
    assert response.status_code == 200, response.json()
    message_id = response.json()["message_id"]
    assert isinstance(message_id, int)
    assert response.json() == {"message_id": message_id}
    message = gateway.message(message_id)
    assert message is not None
    assert message.payload == body


# --- scripted failures by recipient -----------------------------------------------------------

SERVER_ERROR = {
    "name": "Internal server error",
    "message": (
        "The server encountered an unexpected condition which prevented it from fulfilling "
        "the request"
    ),
    "code": 2,
    "status": 500,
}
WINDOW_CLOSED = {
    "name": "Service Unavailable",
    "message": (
        "Message failed to send because more than 24 hours have passed since the customer last "
        "replied to this number. In this case, you can only send a template message"
    ),
    "code": 7,
    "status": 400,
}


@pytest.mark.parametrize("make_body", [text_body, media_body, template_body])
@pytest.mark.parametrize(
    ("destination", "http_status", "expected"),
    [
        (380500000001, 400, invalid("destination_addr")),
        (
            380500000002,
            402,
            {
                "name": "Topup balance is required",
                "message": "User balance is empty",
                "code": 3,
                "status": 402,
            },
        ),
        ("380500000003", 500, SERVER_ERROR),
        (
            380500000004,
            429,
            {
                "name": "Too Many Requests",
                "message": "Rate limit exceeded",
                "code": 0,
                "status": 429,
            },
        ),
    ],
)
def test_failure_suffixes(
    client: Client,
    make_body: Callable[..., dict[str, Any]],
    destination: Any,
    http_status: int,
    expected: dict[str, Any],
) -> None:
    response = send(client, make_body(destination_addr=destination))
    assert response.status_code == http_status
    assert response.json() == expected
    assert gateway.messages() == []


def test_rate_limit_says_when_to_retry(client: Client) -> None:
    response = send(client, text_body(destination_addr=380500000004))
    assert response.status_code == 429
    assert response["Retry-After"] == "1"


def test_other_answers_have_no_retry_after(client: Client) -> None:
    assert not send(client, text_body()).has_header("Retry-After")
    assert not send(client, text_body(destination_addr=380500000003)).has_header("Retry-After")


@pytest.mark.parametrize("make_body", [text_body, media_body])
def test_closed_window_refuses_text_and_media(
    client: Client, make_body: Callable[..., dict[str, Any]]
) -> None:
    response = send(client, make_body(destination_addr=380500000005))
    assert response.status_code == 400
    assert response.json() == WINDOW_CLOSED


def test_closed_window_still_takes_templates(client: Client) -> None:
    response = send(client, template_body(destination_addr=380500000005))
    assert response.status_code == 200
    assert isinstance(response.json()["message_id"], int)


def test_validation_comes_before_scripted_failures(client: Client) -> None:
    response = send(client, text_body(destination_addr=380500000002, text=""))
    assert response.json() == invalid("text")


def test_suffix_only_counts_at_the_end(client: Client) -> None:
    assert send(client, text_body(destination_addr=380000100000)).status_code == 200


@pytest.mark.parametrize(
    ("destination", "steps"),
    [
        (380500000006, (ProviderStatus.SENT, ProviderStatus.FAILED)),
        (380500000007, (ProviderStatus.REJECTED,)),
        (380500000005, (ProviderStatus.SENT, ProviderStatus.DELIVERED, ProviderStatus.SEEN)),
        (380501234567, (ProviderStatus.SENT, ProviderStatus.DELIVERED, ProviderStatus.SEEN)),
    ],
)
def test_accepted_messages_plan_their_steps(
    client: Client, destination: int, steps: tuple[ProviderStatus, ...]
) -> None:
    response = send(client, template_body(destination_addr=destination))
    message = gateway.message(response.json()["message_id"])
    assert message is not None
    assert message.steps == steps


# --- message ids ------------------------------------------------------------------------------


def test_message_ids_strictly_increase_from_the_clock(client: Client) -> None:
    before_ms = time.time_ns() // 1_000_000
    ids = [send(client, text_body()).json()["message_id"] for _ in range(20)]
    assert ids == sorted(set(ids))
    assert ids[0] >= before_ms


def test_ids_keep_increasing_after_reset(client: Client) -> None:
    first = send(client, text_body()).json()["message_id"]
    gateway.reset()
    second = send(client, text_body()).json()["message_id"]
    assert second > first


def test_a_restarted_gateway_starts_past_earlier_ids() -> None:
    before = Gateway().submit(text_body()).body["message_id"]
    wait_until(lambda: clock_passes(before), what="the clock to pass the first id's millisecond")
    after = Gateway().submit(text_body()).body["message_id"]
    assert after > before


def test_ids_are_unique_under_concurrency(helper_threads: HelperThreads) -> None:
    ids: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = [gateway.submit(text_body()).body["message_id"] for _ in range(50)]
        with lock:
            ids.extend(mine)

    for _ in range(8):
        helper_threads.start(worker)
    helper_threads.join(what="the submitting threads")
    assert len(ids) == len(set(ids)) == 400


# --- status endpoint --------------------------------------------------------------------------


def test_status_is_pending_before_the_first_step(client: Client, set_delay: Any) -> None:
    set_delay(60)
    message_id = send(client, text_body()).json()["message_id"]
    response = poll(client, message_id)
    assert response.status_code == 200
    assert response.json() == {"message_id": message_id, "status": 6}


@pytest.mark.parametrize(
    ("destination", "final"), [(380501234567, 7), (380500000006, 4), (380500000007, 2)]
)
def test_status_with_no_delay_is_final_at_once(
    client: Client, set_delay: Any, destination: int, final: int
) -> None:
    set_delay(0)
    message_id = send(client, text_body(destination_addr=destination)).json()["message_id"]
    assert poll(client, message_id).json() == {"message_id": message_id, "status": final}


@pytest.mark.parametrize(
    ("destination", "steps"),
    [(380501234567, SEEN_STEPS), (380500000006, FAILED_STEPS), (380500000007, REJECTED_STEPS)],
)
def test_status_progresses_through_the_steps(
    client: Client, set_delay: Any, destination: int, steps: list[int]
) -> None:
    message_id = send(client, text_body(destination_addr=destination)).json()["message_id"]
    seen: list[int] = []

    def reached_the_last_step() -> bool:
        status = poll(client, message_id).json()["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        return status == steps[-1]

    wait_until(
        reached_the_last_step,
        what=f"the status to reach {steps[-1]}",
        interval=TINY_DELAY / 5,
        describe=lambda: f"seen {seen}",
    )
    order = [6, *steps]
    assert seen[-1] == steps[-1]
    assert [order.index(status) for status in seen] == sorted(order.index(s) for s in seen)


def test_status_steps_fall_on_multiples_of_the_delay() -> None:
    message = SandboxMessage(
        message_id=1,
        payload={},
        accepted_at=100.0,
        delay=2.0,
        steps=(ProviderStatus.SENT, ProviderStatus.DELIVERED, ProviderStatus.SEEN),
        callback_url=None,
    )
    assert message.status_at(100.0) == ProviderStatus.PENDING
    assert message.status_at(101.9) == ProviderStatus.PENDING
    assert message.status_at(102.0) == ProviderStatus.SENT
    assert message.status_at(104.5) == ProviderStatus.DELIVERED
    assert message.status_at(106.0) == ProviderStatus.SEEN
    assert message.status_at(1e9) == ProviderStatus.SEEN


def test_status_accepts_a_numeric_string_and_ignores_extra_keys(
    client: Client, set_delay: Any
) -> None:
    set_delay(0)
    message_id = send(client, text_body()).json()["message_id"]
    response = post(client, "status", {"message_id": str(message_id), "extra": 1})
    assert response.json() == {"message_id": message_id, "status": 7}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"nope", id="not-json"),
        pytest.param([], id="list"),
        pytest.param({}, id="no-id"),
        pytest.param({"message_id": None}, id="null"),
        pytest.param({"message_id": "abc"}, id="not-numeric"),
        pytest.param({"message_id": True}, id="bool"),
        pytest.param({"message_id": 1.5}, id="float"),
        pytest.param({"message_id": 12345}, id="unknown"),
    ],
)
def test_status_of_a_bad_or_unknown_id_is_invalid(client: Client, body: Any) -> None:
    send(client, text_body())
    response = post(client, "status", body)
    assert response.status_code == 400
    assert response.json() == invalid("message_id")


def test_reset_forgets_messages(client: Client) -> None:
    message_id = send(client, text_body()).json()["message_id"]
    gateway.reset()
    assert poll(client, message_id).json() == invalid("message_id")


# --- callbacks over real TCP ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("destination", "steps"),
    [(380501234567, SEEN_STEPS), (380500000006, FAILED_STEPS), (380500000007, REJECTED_STEPS)],
)
def test_callbacks_post_each_step_in_order(
    client: Client,
    set_delay: Any,
    httpserver: HTTPServer,
    project: Callable[[str], str],
    destination: int,
    steps: list[int],
) -> None:
    httpserver.expect_request(CB, method="POST").respond_with_data("ok")
    url = project(httpserver.url_for(CB))
    response = send(client, text_body(destination_addr=destination, callback_url=url))
    message_id = response.json()["message_id"]

    assert gateway.wait_idle(timeout=LIMIT)

    assert callback_bodies(httpserver) == [
        {"message_id": message_id, "status": status} for status in steps
    ]
    for request, _response in httpserver.log:
        assert request.headers["Content-Type"] == "application/json"
        assert "Authorization" not in request.headers
    # The status endpoint agrees with the last callback.
    assert poll(client, message_id).json() == {"message_id": message_id, "status": steps[-1]}


def test_callbacks_agree_with_status_when_they_arrive(
    client: Client, set_delay: Any, httpserver: HTTPServer, project: Callable[[str], str]
) -> None:
    """When a callback reports a step, polling already shows that step (or a later one)."""
    polled: list[tuple[int, int]] = []

    def handler(request: Request) -> Response:
        report = json.loads(request.get_data())
        message = gateway.message(report["message_id"])
        current = -1 if message is None else int(message.status_at(time.monotonic()))
        polled.append((report["status"], current))
        return Response("ok")

    httpserver.expect_request(CB, method="POST").respond_with_handler(handler)
    send(client, text_body(callback_url=project(httpserver.url_for(CB))))
    assert gateway.wait_idle(timeout=LIMIT)
    order = [6, *SEEN_STEPS]
    assert [reported for reported, _ in polled] == SEEN_STEPS
    assert all(
        current in order and order.index(current) >= order.index(reported)
        for reported, current in polled
    )


def test_messages_without_callback_url_start_no_thread(client: Client, set_delay: Any) -> None:
    set_delay(60)
    send(client, text_body())
    assert gateway.wait_idle(timeout=0)


def test_callback_errors_are_logged_and_ignored(
    client: Client,
    set_delay: Any,
    httpserver: HTTPServer,
    caplog: pytest.LogCaptureFixture,
    project: Callable[[str], str],
) -> None:
    set_delay(0.01)
    caplog.set_level(logging.INFO, logger="django_whatsapp.sandbox")
    send(client, text_body(callback_url=project(closed_port_url())))
    httpserver.expect_request(CB).respond_with_data("boom", status=500)
    send(client, text_body(callback_url=project(httpserver.url_for(CB))))

    assert gateway.wait_idle(timeout=LIMIT)

    failures = [
        r for r in caplog.records if r.levelno == logging.WARNING and r.name.endswith("sandbox")
    ]
    assert len(failures) == 3
    # One line each, no traceback, naming the reason, the signed URL masked (a credential).
    assert not any(r.exc_info for r in failures)
    lines = [r.getMessage() for r in failures]
    assert all("\n" not in line for line in lines)
    ours = [r for r in caplog.records if r.name.startswith("django_whatsapp")]
    assert not any("ab" * 32 in r.getMessage() for r in ours)
    assert all("/<signature>/" in line for line in lines)
    assert [line.split(" (")[1].split(")")[0] for line in lines] == ["sent", "delivered", "seen"]
    assert all("failed: cannot connect (" in line for line in lines)
    assert all("CALLBACK_BASE_URL" in line for line in lines)
    # A receiver answering 500 still gets every step.
    assert [body["status"] for body in callback_bodies(httpserver)] == SEEN_STEPS


def test_reset_cancels_pending_callbacks(
    client: Client, set_delay: Any, httpserver: HTTPServer, project: Callable[[str], str]
) -> None:
    # The first step is an hour away: only a reset that cancels it lets the thread end now.
    set_delay(3600)
    httpserver.expect_request(CB).respond_with_data("ok")
    send(client, text_body(callback_url=project(httpserver.url_for(CB))))
    assert not gateway.wait_idle(timeout=0)
    gateway.reset(timeout=LIMIT)
    assert gateway.wait_idle(timeout=0)
    assert httpserver.log == []


def test_held_callbacks_go_when_the_block_ends(
    client: Client, set_delay: Any, httpserver: HTTPServer, project: Callable[[str], str]
) -> None:
    """``hold_callbacks`` (for tests on SQLite in memory): no callback reaches the project while
    the block runs, every step arrives in order after it; a reset cancels held callbacks."""
    set_delay(0)
    released = threading.Event()
    arrived: list[tuple[int, bool]] = []

    def handler(request: Request) -> Response:
        arrived.append((json.loads(request.get_data())["status"], released.is_set()))
        return Response("ok")

    httpserver.expect_request(CB, method="POST").respond_with_handler(handler)
    url = project(httpserver.url_for(CB))
    with gateway.hold_callbacks():
        send(client, text_body(callback_url=url))
        send(client, text_body(callback_url=url, destination_addr=380500000006))
        assert not gateway.wait_idle(timeout=0)
        released.set()
    assert gateway.wait_idle(timeout=LIMIT)
    assert sorted(arrived) == sorted((status, True) for status in SEEN_STEPS + FAILED_STEPS)
    with gateway.hold_callbacks():
        send(client, text_body(callback_url=url))
        gateway.reset(timeout=LIMIT)
    assert gateway.wait_idle(timeout=0)
    assert len(arrived) == len(SEEN_STEPS + FAILED_STEPS)


def test_delay_is_read_at_each_send(client: Client, settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {
        k: v for k, v in settings.DJANGO_WHATSAPP.items() if k != "SANDBOX_CALLBACK_DELAY"
    }
    first = gateway.message(send(client, text_body()).json()["message_id"])
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "SANDBOX_CALLBACK_DELAY": 2}
    second = gateway.message(send(client, text_body()).json()["message_id"])
    assert first is not None
    assert second is not None
    assert first.delay == 1.0
    assert second.delay == 2.0


@pytest.mark.parametrize("delay", [-1, "1", None, True])
def test_bad_delay_setting_is_improperly_configured(set_delay: Any, delay: Any) -> None:
    set_delay(delay)
    with pytest.raises(ImproperlyConfigured, match="SANDBOX_CALLBACK_DELAY"):
        gateway.submit(text_body())


# --- logging and the plain-Python API ---------------------------------------------------------


def test_accepted_messages_are_logged_without_the_key(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="django_whatsapp.sandbox")
    message_id = send(client, text_body()).json()["message_id"]
    infos = [r.getMessage() for r in caplog.records if r.name == "django_whatsapp.sandbox"]
    assert any(str(message_id) in line for line in infos)
    secret = AUTH["Authorization"].split()[1]
    assert not any(secret in line or "Authorization" in line for line in infos)


def test_gateway_api_without_http() -> None:
    accepted = gateway.submit(text_body())
    assert isinstance(accepted, SandboxResponse)
    http_status, body, headers = accepted
    assert (http_status, headers) == (200, {})
    assert gateway.status({"message_id": body["message_id"]}).body["status"] in (6, 0, 1, 7)
    assert gateway.submit("nope") == (400, invalid("body"), {})
    assert gateway.submit(text_body(destination_addr=380500000004)).headers == {"Retry-After": "1"}
    assert [m.message_id for m in gateway.messages()] == [body["message_id"]]


@pytest.mark.parametrize(
    ("header", "ok"),
    [(None, False), ("", False), ("Basic", False), ("Basic k", True), ("BASIC k", True)],
)
def test_is_authorized(header: str | None, ok: bool) -> None:
    assert is_authorized(header) is ok


def test_load_body() -> None:
    assert load_body(b'{"a": 1}') == {"a": 1}
    assert load_body(b"\xff") is None
    assert load_body(b"{") is None


def test_oversized_body_is_an_invalid_body(client: Client, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = send(client, text_body(text="x" * 200))
    assert response.status_code == 400
    assert response.json() == invalid("body")
