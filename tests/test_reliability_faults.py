"""Faults on the way to the gateway and in the database: each ends in the documented status.

The fault matrix sends one text message through ``services.send_text`` against a gateway over
real TCP on 127.0.0.1 that misbehaves in one way (README "Gateway errors and what to do"):

- it certainly never got the message (refused, connect timeout, 429, 5xx, 401...): retried only
  where the README says so, then ``not_sent``;
- it may have got it (read timeout, dropped connection, a 2xx that is not the documented
  answer): ``unknown``, and never sent again automatically;
- a retried fault that clears: ``accepted`` after the retry.

In every row the message row exists, the error is kept on it (``error_name``/``error_message``)
and on its ``send`` event, the gateway saw exactly the requests the row allows (no send twice
where the gateway may have it), and back-off sleeps are recorded, never slept.

Then a database that fails in the middle of a callback: the endpoint answers 503 with a JSON
reason (so the gateway retries), and writes nothing half-done.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from werkzeug import Request, Response

from django_whatsapp import services, signals
from django_whatsapp.client import WhatsAppClient
from django_whatsapp.conf import get_settings
from django_whatsapp.models import Message, StatusEvent
from django_whatsapp.signing import callback_url
from tests.conftest import SEND_PATH, STATUS_PATH, FakeGateway, SleepRecorder
from tests.rawserver import RawServer, drop, hang

Status = Message.Status
PAYLOADS = Path(__file__).parent / "payloads"
BAD_GATEWAY_HTML = (PAYLOADS / "bad_gateway.html").read_text()
TO = "380501234567"
RETRIES = 3
JSON = "application/json"


def error_body(name: str, message: str, code: int, status: int) -> dict[str, Any]:
    return {"name": name, "message": message, "code": code, "status": status}


SERVER_ERROR = error_body("Internal server error", "The server encountered an error", 2, 500)
TOO_MANY = error_body("Too Many Requests", "Rate limit exceeded", 0, 429)
UNAUTHORIZED = error_body("Unauthorized", "Your request was made with invalid credentials.", 0, 401)
NO_BALANCE = error_body("Topup balance is required", "User balance is empty", 3, 402)
INVALID = error_body(
    "Invalid Parameter: destination_addr", "Empty parameter or parameter validation error", 1, 400
)
WINDOW = error_body(
    "Service Unavailable",
    "More than 24 hours have passed since the customer last replied; only a template can be sent",
    0,
    503,
)


@dataclass
class Answer:
    """One answer of the fake gateway: a body (a dict is sent as JSON), a status, headers."""

    body: Any
    status: int = 200
    headers: dict[str, str] | None = None
    content_type: str = JSON


def accepted(message_id: int = 4242) -> Answer:
    return Answer({"message_id": message_id})


class Sequenced:
    """Answers the sends in turn with ``answers`` (the last one again when they run out), counting
    them."""

    def __init__(self, gateway: FakeGateway, answers: list[Answer]) -> None:
        self.answers = answers
        self.count = 0
        gateway.server.expect_request(SEND_PATH, method="POST").respond_with_handler(self)

    def __call__(self, request: Request) -> Response:
        answer = self.answers[min(self.count, len(self.answers) - 1)]
        self.count += 1
        body = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
        return Response(
            body, answer.status, headers=answer.headers or {}, content_type=answer.content_type
        )


@dataclass
class Row:
    """A fault and what it must end in."""

    status: str
    exception: str | None  # the error kept on the send event (None: accepted, no error left)
    requests: int  # sends that reached the gateway
    sleeps: list[float] | int  # back-off sleeps: the exact delays, or how many
    attempts: int
    answers: list[Answer] | None = None  # None: a transport fault set up by the test


FAULTS: dict[str, Row] = {
    # certainly not taken: retried, then not_sent ------------------------------------------
    "429-retry-after-persists": Row(
        Status.NOT_SENT,
        "RateLimited",
        4,
        [7.0] * RETRIES,
        4,
        [Answer(TOO_MANY, 429, {"Retry-After": "7"})],
    ),
    "500-persists": Row(
        Status.NOT_SENT, "GatewayServerError", 4, 3, 4, [Answer(SERVER_ERROR, 500)]
    ),
    "502-html-persists": Row(
        Status.NOT_SENT,
        "GatewayServerError",
        4,
        3,
        4,
        [Answer(BAD_GATEWAY_HTML, 502, content_type="text/html")],
    ),
    "500-truncated-json-persists": Row(
        Status.NOT_SENT, "GatewayServerError", 4, 3, 4, [Answer('{"name": "Internal', 500)]
    ),
    # refused: never retried, not_sent ----------------------------------------------------
    "401": Row(Status.NOT_SENT, "AuthenticationFailed", 1, 0, 1, [Answer(UNAUTHORIZED, 401)]),
    "402": Row(Status.NOT_SENT, "InsufficientBalance", 1, 0, 1, [Answer(NO_BALANCE, 402)]),
    "400": Row(Status.NOT_SENT, "InvalidParameter", 1, 0, 1, [Answer(INVALID, 400)]),
    "24h-window": Row(Status.NOT_SENT, "ServiceWindowClosed", 1, 0, 1, [Answer(WINDOW, 200)]),
    "2xx-error-body": Row(Status.NOT_SENT, "InvalidParameter", 1, 0, 1, [Answer(INVALID, 200)]),
    # the gateway may have it: unknown, sent once --------------------------------------------
    "2xx-truncated-json": Row(
        Status.UNKNOWN, "UnexpectedResponse", 1, 0, 1, [Answer('{"message_id": 42', 200)]
    ),
    "2xx-html": Row(
        Status.UNKNOWN,
        "UnexpectedResponse",
        1,
        0,
        1,
        [Answer("<html><body>OK</body></html>", 200, content_type="text/html")],
    ),
    "2xx-empty": Row(Status.UNKNOWN, "UnexpectedResponse", 1, 0, 1, [Answer("", 200)]),
    "2xx-without-message-id": Row(
        Status.UNKNOWN, "UnexpectedResponse", 1, 0, 1, [Answer({"result": "ok"}, 200)]
    ),
    # a retried fault that clears: accepted after the retry ----------------------------------
    "429-retry-after-then-accepted": Row(
        Status.ACCEPTED,
        None,
        2,
        [7.0],
        2,
        [Answer(TOO_MANY, 429, {"Retry-After": "7"}), accepted()],
    ),
    "500-then-accepted": Row(
        Status.ACCEPTED, None, 2, 1, 2, [Answer(SERVER_ERROR, 500), accepted()]
    ),
    "502-html-then-accepted": Row(
        Status.ACCEPTED,
        None,
        3,
        2,
        3,
        [Answer(BAD_GATEWAY_HTML, 502, content_type="text/html")] * 2 + [accepted()],
    ),
    "2xx-error-code-2-then-accepted": Row(
        Status.ACCEPTED, None, 2, 1, 2, [Answer(SERVER_ERROR, 200), accepted()]
    ),
}


@pytest.fixture
def settings_for_faults(settings: Any) -> Any:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "MAX_RETRIES": RETRIES,
        "TIMEOUT": (0.3, 0.3),
    }
    return settings


def send(sleeps: SleepRecorder) -> Message:
    client = WhatsAppClient.from_settings(get_settings(), sleep=sleeps, rand=lambda: 0.5)
    with client:
        return services.send_text(TO, "hello", client=client)


def check(message: Message, row: Row, requests: int, sleeps: SleepRecorder) -> None:
    assert Message.objects.count() == 1  # the message is never lost
    fresh = Message.objects.get(pk=message.pk)
    assert fresh.status == row.status
    assert requests == row.requests  # never sent twice where the gateway may have it
    assert fresh.attempts == row.attempts
    if isinstance(row.sleeps, list):
        assert sleeps.calls == row.sleeps
    else:
        assert len(sleeps.calls) == row.sleeps
    event = fresh.events.get(source=StatusEvent.Source.SEND)
    assert event.status == row.status
    if row.exception is None:
        assert (fresh.error_name, fresh.error_message, fresh.error_code) == ("", "", None)
        assert fresh.provider_message_id == 4242
    else:
        # The error is kept, on the message and on its event.
        assert fresh.error_name
        assert fresh.error_message
        assert event.payload["exception"] == row.exception
        assert event.payload["maybe_delivered"] is (row.status == Status.UNKNOWN)
        assert fresh.provider_message_id is None


@pytest.mark.django_db
@pytest.mark.parametrize("fault", list(FAULTS))
def test_gateway_answers(
    fault: str, gateway: FakeGateway, settings_for_faults: Any, sleeps: SleepRecorder
) -> None:
    row = FAULTS[fault]
    assert row.answers is not None
    sequenced = Sequenced(gateway, row.answers)
    message = send(sleeps)
    check(message, row, sequenced.count, sleeps)


# -- transport faults --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """A port whose listener never accepts and whose accept queue is full: the kernel drops
    further SYNs, so connecting times out (a connect timeout on 127.0.0.1, no routing tricks)."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        for _ in range(16):
            filler = socket.socket()
            filler.settimeout(0.2)
            fillers.append(filler)
            try:
                filler.connect(("127.0.0.1", port))
            except TimeoutError:
                break
        else:
            pytest.fail("could not fill the listener's accept queue")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def point_at(settings: Any, port: int) -> None:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "BASE_URL": f"http://127.0.0.1:{port}/v1/api",
    }


