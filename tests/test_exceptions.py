"""Every error of the provider's document maps to its exception, whatever the HTTP status.

The answers are served by the fake gateway over real TCP on 127.0.0.1; the recorded error
bodies of the provider's document live in ``tests/payloads/provider_errors.json``.
"""

from __future__ import annotations

import base64
import json
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from django_whatsapp import exceptions
from django_whatsapp.client import WhatsAppClient
from django_whatsapp.conf import get_settings
from django_whatsapp.exceptions import (
    AuthenticationFailed,
    GatewayServerError,
    InsufficientBalance,
    InvalidParameter,
    RateLimited,
    ServiceWindowClosed,
    TransportError,
    UnexpectedResponse,
    WhatsAppError,
    error_from_answer,
)

from .conftest import API_KEY, SEND_PATH, FakeGateway, SleepRecorder

PAYLOADS = Path(__file__).parent / "payloads"
PROVIDER_ERRORS: list[dict[str, Any]] = json.loads(
    (PAYLOADS / "provider_errors.json").read_text(encoding="utf-8")
)
BAD_GATEWAY_HTML = (PAYLOADS / "bad_gateway.html").read_text(encoding="utf-8")
ENCODED_KEY = base64.b64encode(API_KEY.encode()).decode()
TEXT_PAYLOAD = {"source_addr": "TestCo", "destination_addr": 380631234567, "message_type": 1}

MakeClient = Callable[..., WhatsAppClient]


@pytest.fixture
def make_client(gateway: FakeGateway, sleeps: SleepRecorder, settings: Any) -> Iterator[MakeClient]:
    """Build a client on the fake gateway after applying DJANGO_WHATSAPP overrides."""
    made: list[WhatsAppClient] = []

    def make(**overrides: Any) -> WhatsAppClient:
        settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, **overrides}
        client = WhatsAppClient.from_settings(get_settings(), sleep=sleeps, rand=lambda: 0.5)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def _assert_no_secret(error: BaseException) -> None:
    for text in (str(error), repr(error)):
        assert API_KEY not in text
        assert ENCODED_KEY not in text


def _sends(gateway: FakeGateway) -> int:
    return sum(1 for r in gateway.requests if r.path == SEND_PATH)


# -- the provider's documented errors ----------------------------------------------------------


@pytest.mark.parametrize("as_http_200", [False, True], ids=["documented-status", "on-http-200"])
@pytest.mark.parametrize("case", PROVIDER_ERRORS, ids=[c["id"] for c in PROVIDER_ERRORS])
def test_documented_error_maps_to_its_exception(
    case: dict[str, Any],
    as_http_200: bool,
    gateway: FakeGateway,
    make_client: MakeClient,
    sleeps: SleepRecorder,
) -> None:
    http_status = 200 if as_http_200 else case["http_status"]
    gateway.answer(case["body"], http_status)
    client = make_client(MAX_RETRIES=2)

    with pytest.raises(WhatsAppError) as caught:
        client.send(TEXT_PAYLOAD)

    error = caught.value
    assert type(error) is getattr(exceptions, case["exception"])
    body = case["body"]
    assert error.name == body["name"]
    assert error.message == body["message"]
    assert error.code == body.get("code")
    assert error.status == body.get("status")
    assert error.http_status == http_status
    assert error.body == body
    assert error.retryable is case["retryable"]
    assert error.maybe_delivered is False
    if "param" in case:
        assert isinstance(error, InvalidParameter)
        assert error.param == case["param"]
    # Retryable errors are tried MAX_RETRIES more times; the others exactly once.
    expected_attempts = 3 if case["retryable"] else 1
    assert error.attempts == expected_attempts
    assert _sends(gateway) == expected_attempts
    assert len(sleeps.calls) == expected_attempts - 1
    _assert_no_secret(error)


