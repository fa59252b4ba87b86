"""WhatsApp's limits with real parts (SPEC 14): a campaign with sending hours sent by two
``db_worker`` processes on PostgreSQL under a ``DAILY_LIMIT`` counted in a Redis of the test's
own, the limits' clock a file every process reads (tests/clock.py), moved by the test: Monday
20:30 in Kyiv (19:30 in Warsaw), Tuesday and Wednesday 09:00 in Kyiv. Warsaw is sent at once and
Kyiv waits for its morning; on Tuesday the tier lets only its places left go, whatever the two
workers race for; on Wednesday the rest go. Every recipient is accepted by the gateway exactly
once (counted there), nobody is ``not_sent``, and no operator does anything. The test waits on
events (the gateway's counts, the database's rows), never on sleeps.

Marked ``postgres``: the PostgreSQL run (``make test``, CI) runs it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from . import test_campaign_workers as campaign_workers
from . import test_faults_workers as faults_workers
from .clock import ENV, SharedClock
from .fault_gateway import FaultGateway
from .redis_server import OwnRedis
from .test_campaign_workers import Database, Workers, django, wait_until

pytestmark = pytest.mark.postgres

database = campaign_workers.database
workers = campaign_workers.workers
_postgres_and_redis = campaign_workers._postgres_and_redis
gateway = faults_workers.gateway

#: Recipients in each city, and the daily limit of the account.
EACH = 20
DAILY_LIMIT = 30
#: 20:30 in Kyiv (UTC+2 in March), 19:30 in Warsaw (UTC+1).
MONDAY_EVENING = datetime(2026, 3, 2, 18, 30, tzinfo=UTC)
#: 09:00 in Kyiv.
TUESDAY_MORNING = datetime(2026, 3, 3, 7, 0, tzinfo=UTC)

#: Run by the "web" process: create the campaign (Kyiv and Warsaw in turn) and start it.
CREATE = """
import json
import sys

import django

django.setup()
from django_whatsapp import services

count = int(sys.argv[1])
kyiv = [f"+38067{n:07d}" for n in range(count)]
warsaw = [f"+48600{n:06d}" for n in range(count)]
audience = [n for pair in zip(kyiv, warsaw) for n in pair]
campaign = services.create_campaign(
    "Limits", audience, text="Hello", chunk_size=10, sending_hours=("09:00", "20:00")
)
services.start_campaign(campaign)
print(json.dumps(campaign.pk))
"""


def kyiv() -> set[int]:
    return {380670000000 + n for n in range(EACH)}


def warsaw() -> set[int]:
    return {48600000000 + n for n in range(EACH)}


def quiet(database: Database, now: datetime) -> bool:
    """Nothing is being sent and nothing is due before the clock moves: no chunk leased, none
    pending that does not wait, no message in flight."""
    [(leased, due)] = database.query(
        "SELECT COUNT(*) FILTER (WHERE state = 'leased'), COUNT(*) FILTER (WHERE state = "
        "'pending' AND (not_before IS NULL OR not_before <= %s)) "
        "FROM django_whatsapp_campaignchunk",
        now,
    )
    return (leased, due) == (0, 0) and "sending" not in database.statuses()


def waiting_for_hours(database: Database, now: datetime) -> int:
    [(count,)] = database.query(
        "SELECT COUNT(*) FROM django_whatsapp_message WHERE status IN ('draft', 'queued') "
        "AND send_after > %s AND error_name = 'Outside sending hours'",
        now,
    )
    return int(count)


def test_sending_hours_and_the_daily_limit_across_two_workers_with_a_shared_clock(
    database: Database, gateway: FaultGateway, workers: Workers, tmp_path: Path
) -> None:
    redis = OwnRedis(tmp_path)
    try:
        clock = SharedClock(tmp_path / "clock")
        now = clock.set(MONDAY_EVENING)
        env: dict[str, Any] = faults_workers.environment(database, gateway, redis.url)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "tests.settings_limits",
                ENV: str(clock.path),
                "WORKER_DAILY_LIMIT": str(DAILY_LIMIT),
                "WORKER_RATE_LIMIT": "100",
            }
        )
        django(env, "-m", "django", "migrate", "--noinput", "-v", "0")
        workers.start(env, "db", 2)
        campaign = int(json.loads(django(env, "-c", CREATE, str(EACH))))

        def settled(count: int) -> bool:
            return gateway.total_accepted() >= count and quiet(database, clock.now())

        # Monday 20:30 in Kyiv: Warsaw is sent; Kyiv waits for its morning.
        wait_until(lambda: settled(EACH), f"Warsaw sent; workers said:\n{workers.output()}")
        assert set(gateway.accepted()) == warsaw()
        assert waiting_for_hours(database, now) == EACH
        assert database.statuses() == {"accepted": EACH, "queued": EACH}

        # Tuesday 09:00 in Kyiv: Monday's places are taken until 20:40, so only the places
        # left go, whatever the two workers race for; the others wait, none fails.
        now = clock.set(TUESDAY_MORNING)
        wait_until(lambda: settled(EACH + 1), f"Kyiv's morning; workers said:\n{workers.output()}")
        assert EACH < gateway.total_accepted() <= DAILY_LIMIT
        assert set(gateway.accepted()) - warsaw() <= kyiv()
        assert "not_sent" not in database.statuses()
        assert database.campaign_status(campaign) == "running"

        # Wednesday 09:00 in Kyiv: Monday's places are free again: the rest go.
        clock.set(TUESDAY_MORNING + timedelta(days=1))
        wait_until(
            lambda: database.campaign_status(campaign) == "done",
            f"the campaign to be done; workers said:\n{workers.output()}",
        )
        received = gateway.accepted()
        assert set(received) == kyiv() | warsaw()
        assert set(received.values()) == {1}
        assert database.statuses() == {"accepted": 2 * EACH}
    finally:
        redis.stop()