@pytest.mark.django_db
def test_connection_refused_is_retried_then_not_sent(
    settings_for_faults: Any, sleeps: SleepRecorder
) -> None:
    point_at(settings_for_faults, free_port())
    message = send(sleeps)
    check(message, Row(Status.NOT_SENT, "TransportError", 0, 3, 4), 0, sleeps)


@pytest.mark.django_db
def test_connect_timeout_is_retried_then_not_sent(
    settings_for_faults: Any, sleeps: SleepRecorder
) -> None:
    with full_backlog() as port:
        point_at(settings_for_faults, port)
        message = send(sleeps)
    check(message, Row(Status.NOT_SENT, "TransportError", 0, 3, 4), 0, sleeps)
    assert "Could not connect" in Message.objects.get().error_message


def truncated_body(server: RawServer, conn: socket.socket) -> None:
    """A 200 whose body stops halfway: Content-Length promises more than comes."""
    server.read_request(conn)
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n"
        b'{"message_id": 1'
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("behaviour", "exception"),
    [(hang, "TransportError"), (drop, "TransportError"), (truncated_body, "TransportError")],
    ids=["read-timeout", "dropped-after-request", "body-cut-short"],
)
def test_no_answer_after_the_request_went_out_is_unknown_and_never_resent(
    behaviour: Callable[..., None],
    exception: str,
    raw_server: Callable[..., RawServer],
    settings_for_faults: Any,
    sleeps: SleepRecorder,
) -> None:
    server = raw_server(behaviour)
    point_at(settings_for_faults, server.port)
    message = send(sleeps)
    server.release.set()
    check(message, Row(Status.UNKNOWN, exception, 1, 0, 1), len(server.requests), sleeps)