@pytest.mark.parametrize("http_status", [200, 400, 429, 500, 503])
def test_service_window_is_recognised_whatever_the_http_status(
    http_status: int, gateway: FakeGateway, make_client: MakeClient, sleeps: SleepRecorder
) -> None:
    gateway.answer(
        {
            "name": "Service Unavailable",
            "message": "Message failed to send because more than 24 hours have passed since the "
            "customer last replied to this number. In this case, you can only send a template "
            "message",
        },
        http_status,
    )
    client = make_client(MAX_RETRIES=3)

    with pytest.raises(ServiceWindowClosed) as caught:
        client.send(TEXT_PAYLOAD)

    assert caught.value.attempts == 1
    assert _sends(gateway) == 1
    assert sleeps.calls == []


# -- answers that are not the documented JSON ---------------------------------------------------


@pytest.mark.parametrize("http_status", [401, 403])
@pytest.mark.parametrize("body", ["", "<html><body>Forbidden</body></html>", {"error": "no"}])
def test_401_and_403_are_authentication_failures(
    http_status: int,
    body: Any,
    gateway: FakeGateway,
    make_client: MakeClient,
    sleeps: SleepRecorder,
) -> None:
    gateway.answer(body, http_status)

    with pytest.raises(AuthenticationFailed) as caught:
        make_client().send(TEXT_PAYLOAD)

    error = caught.value
    assert error.http_status == http_status
    assert error.name == "Authentication failed"
    assert error.retryable is False
    assert _sends(gateway) == 1
    assert sleeps.calls == []
    _assert_no_secret(error)


def test_502_html_page_is_a_server_error_and_keeps_the_page(
    gateway: FakeGateway, make_client: MakeClient, sleeps: SleepRecorder
) -> None:
    gateway.server.expect_request(SEND_PATH, method="POST").respond_with_data(
        BAD_GATEWAY_HTML, status=502, content_type="text/html"
    )

    with pytest.raises(GatewayServerError) as caught:
        make_client(MAX_RETRIES=1).send(TEXT_PAYLOAD)

    error = caught.value
    assert error.http_status == 502
    assert error.code is None
    assert error.name == "Internal server error"
    assert "502 Bad Gateway" in error.body
    assert error.attempts == 2
    assert len(sleeps.calls) == 1
    assert "502 Bad Gateway" not in str(error)  # the page is kept on .body, not shown


def test_404_html_is_a_plain_gateway_error_not_retried(
    gateway: FakeGateway, make_client: MakeClient, sleeps: SleepRecorder
) -> None:
    gateway.server.expect_request(SEND_PATH, method="POST").respond_with_data(
        "<html><h1>Not Found</h1></html>", status=404, content_type="text/html"
    )

    with pytest.raises(WhatsAppError) as caught:
        make_client().send(TEXT_PAYLOAD)

    error = caught.value
    assert type(error) is WhatsAppError
    assert error.http_status == 404
    assert str(error) == ("WhatsApp gateway error: The gateway refused the request. (HTTP 404)")
    assert error.retryable is False
    assert error.attempts == 1
    assert _sends(gateway) == 1
    assert sleeps.calls == []


@pytest.mark.parametrize(
    ("data", "content_type", "expected_body"),
    [
        ("<html><body>OK</body></html>", "text/html", "<html><body>OK</body></html>"),
        ("", "application/json", None),
        ("   \n", "application/json", None),
        ("OK", "text/plain", "OK"),
        ('{"message_id": 12', "application/json", '{"message_id": 12'),
        (b"\xff\xfe\xfa", "application/json", "\ufffd\ufffd\ufffd"),
        ("[1, 2]", "application/json", [1, 2]),
        ('"accepted"', "application/json", "accepted"),
    ],
    ids=["html", "empty", "blank", "plain-text", "truncated-json", "not-utf8", "list", "string"],
)
def test_2xx_without_a_json_object_is_unexpected_and_maybe_delivered(
    data: str | bytes,
    content_type: str,
    expected_body: Any,
    gateway: FakeGateway,
    make_client: MakeClient,
    sleeps: SleepRecorder,
) -> None:
    gateway.server.expect_request(SEND_PATH, method="POST").respond_with_data(
        data, status=200, content_type=content_type
    )

    with pytest.raises(UnexpectedResponse) as caught:
        make_client().send(TEXT_PAYLOAD)

    error = caught.value
    assert error.maybe_delivered is True
    assert error.retryable is False
    assert error.http_status == 200
    assert error.body == expected_body
    assert error.attempts == 1
    assert _sends(gateway) == 1
    assert sleeps.calls == []


