"""The shared rate limit (``RATE_LIMIT``, ``RATE_LIMIT_CACHE``): several senders, each with its
own client and gate as separate processes would have, share one budget in Redis; a 429 pauses
all of them. Measured by the fake gateway's own request log (tests/limited_gateway.py)."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.core.checks import Error, Warning
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_whatsapp import checks
from django_whatsapp.client import WhatsAppClient
from django_whatsapp.conf import get_settings
from django_whatsapp.exceptions import RateLimited
from django_whatsapp.ratelimit import SharedRateLimit, gate_for, windows
from django_whatsapp.sending import get_client, pooled_client

from .conftest import API_KEY
from .limited_gateway import LimitedGateway

REDIS = "redis://127.0.0.1:6379/5"


def redis_answers() -> bool:
    try:
        import redis
    except ImportError:
        return False
    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=2).ping()
    except redis.RedisError:
        return False
    return True


@pytest.fixture
def shared_cache(settings: Any) -> str:
    """A Redis cache (DB 5) with a key prefix of this branch and run: ``RATE_LIMIT_CACHE``."""
    if not redis_answers():
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs Redis at 127.0.0.1:6379 for the shared rate-limit tests.")
        pytest.skip("no Redis answers at 127.0.0.1:6379")
    settings.CACHES = {
        **settings.CACHES,
        "ratelimit": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS,
            "KEY_PREFIX": f"dw-campaigns-{uuid.uuid4().hex[:12]}",
        },
    }
    # Its keys expire within seconds by themselves: nothing to clean (and never FLUSHDB).
    return "ratelimit"


@pytest.fixture
def limited() -> Iterator[LimitedGateway]:
    gateway = LimitedGateway(rate=20, burst=20, retry_after=1)
    yield gateway
    gateway.close()


def _client(gateway: LimitedGateway, gate: Any, max_retries: int = 0) -> WhatsAppClient:
    return WhatsAppClient(
        api_key=API_KEY,
        send_url=gateway.base_url + "/send-whatsapp",
        status_url=gateway.base_url + "/receive-whatsapp",
        timeout=(5, 30),
        max_retries=max_retries,
        gate=gate,
    )


def _payload(number: int) -> dict[str, Any]:
    return {
        "source_addr": "TestCo",
        "destination_addr": number,
        "message_type": 1,
        "text": "hello",
    }


def _send_from_senders(
    gateway: LimitedGateway,
    alias: str,
    senders: int,
    per_sender: int,
    rate: float,
    gates: list[SharedRateLimit] | None = None,
) -> list[BaseException]:
    """``senders`` threads, each with its own client and gate (as separate processes would
    have), each sending ``per_sender`` messages; returns the errors raised."""
    errors: list[BaseException] = []
    made = [SharedRateLimit(rate, caches[alias], keep_trying=lambda: True) for _ in range(senders)]
    if gates is not None:
        gates.extend(made)

    def sender(index: int) -> None:
        client = _client(gateway, made[index])
        try:
            for n in range(per_sender):
                client.send(_payload(380500000000 + index * 1000 + n))
        except BaseException as error:  # reported to the test
            errors.append(error)
        finally:
            client.close()

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a sender never finished"
    return errors


def test_windows_keep_the_rate() -> None:
    assert windows(50) == (5, 0.1)
    assert windows(5) == (1, 0.2)
    per, length = windows(15)
    assert per / length == pytest.approx(15)
    with pytest.raises(ValueError, match="positive"):
        windows(0)


def test_senders_sharing_redis_stay_under_the_gateways_limit(
    shared_cache: str, limited: LimitedGateway
) -> None:
    # Four senders would make far more than 20 requests a second on their own.
    errors = _send_from_senders(limited, shared_cache, senders=4, per_sender=15, rate=20)
    assert errors == []
    # Every message went through exactly once, and the gateway never had to refuse one.
    assert sum(limited.accepted_destinations().values()) == 60
    assert set(limited.accepted_destinations().values()) == {1}
    assert limited.count(429) == 0
    # Within any one second the gateway saw about the limit: at most one window's budget more
    # (a window straddles the second), and a little slack for requests that left late.
    assert limited.busiest_second() <= 20 + 3 * windows(20)[0]


def test_without_the_shared_budget_the_same_senders_are_refused(limited: LimitedGateway) -> None:
    # The control: the same four senders with no shared budget exceed the gateway's limit.
    errors: list[BaseException] = []

    def sender(index: int) -> None:
        client = _client(limited, None)
        try:
            for n in range(15):
                try:
                    client.send(_payload(380600000000 + index * 1000 + n))
                except RateLimited as error:
                    errors.append(error)
        finally:
            client.close()

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert limited.count(429) > 0
    assert errors


def test_a_429_pauses_every_sender_that_shares_the_cache(
    shared_cache: str, limited: LimitedGateway
) -> None:
    limited.rate = None  # no limit of its own: only the one 429 below
    limited.refuse_first = 1  # the first request is refused with Retry-After: 1
    gates: list[SharedRateLimit] = []
    # A shared budget of 10/s: the 30 messages take about three seconds, so every sender still
    # has messages to send when the pause is declared.
    errors = _send_from_senders(limited, shared_cache, 3, 10, rate=10, gates=gates)
    assert errors == []
    assert limited.count(429) == 1
    assert sum(limited.accepted_destinations().values()) == 30
    # The sender that got the 429 declared the pause (and kept it itself); each of the others
    # waited for it through Redis.
    assert sum(gate.pauses for gate in gates) == 1
    assert [gate.pauses == 1 or gate.pause_waits > 0 for gate in gates] == [True, True, True]
    assert sum(gate.pause_waits > 0 for gate in gates) >= 2


def test_a_rate_limited_request_waits_while_keep_trying_says_so(
    shared_cache: str, limited: LimitedGateway
) -> None:
    limited.rate = None
    limited.retry_after = 0
    limited.refuse_first = 5  # five 429s, with MAX_RETRIES 0
    gate = SharedRateLimit(1000, caches[shared_cache], keep_trying=lambda: True)
    client = _client(limited, gate, max_retries=0)
    result = client.send(_payload(380700000001))
    assert result.attempts == 6
    assert limited.count(429) == 5


def test_a_rate_limited_request_fails_when_keep_trying_says_stop(
    shared_cache: str, limited: LimitedGateway
) -> None:
    limited.rate = None
    limited.retry_after = 0
    limited.refuse_first = 5
    gate = SharedRateLimit(1000, caches[shared_cache], keep_trying=lambda: False)
    client = _client(limited, gate, max_retries=1)
    with pytest.raises(RateLimited) as raised:
        client.send(_payload(380700000002))
    assert raised.value.attempts == 2  # MAX_RETRIES still applies


def test_every_client_of_the_app_takes_its_budget_when_rate_limit_is_set(
    settings: Any, shared_cache: str
) -> None:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "RATE_LIMIT": 30,
        "RATE_LIMIT_CACHE": shared_cache,
    }
    assert isinstance(get_client().gate, SharedRateLimit)
    pooled = pooled_client(4)
    assert isinstance(pooled.gate, SharedRateLimit)
    assert pooled.gate.max_in_flight == 4
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "RATE_LIMIT": None}
    assert get_client().gate is None
    assert not isinstance(gate_for(get_settings(), max_in_flight=2), SharedRateLimit)


@pytest.mark.parametrize("value", [0, -1, "10", True, float("inf")])
def test_rate_limit_must_be_a_positive_number(settings: Any, value: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "RATE_LIMIT": value}
    with pytest.raises(ImproperlyConfigured, match="RATE_LIMIT"):
        get_settings()


def test_rate_limit_cache_must_name_a_cache(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "RATE_LIMIT_CACHE": ""}
    with pytest.raises(ImproperlyConfigured, match="RATE_LIMIT_CACHE"):
        get_settings()


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        ("django.core.cache.backends.locmem.LocMemCache", "django_whatsapp.W010"),
        ("django.core.cache.backends.dummy.DummyCache", "django_whatsapp.W010"),
        ("django.core.cache.backends.redis.RedisCache", None),
    ],
)
def test_check_warns_about_a_cache_of_one_process(
    settings: Any, backend: str, expected: str | None
) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "RATE_LIMIT": 10}
    with override_settings(CACHES={"default": {"BACKEND": backend, "LOCATION": REDIS}}):
        found = [m for m in checks.check_settings() if m.id in ("django_whatsapp.W010",)]
    if expected is None:
        assert found == []
    else:
        assert [m.id for m in found] == [expected]
        assert isinstance(found[0], Warning)
        assert "one process" in found[0].msg


def test_check_errs_on_a_cache_alias_that_does_not_exist(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "RATE_LIMIT": 10,
        "RATE_LIMIT_CACHE": "nowhere",
    }
    found = [m for m in checks.check_settings() if m.id == "django_whatsapp.E010"]
    assert len(found) == 1
    assert isinstance(found[0], Error)


def test_no_check_message_without_a_rate_limit(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "RATE_LIMIT_CACHE": "nowhere"}
    assert not [
        m
        for m in checks.check_settings()
        if m.id in ("django_whatsapp.E010", "django_whatsapp.W010")
    ]
