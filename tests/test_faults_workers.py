"""Faults with real parts: a campaign sent by two ``db_worker`` processes on PostgreSQL meets an
empty balance, a gateway whose port is closed and opened again, and a rate-limit Redis of the
test's own that is stopped and started again; in each, one worker is killed with SIGKILL while
its requests are out. Each ends with every recipient accepted by the gateway exactly once
(counted there), nobody ``not_sent``, and no operator action but ``resume_campaign`` after the
top-up. The test waits on events (the gateway's counts, the database's rows), never on sleeps.

The workers share nothing but PostgreSQL (a database of the test's own) and Redis, as separate
machines would (see tests/test_campaign_workers.py, whose helpers these tests use). Marked
``postgres``: the PostgreSQL run (``make test``, CI) runs them.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from . import test_campaign_workers as campaign_workers
from .fault_gateway import FaultGateway
from .redis_server import OwnRedis
from .test_campaign_workers import CREATE, ROOT, Database, Workers, django, wait_until

pytestmark = pytest.mark.postgres

# The real-worker fixtures: a PostgreSQL database of the test's own, worker processes, and the
# check that PostgreSQL and Redis answer.
database = campaign_workers.database
workers = campaign_workers.workers
_postgres_and_redis = campaign_workers._postgres_and_redis

RECIPIENTS = 240
CHUNK_SIZE = 30
#: Requests in flight per chunk task (django_whatsapp.campaigns.engine.CONCURRENCY).
IN_FLIGHT = 8

RESUME = """
import sys

import django

django.setup()
from django_whatsapp import services
from django_whatsapp.models import Campaign

