"""The suite's own means of not disturbing and not being disturbed: a Redis server of the run's
own (tests/redis_server.py), helper threads that are daemons and fail the test at once
(tests/threads.py), simulated time for rate limits (tests/simulated_time.py), and which tests the
PostgreSQL run repeats (tests/conftest.py's --database-tests-only)."""

from __future__ import annotations

import contextlib
import threading
import uuid
from typing import Any

import pytest
from django.test import SimpleTestCase, TestCase

from django_whatsapp.models import Message

from .conftest import reaches_the_database
from .simulated_time import EPOCH, SimulatedTime
from .threads import HelperThreadFailed, HelperThreads
from .waiting import LIMIT, WaitTimeout


def test_the_run_has_a_redis_server_of_its_own(redis_url: str) -> None:
    import redis

    assert redis_url.startswith("unix://")  # a socket of its own: no port another run shares
    own = redis.Redis.from_url(redis_url)
    key = f"dw-isolation-{uuid.uuid4().hex}"
    own.set(key, "here", ex=60)
    assert own.get(key) == b"here"
    shared = redis.Redis.from_url("redis://127.0.0.1:6379/5", socket_connect_timeout=2)
    # Read only: the shared server is never written to (and may not be there at all).
    with contextlib.suppress(redis.RedisError, OSError):
        assert shared.get(key) is None


def test_a_helper_threads_failure_fails_the_join_at_once() -> None:
    helpers = HelperThreads()
    release = threading.Event()
    helpers.start(release.wait, name="stuck")  # would keep a plain join waiting for ever
    helpers.start(lambda: 1 / 0, name="failing")
    try:
        # The failure is raised while the other thread still runs: no wait for the limit.
        with pytest.raises(HelperThreadFailed, match="failing failed: ZeroDivisionError"):
            helpers.join(what="the helpers")
        # The stuck thread still runs (the failing one may not have ended yet: not counted).
        assert helpers.threads[0].is_alive()
        assert all(thread.daemon for thread in helpers.threads)
    finally:
        release.set()
    helpers.stop()  # reported once: the fixture's teardown adds no second error


def test_a_failure_no_join_saw_fails_the_test_at_teardown() -> None:
    helpers = HelperThreads()
    helpers.start(lambda: 1 / 0, name="forgotten")
    helpers.threads[0].join()  # the test never asked HelperThreads.join
    with pytest.raises(HelperThreadFailed, match="forgotten failed"):
        helpers.stop()


def test_join_ends_when_the_targets_have_returned_whatever_is_alive_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A thread is still alive for a moment after its target returned and it told join so. A
    join that asked ``is_alive`` missed that last notice and waited out its whole limit (120 s
    a test on Python 3.13): it counts the targets that returned instead."""
    helpers = HelperThreads()
    returned = threading.Event()
    helpers.start(returned.set)
    assert returned.wait(LIMIT)
    # As if that moment lasted: the thread says it is alive.
    monkeypatch.setattr(helpers.threads[0], "is_alive", lambda: True)
    helpers.join(what="the thread whose target returned")
    assert helpers.errors == []


def test_join_fails_naming_what_is_still_running() -> None:
    helpers = HelperThreads()
    release = threading.Event()
    helpers.start(release.wait)
    try:
        with pytest.raises(WaitTimeout, match="the stuck one: 1 of 1 still running"):
            helpers.join(what="the stuck one", timeout=0)
    finally:
        release.set()
    helpers.join(what="the released one")


def test_simulated_time_moves_only_when_every_participant_sleeps(
    helper_threads: HelperThreads,
) -> None:
    clock = SimulatedTime(participants=2)
    seen: dict[str, list[float]] = {"a": [], "b": []}
    b_may_go = threading.Event()

    def a() -> None:
        try:
            clock.sleep(5)  # b is busy: the clock waits for it
            seen["a"].append(clock.now() - EPOCH)
            clock.sleep(1)
            seen["a"].append(clock.now() - EPOCH)
        finally:
            clock.done()

    def b() -> None:
        try:
            b_may_go.wait()
            seen["b"].append(clock.now() - EPOCH)  # still 0: a's sleep has not ended
            clock.sleep(2)
            seen["b"].append(clock.now() - EPOCH)
        finally:
            clock.done()

    helper_threads.start(a)
    helper_threads.start(b)
    b_may_go.set()
    helper_threads.join(what="the two participants")
    assert seen == {"a": [5.0, 6.0], "b": [0.0, 2.0]}
    assert sorted(clock.slept) == [1, 2, 5]


# -- the PostgreSQL run's selection (--database-tests-only) -------------------------------------


@pytest.mark.django_db
def test_a_test_marked_django_db_reaches_the_database(request: pytest.FixtureRequest) -> None:
    assert reaches_the_database(request.node)


def test_a_test_with_a_database_fixture_reaches_the_database(
    request: pytest.FixtureRequest, admin_client: Any
) -> None:
    assert reaches_the_database(request.node)


@pytest.mark.postgres
def test_a_test_marked_postgres_reaches_the_database(request: pytest.FixtureRequest) -> None:
    assert reaches_the_database(request.node)


def test_a_test_with_neither_cannot_reach_it(request: pytest.FixtureRequest) -> None:
    # pytest-django refuses it any database access, so it passes or fails alike on either.
    assert not reaches_the_database(request.node)


class DjangoTestCaseReachesIt(TestCase):
    """A project's Django TestCase: Django gives it the database, with no mark."""

    def test_it_may_query(self) -> None:
        assert Message.objects.count() == 0


class DjangoSimpleTestCaseDoesNot(SimpleTestCase):
    def test_it_may_not_query(self) -> None:
        assert SimpleTestCase.databases == set()


def test_django_test_cases_are_told_apart(request: pytest.FixtureRequest) -> None:
    # Collected again here: the run may have deselected them (-k, --database-tests-only).
    module = request.node.getparent(pytest.Module)
    assert module is not None
    items = {
        f"{node.name}::{item.name}": item
        for node in module.collect()
        if isinstance(node, pytest.Class) and node.name.startswith("Django")
        for item in node.collect()
    }
    assert reaches_the_database(items["DjangoTestCaseReachesIt::test_it_may_query"])
    assert not reaches_the_database(items["DjangoSimpleTestCaseDoesNot::test_it_may_not_query"])
