"""Whose fault is it (django_whatsapp.faults): the one classification of a send's outcome, for
every error class of the provider's document and what can happen on the road to it; the
account's hold; the circuit breaker shared through the database."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache.backends.redis import RedisCache
from django.utils import timezone

from django_whatsapp import faults, services, signals
from django_whatsapp.client import SendResult, WhatsAppClient
from django_whatsapp.exceptions import (
    AuthenticationFailed,
    GatewayServerError,
    InsufficientBalance,
    OptedOut,
    RateLimited,
    RateLimitUnavailable,
    TransportError,
    UnexpectedResponse,
    WhatsAppError,
    error_from_answer,
)
from django_whatsapp.faults import Fault
from django_whatsapp.models import AccountState, Campaign
from django_whatsapp.ratelimit import SharedRateLimit

from .rawserver import RawServer

SERVER_ERROR = (
    "The server encountered an unexpected condition which prevented it from fulfilling the request"
)
WINDOW = (
    "Message failed to send because more than 24 hours have passed since the customer last "
    "replied to this number. In this case, you can only send a template message"
)

#: Each error of the provider's document (its name, message, code and status) as answered with
#: its HTTP status, and whose fault it is.
DOCUMENTED = [
    pytest.param(
        429,
        {"name": "Too Many Requests", "message": "Rate limit exceeded", "code": 0, "status": 429},
        Fault.SYSTEM,
        id="429 code 0: rate limit",
    ),
    pytest.param(
        400,
        {
            "name": "Invalid Parameter: [destination_addr]",
            "message": "Empty parameter or parameter validation error",
            "code": 1,
            "status": 400,
        },
        Fault.MESSAGE,
        id="400 code 1: invalid parameter",
    ),
    *(
        pytest.param(
            500,
            {"name": "Internal server error", "message": SERVER_ERROR, "code": code, "status": 500},
            Fault.SYSTEM,
            id=f"500 code {code}: server error",
        )
        for code in (2, 4, 5, 6)
    ),
    pytest.param(
        402,
        {
            "name": "Topup balance is required",
            "message": "User balance is empty",
            "code": 3,
            "status": 402,
        },
        Fault.ACCOUNT,
        id="402 code 3: balance",
    ),
    pytest.param(
        200,
        {"name": "Service Unavailable", "message": WINDOW},
        Fault.MESSAGE,
        id="24-hour window closed",
    ),
    pytest.param(401, {"name": "Unauthorized", "code": 0, "status": 401}, Fault.ACCOUNT, id="401"),
    pytest.param(403, {"name": "Forbidden", "code": 0, "status": 403}, Fault.ACCOUNT, id="403"),
    pytest.param(404, "<html>Not Found</html>", Fault.SYSTEM, id="404 from a proxy"),
    pytest.param(503, "<html>Bad Gateway</html>", Fault.SYSTEM, id="503 from a proxy"),
    pytest.param(418, {"name": "Teapot", "message": "No", "code": 99}, Fault.MESSAGE, id="418"),
]


@pytest.mark.parametrize(("http_status", "body", "expected"), DOCUMENTED)
def test_every_documented_error_is_classified(http_status: int, body: Any, expected: Fault) -> None:
    error = error_from_answer(http_status, body)
    assert error is not None
    assert faults.classify(error) is expected


def test_the_gateway_taking_the_message_is_nobodys_fault() -> None:
    assert faults.classify(SendResult(message_id=1, attempts=1, body={})) is Fault.SENT


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _client(base_url: str, **kwargs: Any) -> WhatsAppClient:
    return WhatsAppClient(
        api_key="k",
        send_url=f"{base_url}/send",
        status_url=f"{base_url}/status",
        timeout=(2.0, 0.5),
        max_retries=0,
        **kwargs,
    )


def _outcome(client: WhatsAppClient) -> BaseException:
    try:
        client.send({"destination_addr": 380501234567, "text": "Hi"})
    except BaseException as error:  # the outcome under test
        return error
    raise AssertionError("the send succeeded")


def test_a_refused_connection_is_the_systems_fault() -> None:
    error = _outcome(_client(f"http://127.0.0.1:{_free_port()}"))
    assert isinstance(error, TransportError)
    assert not error.maybe_delivered
    assert faults.classify(error) is Fault.SYSTEM


def test_a_read_timeout_may_have_reached_the_gateway(
    raw_server: Any,
) -> None:
    def hang(server: RawServer, connection: socket.socket) -> None:
        server.read_request(connection)
        server.release.wait()  # no answer until the test ends

    server = raw_server(hang)
    error = _outcome(_client(server.base_url))
    assert isinstance(error, TransportError)
    assert error.maybe_delivered
    assert faults.classify(error) is Fault.MAYBE_SENT


def test_an_unreachable_rate_limit_cache_sends_nothing_and_is_the_systems_fault(
    raw_server: Any,
) -> None:
    seen: list[bytes] = []

    def record(server: RawServer, connection: socket.socket) -> None:
        seen.append(server.read_request(connection))

    gateway = raw_server(record)
    cache = RedisCache(f"redis://127.0.0.1:{_free_port()}/0", {"OPTIONS": {}})
    gate = SharedRateLimit(10, cache)
    error = _outcome(_client(gateway.base_url, gate=gate))
    assert isinstance(error, RateLimitUnavailable)
    assert error.attempts == 0
    assert "127.0.0.1" not in str(error)  # the cache's address is not told
    assert seen == []  # nothing went out: the limit fails closed
    assert faults.classify(error) is Fault.SYSTEM


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (UnexpectedResponse("no message_id", http_status=200), Fault.MAYBE_SENT),
        (OptedOut(), Fault.MESSAGE),
        (RuntimeError("a bug on the way"), Fault.MAYBE_SENT),
        (WhatsAppError("odd", http_status=None), Fault.MESSAGE),
        (WhatsAppError("no such endpoint", http_status=404), Fault.SYSTEM),
    ],
)
def test_what_else_can_happen_is_classified(outcome: BaseException, expected: Fault) -> None:
    assert faults.classify(outcome) is expected


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            InsufficientBalance("Topup balance is required", code=3, http_status=402),
            "The gateway says the account's balance is empty: top it up, then resume. "
            "(Topup balance is required: Topup balance is required (code 3, HTTP 402))",
        ),
        (
            RateLimited("Rate limit exceeded", code=0, http_status=429),
            "The gateway keeps answering “too many requests”. "
            "(Too Many Requests: Rate limit exceeded (code 0, HTTP 429))",
        ),
        (
            GatewayServerError("Bad Gateway", http_status=502),
            "The gateway answers with server errors. "
            "(Internal server error: Bad Gateway (HTTP 502))",
        ),
        (
            TransportError("Connection refused.", maybe_delivered=False),
            "The gateway cannot be reached. (Transport error: Connection refused.)",
        ),
        (
            RateLimitUnavailable("redis at 10.0.0.9 \x00 down"),
            "The cache that holds the shared rate limit cannot be reached. "
            "(Rate limit unavailable: redis at 10.0.0.9 \\x00 down)",
        ),
        (
            ConnectionResetError("peer 10.0.0.9"),
            "The gateway cannot be reached. (ConnectionResetError)",
        ),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else "",
)
def test_each_fault_is_described_for_the_operator(error: BaseException, expected: str) -> None:
    assert faults.describe(error) == expected


def test_only_the_messages_own_fault_and_maybe_sent_are_final() -> None:
    assert {f for f in Fault if f.is_final} == {Fault.SENT, Fault.MESSAGE, Fault.MAYBE_SENT}


# -- the account's hold ------------------------------------------------------------------------


@pytest.fixture
def paused_signals() -> Iterator[list[tuple[Campaign, str]]]:
    got: list[tuple[Campaign, str]] = []

    def receiver(sender: Any, campaign: Campaign, reason: str, **kwargs: Any) -> None:
        assert sender is Campaign
        got.append((campaign, reason))

    signals.campaign_paused.connect(receiver, weak=False)
    yield got
    signals.campaign_paused.disconnect(receiver)


@pytest.mark.django_db
def test_an_account_fault_holds_the_account_and_pauses_only_its_running_campaigns(
    settings: Any, paused_signals: list[tuple[Campaign, str]], caplog: pytest.LogCaptureFixture
) -> None:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "ACCOUNTS": {"outlet": {"API_KEY": "other-key"}},
    }
    running = Campaign.objects.create(name="Running", text="Hi", status=Campaign.Status.RUNNING)
    draft = Campaign.objects.create(name="Draft", text="Hi")
    other = Campaign.objects.create(
        name="Other", text="Hi", status=Campaign.Status.RUNNING, account="outlet"
    )
    balance = error_from_answer(402, {"name": "Topup balance is required", "code": 3})
    assert isinstance(balance, InsufficientBalance)
    from django_whatsapp.sending import react

    with caplog.at_level(logging.WARNING, logger="django_whatsapp"):
        for _burst in range(5):  # every request in flight answers the same
            react("default", [(Fault.ACCOUNT, balance)], deferred=True)
    assert faults.is_held("default")
    assert not faults.is_held("outlet")
    for campaign in (running, draft, other):
        campaign.refresh_from_db()
    assert running.status == Campaign.Status.PAUSED
    assert "balance" in running.pause_reason
    assert (draft.status, draft.pause_reason) == (Campaign.Status.DRAFT, "")
    assert other.status == Campaign.Status.RUNNING
    assert [(c.pk, r) for c, r in paused_signals] == [(running.pk, running.pause_reason)]
    # Logged once, not once per message.
    assert sum("is held" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.django_db
def test_an_operators_pause_has_no_reason_and_is_signalled(
    paused_signals: list[tuple[Campaign, str]],
) -> None:
    campaign = Campaign.objects.create(name="C", text="Hi", status=Campaign.Status.RUNNING)
    services.pause_campaign(campaign)
    assert (campaign.status, campaign.pause_reason) == (Campaign.Status.PAUSED, "")
    assert paused_signals == [(campaign, "")]


@pytest.mark.django_db
def test_release_lifts_the_hold_once() -> None:
    key = AuthenticationFailed(http_status=401)
    assert faults.hold("default", key)
    assert not faults.hold("default", key)  # already held: nothing changes
    assert "API key" in AccountState.objects.get().held_reason
    assert faults.release("default")
    assert not faults.release("default")
    assert not faults.is_held("default")


# -- the circuit breaker -----------------------------------------------------------------------


@pytest.mark.django_db
def test_pauses_grow_from_half_a_second_to_the_cap_with_jitter(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "OUTAGE_MAX_PAUSE": 4}
    assert [faults.pause_after(n, rand=lambda: 1.0) for n in range(1, 6)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        4.0,
    ]
    assert faults.pause_after(3, rand=lambda: 0.0) == 1.5  # three quarters at least
    assert faults.pause_after(10_000, rand=lambda: 1.0) == 4.0  # no overflow


@pytest.mark.django_db
def test_an_outage_opens_the_breaker_once_and_each_failed_try_grows_the_pause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = TransportError("Could not connect.", maybe_delivered=False)
    start = timezone.now()
    with caplog.at_level(logging.WARNING, logger="django_whatsapp"):
        assert faults.note_outage("default", down, now=start)
        row = AccountState.objects.get()
        first_try = row.next_try_at
        assert row.waiting_since == start
        assert row.failures == 1
        assert timedelta(seconds=0.37) <= first_try - start <= timedelta(seconds=0.5)
        # The other requests of the same burst change nothing.
        for _request in range(7):
            assert not faults.note_outage("default", down, now=start)
        assert AccountState.objects.get().next_try_at == first_try
        # While the pause holds, nobody tries; when it is over, one caller does.
        assert not faults.take_try("default", now=start)
        assert faults.take_try("default", now=first_try)
        assert not faults.take_try("default", now=first_try)
        # The try failed: the pause grows.
        assert not faults.note_outage("default", down, now=first_try)
        row = AccountState.objects.get()
        assert row.failures == 2
        assert timedelta(seconds=0.75) <= row.next_try_at - first_try <= timedelta(seconds=1)
        assert row.probe_until is None
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("wait" in m for m in warnings) == 1, warnings
    assert faults.seconds_to_wait(row, now=first_try) is not None


@pytest.mark.django_db
def test_a_try_that_sent_nothing_is_given_back() -> None:
    start = timezone.now()
    faults.note_outage("default", RateLimitUnavailable(), now=start)
    due = AccountState.objects.get().next_try_at
    assert faults.take_try("default", now=due)
    faults.give_back_try("default")
    assert faults.take_try("default", now=due)


@pytest.mark.django_db
def test_recovery_closes_the_breaker_and_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    assert not faults.note_recovered("default")  # nothing was wrong
    faults.note_outage("default", RateLimitUnavailable())
    with caplog.at_level(logging.WARNING, logger="django_whatsapp"):
        assert faults.note_recovered("default")
        assert not faults.note_recovered("default")
    row = AccountState.objects.get()
    assert (row.waiting_since, row.next_try_at, row.failures) == (None, None, 0)
    assert faults.seconds_to_wait(row) is None
    assert sum("answers again" in r.getMessage() for r in caplog.records) == 1


def test_a_gate_that_stops_on_an_outage_holds_back_the_requests_waiting_behind_it(
    raw_server: Any,
) -> None:
    from django_whatsapp.client import SharedBackoff
    from django_whatsapp.exceptions import NotRequested

    answered: list[bytes] = []

    def server_error(server: RawServer, connection: socket.socket) -> None:
        answered.append(server.read_request(connection))
        body = b'{"name": "Internal server error", "code": 2, "status": 500}'
        connection.sendall(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )

    gateway = raw_server(server_error)
    gate = SharedBackoff(max_in_flight=4, stop_on_outage=True)
    client = _client(gateway.base_url, gate=gate)
    first = _outcome(client)
    assert faults.classify(first) is Fault.SYSTEM
    held_back = _outcome(client)
    assert isinstance(held_back, NotRequested)
    assert held_back.attempts == 0
    assert faults.classify(held_back) is Fault.SYSTEM
    assert len(answered) == 1  # the second never went out
    gate.allow_requests()  # the breaker's next try
    assert faults.classify(_outcome(client)) is Fault.SYSTEM
    assert len(answered) == 2
    # Without stop_on_outage (single sends), every request goes out.
    plain = _client(gateway.base_url, gate=SharedBackoff(max_in_flight=4))
    _outcome(plain)
    _outcome(plain)
    assert len(answered) == 4