services.resume_campaign(Campaign.objects.get(pk=int(sys.argv[1])))
"""


@pytest.fixture
def gateway() -> Any:
    fake = FaultGateway(latency=0.01)
    yield fake
    fake.close()


def environment(database: Database, gateway: FaultGateway, redis_url: str = "") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings_faults",
        PYTHONPATH=str(ROOT),
        WORKER_DATABASE_URL=database.url,
        WORKER_GATEWAY_URL=gateway.base_url,
        WORKER_BACKEND="db",
        # Slow enough that the faults strike mid-campaign: 240 recipients take 4 seconds.
        WORKER_RATE_LIMIT="60",
        WORKER_REDIS_PREFIX=f"dw-faults-{uuid.uuid4().hex[:12]}",
    )
    if redis_url:
        env["WORKER_REDIS_URL"] = redis_url
    return env


def start(env: dict[str, str], workers: Workers) -> int:
    django(env, "-m", "django", "migrate", "--noinput", "-v", "0")
    workers.start(env, "db", 2)
    return int(json.loads(django(env, "-c", CREATE, str(RECIPIENTS), str(CHUNK_SIZE))))


def kill_a_worker_with_requests_out(
    gateway: FaultGateway, database: Database, workers: Workers
) -> int:
    """With the gateway holding its answers (:meth:`FaultGateway.hold`), wait until every
    claimed message is out, kill the worker holding the most, let the gateway answer; return
    how many of its requests were out."""
    gateway.wait_for(lambda g: g.held > 0, what="a request held")

    def all_claimed_are_out() -> bool:
        with gateway.lock:
            held = gateway.held
        return held > 0 and database.statuses().get("sending", 0) == held

    wait_until(all_claimed_are_out, "every claimed message to reach the held gateway")
    [(token, out)] = database.query(
        "SELECT c.lease_token, COUNT(m.id) FROM django_whatsapp_campaignchunk c "
        "JOIN django_whatsapp_message m ON m.campaign_id = c.campaign_id "
        "AND m.id BETWEEN c.first_id AND c.last_id AND m.status = 'sending' "
        "WHERE c.state = 'leased' GROUP BY c.lease_token ORDER BY COUNT(m.id) DESC LIMIT 1"
    )
    victim = int(token.split("-")[0])
    assert victim in {p.pid for p in workers.processes}
    os.killpg(victim, signal.SIGKILL)
    [killed] = [p for p in workers.processes if p.pid == victim]
    killed.wait(timeout=60)
    gateway.release()
    return int(out)


def failed_tries(database: Database) -> int:
    rows = database.query(
        "SELECT failures FROM django_whatsapp_accountstate "
        "WHERE account = 'default' AND waiting_since IS NOT NULL"
    )
    return int(rows[0][0]) if rows else 0


def ends_with_everyone_accepted_once(
    gateway: FaultGateway,
    database: Database,
    campaign: int,
    killed_out: int,
    output: str,
    *,
    port_closed: bool = False,
) -> None:
    wait_until(
        lambda: database.campaign_status(campaign) == "done",
        f"the campaign to be done; workers said:\n{output}",
        limit=240,
    )
    received = gateway.accepted()
    assert [n for n, times in received.items() if times != 1] == [], output
    cut = {380670000000 + n for n in range(RECIPIENTS)} - set(received)
    if port_closed:
        # A request on a connection the kernel had already taken, but the gateway had not read,
        # when its port closed is reset: its sender cannot tell it from one the gateway read, so
        # it is unknown (never sent again). At most the two workers' requests in flight.
        assert len(cut) <= 2 * IN_FLIGHT, output
        unknown = database.query(
            "SELECT destination_addr FROM django_whatsapp_message WHERE status = 'unknown'"
        )
        assert cut <= {int(number) for (number,) in unknown}, output
    else:
        assert cut == set(), output
    # The killed worker's requests that were out are unknown (never sent again); nobody failed.
    assert database.statuses() == {
        "accepted": RECIPIENTS - killed_out - len(cut),
        "unknown": killed_out + len(cut),
    }


def test_an_empty_balance_pauses_and_a_resume_after_the_top_up_sends_everyone(
    database: Database, gateway: FaultGateway, workers: Workers
) -> None:
    gateway.balance = 100
    gateway.when_accepted(30, gateway.hold)
    campaign = start(environment(database, gateway), workers)
    out = kill_a_worker_with_requests_out(gateway, database, workers)
    wait_until(
        lambda: database.campaign_status(campaign) == "paused",
        f"the balance to pause the campaign; workers said:\n{workers.output()}",
    )
    [(reason,)] = database.query(
        "SELECT pause_reason FROM django_whatsapp_campaign WHERE id = %s", campaign
    )
    assert "balance" in reason
    assert gateway.total_accepted() == 100
    assert "not_sent" not in database.statuses()
    # Requests wasted on the empty balance: at most those in flight, per worker.
    assert 1 <= gateway.refused["balance"] <= 2 * IN_FLIGHT
    gateway.top_up()
    env = environment(database, gateway)
    django(env, "-c", RESUME, str(campaign))
    ends_with_everyone_accepted_once(gateway, database, campaign, out, workers.output())


def test_the_gateway_down_and_back_makes_the_campaign_wait_and_go_on_by_itself(
    database: Database, gateway: FaultGateway, workers: Workers
) -> None:
    gateway.when_accepted(30, gateway.hold)
    # Then its port closes: connections refused, as when the gateway's process is gone.
    gateway.when_accepted(90, gateway.stop)
    campaign = start(environment(database, gateway), workers)
    out = kill_a_worker_with_requests_out(gateway, database, workers)
    wait_until(lambda: failed_tries(database) >= 3, "three failed tries while it is down")
    assert "not_sent" not in database.statuses()
    assert database.campaign_status(campaign) == "running"
    gateway.start()
    ends_with_everyone_accepted_once(
        gateway, database, campaign, out, workers.output(), port_closed=True
    )


def test_the_rate_limit_redis_down_and_back_sends_nothing_meanwhile_and_loses_nothing(
    database: Database, gateway: FaultGateway, workers: Workers, tmp_path: Path
) -> None:
    redis = OwnRedis(tmp_path)
    try:
        gateway.when_accepted(30, gateway.hold)
        gateway.when_accepted(90, redis.stop)
        campaign = start(environment(database, gateway, redis.url), workers)
        out = kill_a_worker_with_requests_out(gateway, database, workers)
        wait_until(lambda: failed_tries(database) >= 2, "two failed tries while Redis is down")
        accepted = gateway.total_accepted()
        wait_until(lambda: failed_tries(database) >= 4, "two more failed tries")
        # Fail closed: nothing went out while the budget could not be counted.
        assert gateway.total_accepted() == accepted
        assert "not_sent" not in database.statuses()
        redis.start()
        ends_with_everyone_accepted_once(gateway, database, campaign, out, workers.output())
    finally:
        redis.stop()
