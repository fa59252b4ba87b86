"""No secret leaks: not in a log record, an output, a page, a repr or a Django error report.

``API_KEY`` and ``CALLBACK_SECRET`` (a rotation list) are set to distinctive values. Every log
record of every logger is captured at DEBUG (``django``, ``django.request``, ``urllib3``, SQL
through a debug cursor...), formatted with its traceback, together with command output, admin
pages, reprs, stored errors and Django's error reports (text and HTML, as mailed to ADMINS), while
the app sends, fails in every documented way, times out, refuses bad callbacks, runs its commands
and renders its admin. None of them may hold the key, a callback secret, the key's base64 or the
``Authorization`` header's value.

A status or a gateway error holding a newline cannot forge a log line either.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client, RequestFactory
from django.urls import reverse
from django.views.debug import ExceptionReporter
from werkzeug import Request, Response

from django_whatsapp import services
from django_whatsapp.client import WhatsAppClient
from django_whatsapp.conf import get_settings
from django_whatsapp.exceptions import WhatsAppError, error_from_answer
from django_whatsapp.models import Message, StatusEvent
from django_whatsapp.signing import callback_url
from tests.conftest import SEND_PATH, STATUS_PATH, FakeGateway, SleepRecorder
from tests.waiting import LIMIT

pytestmark = pytest.mark.django_db

API_KEY = "ak-LEAKCHECK-7c1e9d0b2f"
CALLBACK_SECRET = "cs-LEAKCHECK-4f2a8e6d13"
OLD_SECRET = "cs-LEAKCHECK-old-91b3aa"
B64_KEY = base64.b64encode(API_KEY.encode()).decode()
#: The API key of a second account (ACCOUNTS["brand2"]).
BRAND2_KEY = "ak-LEAKCHECK-brand2-5d3c1a"
B64_BRAND2_KEY = base64.b64encode(BRAND2_KEY.encode()).decode()
#: Nothing captured anywhere may contain any of these.
SECRETS = {
    "API_KEY": API_KEY,
    "CALLBACK_SECRET": CALLBACK_SECRET,
    "old CALLBACK_SECRET": OLD_SECRET,
    "base64(API_KEY)": B64_KEY,
    "Authorization header": f"Basic {B64_KEY}",
    "ACCOUNTS['brand2']['API_KEY']": BRAND2_KEY,
    "base64(brand2 API_KEY)": B64_BRAND2_KEY,
}
TO = "380501234567"
JSON = "application/json"
INJECTED = "FAKE LOG LINE"
Status = Message.Status


def assert_clean(where: str, text: str) -> None:
    found = [name for name, secret in SECRETS.items() if secret in text]
    assert not found, f"{', '.join(found)} leaked into {where}"


class Capture(logging.Handler):
    """Every record of every logger, formatted with its traceback and stack."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.texts: list[str] = []
        self.formatter_ = logging.Formatter("%(name)s %(levelname)s %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.texts.append(self.formatter_.format(record))
        self.texts.append(repr(record.args))

    def text(self) -> str:
        return "\n".join(self.texts)


@pytest.fixture
def logs() -> Iterator[Capture]:
    """All loggers at DEBUG, including those that do not propagate; SQL logged too."""
    capture = Capture()
    names = [
        "",
        "django",
        "django.request",
        "django.server",
        "django.security",
        "django.db.backends",
        "urllib3",
        "requests",
        "django_whatsapp",
        *logging.root.manager.loggerDict,
    ]
    loggers = {logging.getLogger(name) for name in names}
    saved = [(logger, logger.level, logger.disabled) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
        if logger is logging.root or not logger.propagate:
            logger.addHandler(capture)
    debug_cursor = connection.force_debug_cursor
    connection.force_debug_cursor = True
    try:
        yield capture
    finally:
        connection.force_debug_cursor = debug_cursor
        for logger, level, disabled in saved:
            logger.setLevel(level)
            logger.disabled = disabled
            logger.removeHandler(capture)
    assert capture.records, "nothing was logged: the capture is not working"
    assert_clean("the logs", capture.text())


@pytest.fixture(autouse=True)
def secrets(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "API_KEY": API_KEY,
        "CALLBACK_SECRET": [CALLBACK_SECRET, OLD_SECRET],
        "MAX_RETRIES": 1,
        "TIMEOUT": (0.5, 0.5),
        "ACCOUNTS": {"brand2": {"API_KEY": BRAND2_KEY, "DEFAULT_SOURCE_ADDR": "Brand2"}},
    }


@pytest.fixture
def wa(gateway: FakeGateway, secrets: None, sleeps: SleepRecorder) -> Iterator[WhatsAppClient]:
    client = WhatsAppClient.from_settings(get_settings(), sleep=sleeps)
    yield client
    client.close()


def stored(message: Message) -> str:
    """Everything kept about a message: its row and its events' payloads."""
    fresh = Message.objects.get(pk=message.pk)
    rows = [repr(vars(fresh)), str(fresh)]
    rows += [json.dumps(e.payload) + repr(vars(e)) for e in StatusEvent.objects.all()]
    return "\n".join(rows)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- sending, and every way it fails -----------------------------------------------------------


def test_a_successful_send_callback_poll_and_resync(
    gateway: FakeGateway, wa: WhatsAppClient, logs: Capture
) -> None:
    gateway.accept()
    message = services.send_text(TO, "hello", client=wa)
    assert message.status == Status.ACCEPTED
    assert gateway.requests[0].headers["Authorization"] == SECRETS["Authorization header"]
    url = callback_url(message.uuid)
    assert url is not None
    assert_clean("the callback URL", url)
    path = urlsplit(url).path
    assert Client().post(path, {"status": "sent"}, content_type=JSON).status_code == 200
    gateway.status(message.provider_message_id or 0, 1)
    services.refresh_status(message, client=wa)
    out, err = io.StringIO(), io.StringIO()
    call_command("whatsapp_resync", stdout=out, stderr=err)
    call_command("whatsapp_resync", "--dry-run", stdout=out, stderr=err)
    assert_clean("the resync output", out.getvalue() + err.getvalue())
    assert_clean("the stored message", stored(message))


ERROR_ANSWERS = {
    "400": ({"name": "Invalid Parameter: text", "message": "bad", "code": 1, "status": 400}, 400),
    "401": ({"name": "Unauthorized", "message": "Bad key", "code": 0, "status": 401}, 401),
    "402": ({"name": "Topup balance is required", "message": "empty", "code": 3}, 402),
    "429": ({"name": "Too Many Requests", "message": "slow", "code": 0, "status": 429}, 429),
    "500": ({"name": "Internal server error", "message": "oops", "code": 2, "status": 500}, 500),
    "502-html": ("<html><h1>502 Bad Gateway</h1></html>", 502),
    "24h": ({"name": "Service Unavailable", "message": "24 hours have passed"}, 200),
    "2xx-truncated": ('{"message_id": 4', 200),
    "2xx-html": ("<html>OK</html>", 200),
}


@pytest.mark.parametrize("answer", list(ERROR_ANSWERS))
def test_every_gateway_error(
    answer: str, gateway: FakeGateway, wa: WhatsAppClient, logs: Capture
) -> None:
    body, status = ERROR_ANSWERS[answer]
    gateway.answer(body, status, headers={"Retry-After": "1"})
    message = services.send_text(TO, "hello", client=wa)
    assert message.status in (Status.NOT_SENT, Status.UNKNOWN)
    assert_clean("the stored message", stored(message))
    with pytest.raises(WhatsAppError) as raised:
        wa.send({"source_addr": "TestCo", "destination_addr": 1, "message_type": 1, "text": "x"})
    error = raised.value
    assert_clean("the exception", f"{error!s} {error!r} {error.args!r} {vars(error)!r}")


def test_a_connection_refused_and_a_read_timeout(
    settings: Any, gateway: FakeGateway, logs: Capture, sleeps: SleepRecorder
) -> None:
    release = threading.Event()

    def slow(request: Request) -> Response:
        """Answers once the client has given up (its read timeout is 0.5 s)."""
        release.wait(LIMIT)
        return Response(json.dumps({"message_id": 1}), 200, content_type=JSON)

    gateway.server.expect_request(SEND_PATH).respond_with_handler(slow)
    try:
        timed_out = services.send_text(
            TO, "hello", client=WhatsAppClient.from_settings(sleep=sleeps)
        )
    finally:
        release.set()
    gateway.wait_answered(1)  # before the next test, which shares the server
    assert timed_out.status == Status.UNKNOWN
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "BASE_URL": f"http://127.0.0.1:{free_port()}/v1/api",
    }
    refused = services.send_text(TO, "hello", client=WhatsAppClient.from_settings(sleep=sleeps))
    assert refused.status == Status.NOT_SENT
    assert_clean("the stored messages", stored(timed_out) + stored(refused))


def test_the_commands(gateway: FakeGateway, logs: Capture) -> None:
    gateway.answer({"message_id": 77}, ordered=True)
    gateway.answer(
        {"name": "Topup balance is required", "message": "empty", "code": 3}, 402, ordered=True
    )
    out, err = io.StringIO(), io.StringIO()
    call_command("whatsapp_send", "--to", TO, "--text", "hi", stdout=out, stderr=err)
    with pytest.raises(CommandError) as refused:
        call_command("whatsapp_send", "--to", TO, "--text", "hi", stdout=out, stderr=err)
    gateway.server.expect_request(STATUS_PATH).respond_with_json({"message_id": 77, "status": 7})
    call_command("whatsapp_resync", "--since", "1d", stdout=out, stderr=err)
    call_command("check", stdout=out, stderr=err)
    assert "77" in out.getvalue()
    assert_clean("the command output", out.getvalue() + err.getvalue() + str(refused.value))


def test_a_second_accounts_key_in_sends_polls_commands_and_reports(
    gateway: FakeGateway, logs: Capture, request_with_env: Any
) -> None:
    gateway.answer({"message_id": 88}, ordered=True)
    gateway.answer({"name": "Unauthorized", "message": "Bad key", "status": 401}, 401, ordered=True)
    sent = services.send_text(TO, "hi", account="brand2")
    assert sent.status == Status.ACCEPTED
    assert gateway.requests[0].headers["Authorization"] == f"Basic {B64_BRAND2_KEY}"
    failed = services.send_text(TO, "hi", account="brand2")
    assert failed.status == Status.NOT_SENT
    gateway.server.expect_request(STATUS_PATH).respond_with_json({"message_id": 88, "status": 7})
    out, err = io.StringIO(), io.StringIO()
    call_command("whatsapp_resync", "--account", "brand2", stdout=out, stderr=err)
    with pytest.raises(CommandError) as refused:
        call_command("whatsapp_send", "--to", TO, "--text", "x", "--account", "nope", stdout=out)
    call_command("check", stdout=out, stderr=err)
    texts = [out.getvalue(), err.getvalue(), str(refused.value), stored(failed)]
    texts += [repr(get_settings("brand2")), str(get_settings("brand2"))]
    texts += list(error_report(raised(lambda: get_settings("nope")), request_with_env))
    for text in texts:
        assert_clean("a second account's output", text)
    assert "'brand2'" in texts[-2]  # the error report shows ACCOUNTS, with the key hidden


# -- callbacks ---------------------------------------------------------------------------------


def test_bad_callbacks(logs: Capture, settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CALLBACK_MAX_BYTES": 100}
    message = Message.objects.create(
        source_addr="TestCo", destination_addr=TO, status=Status.ACCEPTED, provider_message_id=5
    )
    url = callback_url(message.uuid)
    assert url is not None
    path = urlsplit(url).path
    bad_signature = reverse(
        "django_whatsapp:callback", kwargs={"message_uuid": message.uuid, "signature": "0" * 64}
    )
    client = Client()
    answers = [
        client.post(bad_signature, {"status": 1}, content_type=JSON),
        client.post(f"/whatsapp/callback/{message.uuid}/", {"status": 1}, content_type=JSON),
        client.post(path, b"{not json", content_type=JSON),
        client.post(path, b"x" * 500, content_type=JSON),
        client.post(path, {"message_id": 6, "status": 1}, content_type=JSON),
        client.post(path, {"status": "nope"}, content_type=JSON),
        client.put(path, b"", content_type=JSON),
        client.get(path),
    ]
    assert [a.status_code for a in answers] == [403, 403, 400, 413, 400, 400, 405, 400]
    for answer in answers:
        assert_clean("a callback answer", answer.content.decode() + str(answer.headers))


# -- the admin ---------------------------------------------------------------------------------


def test_admin_pages(admin_client: Client, gateway: FakeGateway, logs: Capture) -> None:
    gateway.answer({"name": "Unauthorized", "message": "Bad key", "code": 0, "status": 401}, 401)
    failed = services.send_text(TO, "hello")
    assert failed.status == Status.NOT_SENT
    event = failed.events.get()
    pages = [
        reverse("admin:django_whatsapp_message_changelist"),
        reverse("admin:django_whatsapp_message_change", args=[failed.pk]),
        reverse("admin:django_whatsapp_message_add"),
        reverse("admin:django_whatsapp_statusevent_changelist"),
        reverse("admin:django_whatsapp_statusevent_change", args=[event.pk]),
        reverse("admin:django_whatsapp_template_changelist"),
        reverse("admin:django_whatsapp_template_add"),
    ]
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
        assert_clean(f"the admin page {page}", response.content.decode())


# -- reprs and Django's error reports ----------------------------------------------------------


def test_reprs(gateway: FakeGateway, wa: WhatsAppClient) -> None:
    conf = get_settings()
    gateway.accept()  # a send first: the client then holds its prepared request (and the key)
    wa.send({"source_addr": "TestCo", "destination_addr": 1, "message_type": 1, "text": "x"})
    texts = [repr(conf), str(conf), repr(wa), str(wa), repr(wa.session), repr(wa.__dict__)]
    for body, status in ERROR_ANSWERS.values():
        error = error_from_answer(status, body)
        texts.append(f"{error!s} {error!r}")
    for text in texts:
        assert_clean("a repr", text)


def error_report(exc_info: Any, request: Any) -> tuple[str, str]:
    reporter = ExceptionReporter(request, *exc_info)
    return reporter.get_traceback_text(), reporter.get_traceback_html()


def raised(action: Callable[[], Any]) -> Any:
    try:
        action()
    except Exception:
        return sys.exc_info()
    pytest.fail("nothing was raised")


@pytest.fixture
def request_with_env() -> Any:
    """A request whose WSGI environ carries the secrets as environment variables do under
    servers that copy ``os.environ`` into it (runserver)."""
    return RequestFactory().post(
        "/send/",
        {"text": "hi"},
        WHATSAPP_API_KEY=API_KEY,
        WHATSAPP_CALLBACK_SECRET=CALLBACK_SECRET,
    )


def test_error_report_of_a_failing_poll(settings: Any, request_with_env: Any) -> None:
    """A ``TransportError`` raised from a real connection failure: the report walks the
    chained exception's frames down into requests and urllib3, where the header lives."""
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "BASE_URL": f"http://127.0.0.1:{free_port()}/v1/api",
        "MAX_RETRIES": 0,
    }
    message = Message.objects.create(
        source_addr="TestCo", destination_addr=TO, status=Status.SENT, provider_message_id=9
    )
    exc_info = raised(lambda: services.refresh_status(message))
    assert exc_info[1].__cause__ is not None  # the requests error is chained
    text, html = error_report(exc_info, request_with_env)
    assert "DJANGO_WHATSAPP" in text
    assert "urllib3" in html  # the report does reach the frames that held the header
    assert_clean("the error report (text)", text)
    assert_clean("the error report (HTML)", html)


class BrokenSession:
    """A session whose every request fails inside the transport, after the client built the
    request with its credentials."""

    def post(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("socket library bug")

    def close(self) -> None:
        pass


def test_error_report_of_an_unforeseen_failure_in_a_send(request_with_env: Any) -> None:
    client = WhatsAppClient.from_settings(session=BrokenSession())  # type: ignore[arg-type]
    exc_info = raised(lambda: services.send_text(TO, "hello", client=client))
    text, html = error_report(exc_info, request_with_env)
    assert "socket library bug" in text
    assert_clean("the error report (text)", text)
    assert_clean("the error report (HTML)", html)


def test_settings_in_an_error_report_are_masked_recursively(request_with_env: Any) -> None:
    """Django hides settings whose name matches API|TOKEN|KEY|SECRET|PASS|SIGNATURE, and walks
    into dicts: ``DJANGO_WHATSAPP['API_KEY']`` and the ``CALLBACK_SECRET`` list are hidden,
    ``BASE_URL`` is shown."""
    exc_info = raised(lambda: 1 / 0)
    text, html = error_report(exc_info, request_with_env)
    assert "DJANGO_WHATSAPP" in text
    assert "'API_KEY': '********************'" in text
    assert "'CALLBACK_SECRET': '********************'" in text
    assert "WHATSAPP_API_KEY" in html  # the environ entry is listed, its value hidden
    assert_clean("the error report (text)", text)
    assert_clean("the error report (HTML)", html)


# -- log injection -----------------------------------------------------------------------------


def forged(logs: Capture) -> list[str]:
    """Messages in which the injected text starts a line of its own. Django's SQL debug log
    (``django.db.backends``, only with DEBUG on) quotes values as SQL literals and is left out."""
    return [
        record.getMessage()
        for record in logs.records
        if not record.name.startswith("django.db.backends")
        and (f"\n{INJECTED}" in record.getMessage() or f"\r{INJECTED}" in record.getMessage())
    ]


@pytest.mark.parametrize("where", ["json", "form", "query", "path"])
def test_a_status_with_a_newline_cannot_forge_a_log_line(logs: Capture, where: str) -> None:
    message = Message.objects.create(
        source_addr="TestCo", destination_addr=TO, status=Status.ACCEPTED, provider_message_id=5
    )
    url = callback_url(message.uuid)
    assert url is not None
    path = urlsplit(url).path
    status = f"delivered\n{INJECTED}"
    client = Client()
    if where == "json":
        response = client.post(path, {"status": status}, content_type=JSON)
    elif where == "form":
        response = client.post(
            path, urlencode({"status": status}), content_type="application/x-www-form-urlencoded"
        )
    elif where == "query":
        response = client.get(path, {"status": status})
    else:
        response = client.post(f"{path}%0A{INJECTED.replace(' ', '%20')}/", {"status": 1})
    assert response.status_code in (400, 403, 404)
    assert Message.objects.get(pk=message.pk).status == Status.ACCEPTED
    assert not forged(logs), forged(logs)


def test_a_gateway_error_name_with_a_newline_cannot_forge_a_log_line(
    gateway: FakeGateway, wa: WhatsAppClient, logs: Capture
) -> None:
    gateway.answer({"name": f"Refused\n{INJECTED}", "message": f"no\n{INJECTED}", "code": 1}, 400)
    message = services.send_text(TO, "hello", client=wa)
    assert message.status == Status.NOT_SENT
    assert message.error_name == f"Refused\n{INJECTED}"  # kept as the gateway said it
    assert not forged(logs), forged(logs)
