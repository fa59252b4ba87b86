"""The shared rate limit (``RATE_LIMIT``, ``RATE_LIMIT_CACHE``): several senders, each with its
own client and gate as separate processes would have, share one budget in Redis (the test run's
own server); a 429 pauses all of them.

The senders, their gates and the fake gateway (tests/limited_gateway.py) share a simulated clock
(tests/simulated_time.py) that moves only when every sender waits: what the gateway saw in each
window is counted exactly, whatever the speed of the machine, and seconds of waiting take none.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.core.checks import Error, Warning
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_whatsapp import checks
from django_whatsapp.client import SharedBackoff, WhatsAppClient
from django_whatsapp.conf import get_settings
from django_whatsapp.exceptions import RateLimited
from django_whatsapp.ratelimit import DEFAULT_RATE_LIMIT_RETRIES, SharedRateLimit, gate_for, windows
from django_whatsapp.sending import get_client, pooled_client

from .conftest import API_KEY
from .limited_gateway import LimitedGateway
from .simulated_time import SimulatedTime
from .threads import HelperThreads


@pytest.fixture
def shared_cache(settings: Any, redis_url: str) -> str:
    """A Redis cache on the test run's own server, with a key prefix of this test:
    ``RATE_LIMIT_CACHE``."""
    settings.CACHES = {
        **settings.CACHES,
        "ratelimit": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": f"dw-ratelimit-{uuid.uuid4().hex[:12]}",
        },
    }
    return "ratelimit"


@pytest.fixture
def limited() -> Iterator[LimitedGateway]:
    gateway = LimitedGateway(rate=20, burst=20, retry_after=1)
    yield gateway
    gateway.close()


@pytest.fixture
def simulated() -> Iterator[tuple[SimulatedTime, LimitedGateway]]:
    """Simulated clock for four senders, and a gateway limited to 20/s (burst 20) by it."""
    clock = SimulatedTime(participants=4)
    gateway = LimitedGateway(rate=20, burst=20, retry_after=1, clock=clock.now)
    yield clock, gateway
    gateway.close()


def _client(
    gateway: LimitedGateway,
    gate: SharedBackoff | None,
    max_retries: int = 0,
    clock: SimulatedTime | None = None,
) -> WhatsAppClient:
    return WhatsAppClient(
        api_key=API_KEY,
        send_url=gateway.base_url + "/send-whatsapp",
        status_url=gateway.base_url + "/receive-whatsapp",
        timeout=(5, 30),
        max_retries=max_retries,
        gate=gate,
        **({"sleep": clock.sleep} if clock is not None else {}),
    )


def _payload(number: int) -> dict[str, Any]:
    return {
        "source_addr": "TestCo",
        "destination_addr": number,
        "message_type": 1,
        "text": "hello",
    }


def _shared_gates(
    alias: str, clock: SimulatedTime, rate: float, count: int
) -> list[SharedRateLimit]:
    """A gate for each sender (as separate processes would have), all on the simulated time."""
    return [
        SharedRateLimit(
            rate, caches[alias], keep_trying=lambda: True, wall_clock=clock.now, clock=clock.now
        )
        for _ in range(count)
    ]


def _send_from_senders(
    helpers: HelperThreads,
    gateway: LimitedGateway,
    clock: SimulatedTime,
    gates: list[SharedRateLimit] | list[None],
    per_sender: int,
    *,
    first: int,
    refused: list[RateLimited] | None = None,
) -> None:
    """A sender thread per gate, each with its own client, each sending ``per_sender``
    messages (to numbers from ``first``); a refusal is collected in ``refused`` when given, and
    fails the test otherwise."""

    def sender(index: int) -> None:
        client = _client(gateway, gates[index], clock=clock)
        try:
            for n in range(per_sender):
                try:
                    client.send(_payload(first + index * 1000 + n))
                except RateLimited as error:
                    if refused is None:
                        raise
                    refused.append(error)
        finally:
            client.close()
            clock.done()

    for index in range(len(gates)):
        helpers.start(sender, index, name=f"sender-{index}")
    helpers.join(what="the senders")


def _per_window(gateway: LimitedGateway, window: float) -> Counter[int]:
    """The requests the gateway saw in each window of ``window`` seconds (its own clock)."""
    return Counter(math.floor(entry.at / window) for entry in gateway.log)


def test_windows_keep_the_rate() -> None:
    assert windows(50) == (5, 0.1)
    assert windows(5) == (1, 0.2)
    per, length = windows(15)
    assert per / length == pytest.approx(15)
    with pytest.raises(ValueError, match="positive"):
        windows(0)


def test_senders_sharing_redis_stay_under_the_gateways_limit(
    shared_cache: str,
    simulated: tuple[SimulatedTime, LimitedGateway],
    helper_threads: HelperThreads,
) -> None:
    clock, gateway = simulated
    gates = _shared_gates(shared_cache, clock, 20, 4)
    _send_from_senders(helper_threads, gateway, clock, gates, 15, first=380500000000)
    # Every message went through exactly once, and the gateway never had to refuse one.
    assert sum(gateway.accepted_destinations().values()) == 60
    assert set(gateway.accepted_destinations().values()) == {1}
    assert gateway.count(429) == 0
    # Counted at the gateway: each window of 0.1 s carried exactly its budget of 2, so the 60
    # requests took 30 windows, and no second saw more than the limit (but for a window that
    # straddles it).
    per_window, window = windows(20)
    assert set(_per_window(gateway, window).values()) == {per_window}
    assert len(_per_window(gateway, window)) == 60 // per_window
    assert gateway.busiest_second() <= 20 + per_window
    assert sum(gate.waits for gate in gates) > 0  # the senders did wait for budget


def test_without_the_shared_budget_the_same_senders_are_refused(
    simulated: tuple[SimulatedTime, LimitedGateway], helper_threads: HelperThreads
) -> None:
    # The control: the same four senders with no shared budget send all 60 at once; the
    # gateway's bucket (20 deep) takes 20 and refuses the rest.
    clock, gateway = simulated
    refused: list[RateLimited] = []
    _send_from_senders(
        helper_threads, gateway, clock, [None] * 4, 15, first=380600000000, refused=refused
    )
    assert gateway.count(429) == 40
    assert len(refused) == 40
    assert sum(gateway.accepted_destinations().values()) == 20


def test_a_429_pauses_every_sender_that_shares_the_cache(
    shared_cache: str, helper_threads: HelperThreads
) -> None:
    clock = SimulatedTime(participants=3)
    gateway = LimitedGateway(rate=None, retry_after=1, clock=clock.now)  # no limit of its own
    gateway.refuse_first = 1  # only the first request is refused, with Retry-After: 1
    try:
        # A shared budget of 10/s (one request per 0.1 s window): every sender still has
        # messages to send when the pause is declared.
        gates = _shared_gates(shared_cache, clock, 10, 3)
        _send_from_senders(helper_threads, gateway, clock, gates, 10, first=380650000000)
    finally:
        gateway.close()
    assert gateway.count(429) == 1
    assert sum(gateway.accepted_destinations().values()) == 30
    # Nobody sent during the pause: every accepted request came at least Retry-After later.
    [refused_at] = [entry.at for entry in gateway.log if entry.status == 429]
    assert min(entry.at for entry in gateway.log if entry.status == 200) >= refused_at + 1
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
        ("django.core.cache.backends.locmem.LocMemCache", "django_whatsapp.W011"),
        ("django.core.cache.backends.dummy.DummyCache", "django_whatsapp.W011"),
        ("django.core.cache.backends.redis.RedisCache", None),
    ],
)
def test_check_warns_about_a_cache_of_one_process(
    settings: Any, backend: str, expected: str | None
) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "RATE_LIMIT": 10}
    location = "redis://127.0.0.1:6379/0"  # never connected to: the check reads the settings
    with override_settings(CACHES={"default": {"BACKEND": backend, "LOCATION": location}}):
        found = [m for m in checks.check_settings() if m.id in ("django_whatsapp.W011",)]
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
        if m.id in ("django_whatsapp.E010", "django_whatsapp.W011")
    ]


def test_a_single_send_is_retried_a_bounded_number_of_times_without_keep_trying(
    shared_cache: str,
) -> None:
    gate = SharedRateLimit(20, caches[shared_cache])
    assert gate.rate_limit_retries() == DEFAULT_RATE_LIMIT_RETRIES
    stopping = SharedRateLimit(20, caches[shared_cache], keep_trying=lambda: False)
    assert stopping.rate_limit_retries() == 0


def test_a_gates_repr_shows_its_budget_and_not_where_the_cache_is(
    shared_cache: str, redis_url: str
) -> None:
    gate = SharedRateLimit(50, caches[shared_cache])
    assert repr(gate) == "SharedRateLimit(rate=50, per_window=5, window=0.100s, pauses=0)"
    assert redis_url not in repr(gate)