@pytest.mark.parametrize(
    "body",
    [{}, {"status": "ok"}, {"message_id": None}, {"message_id": "12a"}, {"message_id": True}],
    ids=["empty-object", "no-id", "null-id", "not-numeric", "boolean"],
)
def test_200_json_without_a_usable_message_id_is_unexpected(
    body: dict[str, Any], gateway: FakeGateway, make_client: MakeClient
) -> None:
    gateway.answer(body, 200)

    with pytest.raises(UnexpectedResponse) as caught:
        make_client().send(TEXT_PAYLOAD)

    assert caught.value.maybe_delivered is True
    assert caught.value.body == body
    assert caught.value.attempts == 1
    assert str(caught.value) == (
        "Unexpected response: The gateway's answer has no message_id. (HTTP 200)"
    )


def test_error_body_without_a_known_code_on_200_is_still_an_error(
    gateway: FakeGateway, make_client: MakeClient, sleeps: SleepRecorder
) -> None:
    gateway.answer({"name": "Something new", "message": "Not documented", "code": 42}, 200)

    with pytest.raises(WhatsAppError) as caught:
        make_client().send(TEXT_PAYLOAD)

    assert type(caught.value) is WhatsAppError
    assert caught.value.code == 42
    assert str(caught.value) == "Something new: Not documented (code 42, HTTP 200)"
    assert sleeps.calls == []


# -- the mapping itself -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("http_status", "body", "expected"),
    [
        (200, {"message_id": 5}, None),
        (200, {"message_id": 5, "name": "x", "code": 1, "message": "m"}, None),
        (204, None, None),
        (429, None, RateLimited),
        (200, {"name": "x", "status": "429"}, RateLimited),
        (200, {"code": 2, "message": "boom"}, GatewayServerError),
        (200, {"name": "Invalid Parameter"}, InvalidParameter),
        (200, {"name": "oops", "code": "3"}, InsufficientBalance),
        (200, {"name": "oops", "status": 402}, InsufficientBalance),
        (402, "<html>Payment Required</html>", InsufficientBalance),
        (200, {"name": "Unauthorized", "status": 401}, AuthenticationFailed),
        (200, {"name": "Forbidden", "status": "403"}, AuthenticationFailed),
        (200, {"name": "Bad gateway", "status": 502}, GatewayServerError),
        (503, None, GatewayServerError),
        (400, None, InvalidParameter),
        (400, {"name": "Bad request", "code": 99}, InvalidParameter),
        (409, {"error": "conflict"}, WhatsAppError),
        (301, None, WhatsAppError),
        (200, {"name": "Invalid Parameters", "code": 77}, WhatsAppError),
    ],
)
def test_error_from_answer(http_status: int, body: Any, expected: type | None) -> None:
    error = error_from_answer(http_status, body)
    if expected is None:
        assert error is None
    else:
        assert type(error) is expected
        assert error is not None
        assert error.http_status == http_status
        assert error.body == body


@pytest.mark.parametrize(
    ("value", "expected"),
    [("429", 429), (" -1 ", -1), (7, 7), (True, None), ("4a", None), ("²", None), (1.5, None)],
)
def test_error_fields_are_read_as_integers_only_when_they_are(value: Any, expected: Any) -> None:
    error = error_from_answer(500, {"name": "x", "code": value, "status": value})
    assert error is not None
    assert error.code == expected
    assert error.status == expected


@pytest.mark.parametrize(
    ("name", "param"),
    [
        ("Invalid Parameter: [param_name]", "param_name"),
        ("Invalid Parameter: destination_addr", "destination_addr"),
        ("invalid parameter:[text]", "text"),
        ("Invalid Parameter [file_url]", "file_url"),
        ("Invalid Parameter", None),
        ("Invalid Parameter: []", None),
        ("Something else", None),
    ],
)
def test_invalid_parameter_names_the_parameter(name: str, param: str | None) -> None:
    assert InvalidParameter(name=name).param == param


