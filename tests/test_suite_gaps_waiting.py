"""The suite's one way to wait (tests/waiting.py): on a condition or an event, failing loudly."""

from __future__ import annotations

import threading

import pytest

from tests.waiting import WaitTimeout, join_all, wait_for_event, wait_until


def test_wait_until_returns_what_the_condition_gave_once_it_holds() -> None:
    looks: list[int] = []

    def third_look() -> str | None:
        looks.append(1)
        return "ready" if len(looks) >= 3 else None

    assert wait_until(third_look, what="the third look", interval=0) == "ready"
    assert len(looks) == 3


def test_wait_until_names_what_never_happened_and_the_last_state() -> None:
    with pytest.raises(WaitTimeout) as raised:
        wait_until(
            lambda: False, what="a row that never comes", timeout=0, describe=lambda: "0 rows"
        )
    assert str(raised.value) == "gave up after 0s waiting for a row that never comes: 0 rows"


def test_wait_for_event_returns_once_another_thread_sets_it() -> None:
    started, finished = threading.Event(), threading.Event()
    worker = threading.Thread(target=lambda: (started.wait(), finished.set()), daemon=True)
    worker.start()
    started.set()
    wait_for_event(finished, what="the worker to finish")
    join_all([worker], what="the worker")
    assert not worker.is_alive()


def test_wait_for_event_and_join_all_fail_loudly() -> None:
    with pytest.raises(WaitTimeout, match="the signal"):
        wait_for_event(threading.Event(), what="the signal", timeout=0)
    release = threading.Event()
    stuck = threading.Thread(target=release.wait, daemon=True)
    stuck.start()
    try:
        with pytest.raises(WaitTimeout, match="1 of 1 still running"):
            join_all([stuck], what="the stuck thread", timeout=0)
    finally:
        release.set()
        stuck.join()
