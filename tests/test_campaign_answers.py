"""A campaign chunk's answers (``campaigns.answers.Answers``): a batch comes back whole, a slow
request is left for a later batch, and nothing answered is an empty batch."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from django_whatsapp.campaigns.answers import Answers
from django_whatsapp.client import SendResult
from tests.waiting import wait_for_event

#: Longer than any test waits: a ``take`` that waited for it would fail the test's own wait.
FOR_EVER = 10**6


def answered(number: int) -> Any:
    def send(payload: dict[str, object]) -> SendResult:
        return SendResult(message_id=number, body={"message_id": number}, attempts=1)

    return send


def once_answered(futures: list[Future[SendResult]]) -> threading.Event:
    """An event set once every future is answered and handed to the ``Answers`` (a callback
    added after its own runs after it)."""
    done = threading.Event()
    left = [len(futures)]
    lock = threading.Lock()

    def one(_future: Future[SendResult]) -> None:
        with lock:
            left[0] -= 1
            if not left[0]:
                done.set()

    for future in futures:
        future.add_done_callback(one)
    return done


def test_a_batch_answered_comes_back_whole() -> None:
    answers = Answers()
    with ThreadPoolExecutor(max_workers=8) as pool:
        handed = [answers.hand_out(pool, answered(n), {}) for n in range(8)]
        wait_for_event(once_answered(handed), what="the eight answers")
        taken = answers.take(FOR_EVER)
    assert sorted(taken, key=handed.index) == handed
    assert [f.result().message_id for f in sorted(taken, key=handed.index)] == list(range(8))


def test_a_slow_request_is_left_for_a_later_batch() -> None:
    answers = Answers()
    release = threading.Event()

    def slow(payload: dict[str, object]) -> SendResult:
        wait_for_event(release, what="the test to let the slow request answer")
        return SendResult(message_id=99, body={}, attempts=1)

    with ThreadPoolExecutor(max_workers=4) as pool:
        late = answers.hand_out(pool, slow, {})
        quick = [answers.hand_out(pool, answered(n), {}) for n in range(3)]
        wait_for_event(once_answered(quick), what="the three quick answers")
        first: list[Future[SendResult]] = []
        returned = threading.Event()

        def take() -> None:
            first.extend(answers.take(FOR_EVER))
            returned.set()

        threading.Thread(target=take, daemon=True).start()
        # Three of four answered: the fourth is waited for a little, not for ever.
        wait_for_event(returned, what="take() to give the answered requests back")
        assert sorted(first, key=quick.index) == quick
        release.set()
        assert answers.take(FOR_EVER) == [late]
    assert late.result().message_id == 99


def test_nothing_answered_in_time_is_an_empty_batch() -> None:
    answers = Answers()
    release = threading.Event()

    def held(payload: dict[str, object]) -> SendResult:
        wait_for_event(release, what="the test to let the request answer")
        return SendResult(message_id=1, body={}, attempts=1)

    with ThreadPoolExecutor(max_workers=1) as pool:
        future = answers.hand_out(pool, held, {})
        assert answers.take(0) == []
        release.set()
        assert answers.take(FOR_EVER) == [future]
