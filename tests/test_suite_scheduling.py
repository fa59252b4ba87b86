"""The suite's own scheduling over pytest-xdist's workers (``tests/conftest.py``): the modules
whose module-scoped fixtures cost most (a wheel build and its project, a served example project)
each run whole in one worker under ``--dist loadgroup``, whatever pytest's version.

pytest-xdist's ``xdist_group`` marks group by rewriting each test's id in the workers, which
pytest 9 no longer reads: each worker then built those fixtures again."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from .conftest import RUN_WHOLE_IN_ONE_WORKER, pytest_xdist_make_scheduler

OTHERS = [f"tests/test_other.py::test_{n}" for n in range(12)]


class Worker:
    """What the scheduler needs of a worker: an id, and where the tests it is sent go."""

    def __init__(self, name: str) -> None:
        self.gateway = SimpleNamespace(id=name)
        self.received: list[int] = []  # every test sent to it
        self.running: list[int] = []  # those it has not finished
        self.shutting_down = False

    def send_runtest_some(self, indices: list[int]) -> None:
        self.received.extend(indices)
        self.running.extend(indices)

    def send_runtest_all(self) -> None:  # pragma: no cover - never asked of a scope scheduler
        raise AssertionError("the whole collection sent to one worker")

    def shutdown(self) -> None:
        self.shutting_down = True


def config(dist: str) -> Any:
    values = {"dist": dist, "tx": ["2*popen"]}
    return SimpleNamespace(getvalue=values.get, option=SimpleNamespace(loadscopereorder=True))


def test_each_module_kept_whole_goes_to_one_worker_under_loadgroup() -> None:
    whole = sorted(RUN_WHOLE_IN_ONE_WORKER)
    collection = [f"{module}::test_{n}" for module in whole for n in range(5)]
    collection[1] += "[a parameter]"
    collection += OTHERS
    scheduler = pytest_xdist_make_scheduler(config=config("loadgroup"), log=None)
    workers = [Worker("gw0"), Worker("gw1")]
    for worker in workers:
        scheduler.add_node(worker)
        scheduler.add_node_collection(worker, collection)
    scheduler.schedule()
    while any(worker.running for worker in workers):  # the workers finish, more is sent
        for worker in workers:
            running, worker.running = worker.running, []
            for index in running:
                scheduler.mark_test_complete(worker, index)

    assert sorted(i for worker in workers for i in worker.received) == list(range(len(collection)))
    ran_by: dict[str, set[str]] = {}
    for worker in workers:
        for index in worker.received:
            ran_by.setdefault(collection[index].split("::")[0], set()).add(worker.gateway.id)
    assert {module: len(ran_by[module]) for module in whole} == dict.fromkeys(whole, 1)
    assert ran_by["tests/test_other.py"] == {"gw0", "gw1"}  # the others spread over both


def test_the_scope_of_a_test_is_its_module_when_kept_whole_else_its_own() -> None:
    scheduler = pytest_xdist_make_scheduler(config=config("loadgroup"), log=None)
    for module in RUN_WHOLE_IN_ONE_WORKER:
        assert scheduler._split_scope(f"{module}::test_a") == module
        assert scheduler._split_scope(f"{module}::test_b[x@y]") == module
    assert scheduler._split_scope(OTHERS[0]) == OTHERS[0]


def test_other_distributions_are_left_to_pytest_xdist() -> None:
    assert pytest_xdist_make_scheduler(config=config("load"), log=None) is None
