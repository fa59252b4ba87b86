"""Shared fixtures: a fake gateway over real TCP on 127.0.0.1, and settings pointing at it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import TransactionTestCase
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from django_whatsapp.client import WhatsAppClient
from django_whatsapp.conf import get_settings
from django_whatsapp.models import Template

from .rawserver import RawServer
from .redis_server import own_redis, redis_server_binary
from .threads import HelperThreads
from .waiting import wait_until

API_KEY = "test-api-key-9f8e7d"
CALLBACK_SECRET = "test-callback-secret-1a2b3c"
SEND_PATH = "/v1/api/send-whatsapp"
STATUS_PATH = "/v1/api/receive-whatsapp"


class FakeGateway:
    """A pytest-httpserver gateway with helpers for the answers the provider documents."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.base_url = server.url_for("/v1/api")
        self._next_id = 1000

    def accept(self, *, times: int | None = None) -> None:
        """Answer every send with a new increasing message_id."""

        def handler(request: Request) -> Response:
            self._next_id += 1
            body = json.dumps({"message_id": self._next_id})
            return Response(body, 200, mimetype="application/json")

        if times is None:
            self.server.expect_request(SEND_PATH, method="POST").respond_with_handler(handler)
        else:
            for _ in range(times):
                self.server.expect_ordered_request(SEND_PATH, method="POST").respond_with_handler(
                    handler
                )

    def answer(
        self,
        body: Any,
        status: int = 200,
        headers: dict[str, str] | None = None,
        *,
        path: str = SEND_PATH,
        ordered: bool = False,
    ) -> None:
        expect = self.server.expect_ordered_request if ordered else self.server.expect_request
        data = body if isinstance(body, str | bytes) else json.dumps(body)
        expect(path, method="POST").respond_with_response(
            Response(data, status, headers=headers or {}, mimetype="application/json")
        )

    def status(self, message_id: int, code: int) -> None:
        self.server.expect_request(
            STATUS_PATH, method="POST", json={"message_id": message_id}
        ).respond_with_json({"message_id": message_id, "status": code})

    @property
    def requests(self) -> list[Request]:
        return [request for request, _response in self.server.log]

    def wait_answered(self, count: int) -> None:
        """Wait until ``count`` requests are answered and logged. A handler still answering a
        request its client gave up on must be done before the test ends: the server is the
        session's, and a request logged late would land in the next test's log."""
        wait_until(lambda: len(self.server.log) >= count, what=f"{count} answered request(s)")

    def sent_bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.get_data()) for r in self.requests if r.path == SEND_PATH]


@pytest.fixture
def gateway(httpserver: HTTPServer, settings: Any) -> FakeGateway:
    fake = FakeGateway(httpserver)
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "BASE_URL": fake.base_url}
    return fake


class SleepRecorder:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def wa_client(gateway: FakeGateway, sleeps: SleepRecorder) -> Iterator[WhatsAppClient]:
    """A gateway client on the fake gateway whose back-off sleeps are recorded, not slept."""
    wa_client = WhatsAppClient.from_settings(get_settings(), sleep=sleeps, rand=lambda: 0.5)
    yield wa_client
    wa_client.close()


@pytest.fixture
def template(db: Any) -> Template:
    return Template.objects.create(
        name="order_ready",
        namespace="ns_1234",
        language_code="en_US",
        body="Hello {{1}}, your order {{2}} is ready.",
        header_type=Template.HeaderType.IMAGE,
    )


@pytest.fixture
def raw_server() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(*behaviours: Callable[[RawServer, socket.socket], None]) -> RawServer:
        server = RawServer(*behaviours)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of this pytest process's own Redis server (tests/redis_server.py): the shared
    rate limit and RQ's queues live there, apart from every other run. Without ``redis-server``
    the tests that need it are skipped, except in CI, where they fail."""
    binary = redis_server_binary()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs redis-server (apt-get install redis-server) for the Redis tests.")
        pytest.skip("no redis-server here (apt-get install redis-server to run the Redis tests)")
    # A short directory: a Unix socket's path is limited to about 100 characters.
    directory = Path(tempfile.mkdtemp(prefix="dw-redis-"))
    try:
        with own_redis(directory, binary) as url:
            yield url
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def helper_threads() -> Iterator[HelperThreads]:
    """Start a test's helper threads: daemons whose first failure fails the test at once
    (tests/threads.py)."""
    helpers = HelperThreads()
    yield helpers
    helpers.stop()


# -- how the suite is run (Makefile, noxfile.py) ------------------------------------------------

#: Fixtures through which a test reaches the database: pytest-django refuses any other access.
DATABASE_FIXTURES = frozenset(
    {
        "db",
        "transactional_db",
        "django_db_reset_sequences",
        "django_db_serialized_rollback",
        "live_server",
        "admin_client",
        "admin_user",
        "django_user_model",
    }
)
#: Modules whose tests reach the database under test by other ways than pytest-django (worker
#: or ``python -m`` processes given DATABASE_URL): they run on PostgreSQL whatever they ask for.
REACH_THE_DATABASE_THEMSELVES = frozenset({"tests/test_tasks_worker.py", "tests/test_main.py"})
#: Modules whose module-scoped fixtures (a wheel build, a served project) are paid once: under
#: xdist (``--dist loadgroup``) each runs whole in one worker.
RUN_WHOLE_IN_ONE_WORKER = frozenset({"tests/test_packaging.py", "tests/test_example_project.py"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database-tests-only",
        action="store_true",
        help="Deselect the tests that cannot reach the database (no django_db mark, no database "
        "fixture, not marked postgres, not in REACH_THE_DATABASE_THEMSELVES): the PostgreSQL "
        "run repeats only what the database can change.",
    )


def reaches_the_database(item: pytest.Item) -> bool:
    fixtures = set(getattr(item, "fixturenames", ()))
    test_class = getattr(item, "cls", None)
    return (
        # Django's TestCase and TransactionTestCase (SimpleTestCase may not touch it).
        (isinstance(test_class, type) and issubclass(test_class, TransactionTestCase))
        or item.get_closest_marker("django_db") is not None
        or item.get_closest_marker("postgres") is not None
        or bool(DATABASE_FIXTURES & fixtures)
        or item.nodeid.split("::", 1)[0] in REACH_THE_DATABASE_THEMSELVES
    )


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` with the modules of ``RUN_WHOLE_IN_ONE_WORKER`` each one unit of work.

    pytest-xdist groups the tests it finds marked ``xdist_group`` by adding the group to each
    test's id in the workers (``item._nodeid``); pytest 9 reads a node's id elsewhere, so the
    marks grouped nothing there and each worker built those modules' fixtures again (the wheel
    and its project twice: a minute of CPU). The scheduler, in the controlling process, groups
    them by their module instead, whatever pytest's version."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class WholeModules(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in RUN_WHOLE_IN_ONE_WORKER else super()._split_scope(nodeid)

    return WholeModules(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--database-tests-only"):
        kept = [item for item in items if reaches_the_database(item)]
        deselected = [item for item in items if not reaches_the_database(item)]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = kept