def test_retry_after_is_kept_on_retryable_errors() -> None:
    rate = error_from_answer(429, None, retry_after=7.0)
    server = error_from_answer(503, None, retry_after=3.0)
    refused = error_from_answer(400, None, retry_after=9.0)
    assert rate is not None
    assert rate.retry_after == 7.0
    assert server is not None
    assert server.retry_after == 3.0
    assert refused is not None
    assert refused.retry_after is None


# -- the exceptions themselves ------------------------------------------------------------------


def test_every_exception_is_a_whatsapp_error_with_readable_defaults() -> None:
    for cls in (
        RateLimited,
        InvalidParameter,
        InsufficientBalance,
        ServiceWindowClosed,
        GatewayServerError,
        AuthenticationFailed,
        UnexpectedResponse,
    ):
        error = cls()
        assert isinstance(error, WhatsAppError)
        assert str(error) == f"{error.name}: {error.message}"
        assert repr(error).startswith(f"{cls.__name__}(name={error.name!r}")
        assert error.code is None
        assert error.status is None
        assert error.attempts == 0


def test_str_and_repr_show_the_gateways_answer() -> None:
    error = RateLimited(
        "Rate limit exceeded", name="Too Many Requests", code=0, status=429, http_status=429
    )
    assert str(error) == "Too Many Requests: Rate limit exceeded (code 0, status 429)"
    assert repr(error) == (
        "RateLimited(name='Too Many Requests', message='Rate limit exceeded', code=0, "
        "status=429, http_status=429)"
    )
    assert error.args == ("Rate limit exceeded",)

    wrong = InvalidParameter(
        "Empty parameter or parameter validation error",
        name="Invalid Parameter: [text]",
        code=1,
        status=4,
        http_status=400,
    )
    assert str(wrong) == (
        "Invalid Parameter: [text]: Empty parameter or parameter validation error "
        "(code 1, status 4, HTTP 400)"
    )


@pytest.mark.parametrize("maybe_delivered", [True, False])
def test_transport_error_says_whether_the_gateway_may_have_the_message(
    maybe_delivered: bool,
) -> None:
    error = TransportError("No answer.", maybe_delivered=maybe_delivered)
    assert error.maybe_delivered is maybe_delivered
    assert error.retryable is not maybe_delivered
    assert str(error) == "Transport error: No answer."


@pytest.mark.parametrize(
    "error",
    [
        RateLimited("slow down", code=0, status=429, http_status=429, retry_after=4.0),
        InvalidParameter(name="Invalid Parameter: [text]", code=1, body={"code": 1}),
        TransportError("gone", maybe_delivered=True),
        TransportError("refused", maybe_delivered=False),
        UnexpectedResponse("odd", http_status=200, body="<html>"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_exceptions_survive_pickling(error: WhatsAppError) -> None:
    error.attempts = 3
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object
    assert type(copy) is type(error)
    assert copy.args == error.args
    assert (copy.name, copy.message, copy.code, copy.status) == (
        error.name,
        error.message,
        error.code,
        error.status,
    )
    assert (copy.http_status, copy.body, copy.retry_after, copy.attempts) == (
        error.http_status,
        error.body,
        error.retry_after,
        error.attempts,
    )
    assert copy.maybe_delivered is error.maybe_delivered
    assert copy.retryable is error.retryable
    assert str(copy) == str(error)


@pytest.mark.parametrize("http_status", [401, 403])
def test_an_http_auth_error_with_code_zero_is_not_a_rate_limit(http_status: int) -> None:
    body = {"name": "Unauthorized", "message": "Bad key", "code": 0, "status": http_status}
    error = error_from_answer(http_status, body)
    assert type(error) is AuthenticationFailed


@pytest.mark.parametrize("http_status", [404, 409])
def test_another_http_error_with_code_zero_is_not_a_rate_limit(http_status: int) -> None:
    body = {"name": "Not Found", "message": "No such page", "code": 0, "status": http_status}
    error = error_from_answer(http_status, body)
    assert type(error) is WhatsAppError
    assert not error.retryable