@pytest.mark.django_db
def test_an_unknown_message_is_settled_by_its_callback_not_by_a_resend(
    raw_server: Callable[..., RawServer], settings_for_faults: Any, sleeps: SleepRecorder
) -> None:
    """The answer was lost; the gateway's callback then names its id: adopted, and nothing was
    sent twice."""
    server = raw_server(drop)
    point_at(settings_for_faults, server.port)
    message = send(sleeps)
    assert message.status == Status.UNKNOWN
    # Asking again does not resend a message whose outcome is unknown.
    assert services.send_message(Message.objects.get(pk=message.pk)).status == Status.UNKNOWN
    url = callback_url(message.uuid)
    assert url is not None
    response = Client().post(
        urlsplit(url).path, {"message_id": 777, "status": "delivered"}, content_type=JSON
    )
    assert response.status_code == 200
    fresh = Message.objects.get(pk=message.pk)
    assert (fresh.status, fresh.provider_message_id) == (Status.DELIVERED, 777)
    assert len(server.requests) == 1


@pytest.mark.django_db
def test_a_failing_status_poll_changes_nothing_and_resync_goes_on(
    gateway: FakeGateway, settings_for_faults: Any
) -> None:
    broken = Message.objects.create(
        source_addr="TestCo", destination_addr=TO, status=Status.SENT, provider_message_id=1
    )
    fine = Message.objects.create(
        source_addr="TestCo", destination_addr=TO, status=Status.SENT, provider_message_id=2
    )

    def status(request: Request) -> Response:
        asked = json.loads(request.get_data())["message_id"]
        if asked == 1:
            return Response(BAD_GATEWAY_HTML, 502, content_type="text/html")
        return Response(json.dumps({"message_id": 2, "status": 1}), 200, content_type=JSON)

    gateway.server.expect_request(STATUS_PATH, method="POST").respond_with_handler(status)
    settings_for_faults.DJANGO_WHATSAPP = {**settings_for_faults.DJANGO_WHATSAPP, "MAX_RETRIES": 0}
    out, err = io.StringIO(), io.StringIO()
    call_command("whatsapp_resync", stdout=out, stderr=err)
    assert "Polled 2: 1 changed, 0 unchanged, 1 failed." in out.getvalue()
    assert f"message {broken.pk}: failed" in err.getvalue()
    assert Message.objects.get(pk=broken.pk).status == Status.SENT
    assert not broken.events.exists()
    assert Message.objects.get(pk=fine.pk).status == Status.DELIVERED


# -- the database fails in the middle of a callback --------------------------------------------


@contextlib.contextmanager
def failing_event_inserts() -> Iterator[None]:
    """Every INSERT into the event table fails inside the database (a trigger that raises), as
    a full disk, a lost connection or a constraint added by a migration would."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION dw_reliability_refuse() RETURNS trigger AS $$ "
                "BEGIN RAISE EXCEPTION 'the disk is full (simulated)'; END; $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER dw_reliability_refuse BEFORE INSERT ON "
                "django_whatsapp_statusevent FOR EACH ROW EXECUTE FUNCTION dw_reliability_refuse()"
            )
        else:
            cursor.execute(
                "CREATE TRIGGER dw_reliability_refuse BEFORE INSERT ON "
                "django_whatsapp_statusevent BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("DROP TRIGGER dw_reliability_refuse ON django_whatsapp_statusevent")
                cursor.execute("DROP FUNCTION dw_reliability_refuse()")
            else:
                cursor.execute("DROP TRIGGER dw_reliability_refuse")


def callback_path(message: Message) -> str:
    url = callback_url(message.uuid)
    assert url is not None
    return urlsplit(url).path


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("atomic_requests", [False, True], ids=["autocommit", "ATOMIC_REQUESTS"])
def test_a_database_error_in_a_callback_answers_503_and_writes_nothing(
    atomic_requests: bool,
) -> None:
    """Runs on SQLite and PostgreSQL (the PostgreSQL pass of make test and CI)."""
    message = Message.objects.create(
        source_addr="TestCo", destination_addr=TO, status=Status.UNKNOWN
    )
    changed_at = message.status_changed_at
    path = callback_path(message)
    body = json.dumps({"message_id": 31337, "status": "delivered"})
    setting = connection.settings_dict["ATOMIC_REQUESTS"]
    connection.settings_dict["ATOMIC_REQUESTS"] = atomic_requests
    try:
        with failing_event_inserts():
            response = Client().post(path, body, content_type=JSON)
            assert response.status_code == 503, response.content
            assert response["Content-Type"] == JSON
            assert response.json()["ok"] is False
            assert response.json()["error"]
            assert int(response["Retry-After"]) > 0
            fresh = Message.objects.get(pk=message.pk)
            # Nothing half-done: no event, the status and the id are as before.
            assert not StatusEvent.objects.exists()
            assert (fresh.status, fresh.provider_message_id) == (Status.UNKNOWN, None)
            assert fresh.status_changed_at == changed_at
        # The gateway delivers it again once the database is back: applied, exactly once.
        again = Client().post(path, body, content_type=JSON)
        assert again.status_code == 200, again.content
        assert again.json()["applied"] == 1
    finally:
        connection.settings_dict["ATOMIC_REQUESTS"] = setting
    fresh = Message.objects.get(pk=message.pk)
    assert (fresh.status, fresh.provider_message_id) == (Status.DELIVERED, 31337)
    assert list(fresh.events.values_list("status", "source")) == [("delivered", "callback")]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_lost_database_connection_in_a_callback_answers_503() -> None:
    """The database connection is killed under the request (the server restarted, a proxy cut
    it): 503 with a JSON reason, not an HTML 500; the next delivery is applied."""
    if connection.vendor != "postgresql":
        pytest.skip(
            "needs PostgreSQL: a server-side connection is killed with pg_terminate_backend"
        )
    import psycopg

    message = Message.objects.create(source_addr="TestCo", destination_addr=TO, status="sent")
    path = callback_path(message)
    body = json.dumps({"status": "seen"})
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    params = dict(connection.get_connection_params())
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    response = Client().post(path, body, content_type=JSON)
    assert response.status_code == 503, response.content
    assert response.json()["ok"] is False
    connection.close()
    assert Message.objects.get(pk=message.pk).status == Status.SENT
    again = Client().post(path, body, content_type=JSON)
    assert again.status_code == 200
    assert Message.objects.get(pk=message.pk).status == Status.SEEN


@pytest.mark.django_db(transaction=True)
def test_under_atomic_requests_a_report_is_committed_before_status_changed() -> None:
    """The callback never runs inside ``ATOMIC_REQUESTS``: by the time ``status_changed`` is
    sent, the report is committed (a receiver that enqueues work or calls out sees it)."""
    message = Message.objects.create(source_addr="TestCo", destination_addr=TO, status="sent")
    seen: list[bool] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append(connection.in_atomic_block)

    setting = connection.settings_dict["ATOMIC_REQUESTS"]
    connection.settings_dict["ATOMIC_REQUESTS"] = True
    signals.status_changed.connect(receiver, dispatch_uid="reliability.atomic_requests")
    try:
        body = json.dumps({"status": "delivered"})
        response = Client().post(callback_path(message), body, content_type=JSON)
    finally:
        signals.status_changed.disconnect(dispatch_uid="reliability.atomic_requests")
        connection.settings_dict["ATOMIC_REQUESTS"] = setting
    assert response.status_code == 200
    assert seen == [False]
