"""A batch of reports (``status_rule.apply_reports``, ``services.apply_polls``): the same rule as
one report at a time, in one statement on PostgreSQL. Runs on SQLite (each report in turn) and on
PostgreSQL (the batch statement), where the answers must be the same."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_whatsapp import services, signals
from django_whatsapp.client import StatusResult
from django_whatsapp.models import Message, StatusEvent
from django_whatsapp.status_rule import (
    STATUS_ORDER,
    Report,
    ReportMismatch,
    apply_reports,
    receive_report,
)
from tests.examples import examples

pytestmark = pytest.mark.django_db

_next_id = iter(range(50_000_000, 60_000_000))


def message(status: str = "accepted", provider_message_id: int | None = -1) -> Message:
    return Message.objects.create(
        source_addr="TestCo",
        destination_addr="380501234567",
        text="hi",
        status=status,
        provider_message_id=next(_next_id) if provider_message_id == -1 else provider_message_id,
    )


@pytest.fixture
def changes() -> Any:
    seen: list[tuple[int, str, str, int]] = []

    def record(message: Message, old_status: str, new_status: str, event: Any, **_: Any) -> None:
        seen.append((message.pk, old_status, new_status, event.pk))

    signals.status_changed.connect(record, dispatch_uid="test_status_batch")
    yield seen
    signals.status_changed.disconnect(dispatch_uid="test_status_batch")


def test_each_kind_of_report_in_one_batch(changes: list[tuple[int, str, str, int]]) -> None:
    raised, lower, duplicate, gone = message(), message("delivered"), message(), message()
    receive_report(duplicate, "sent", source="poll")
    adopting = message("unknown", provider_message_id=None)
    other = message()
    twice = message()
    gone_pk = gone.pk
    Message.objects.filter(pk=gone_pk).delete()
    results = apply_reports(
        [
            Report(raised, 1, {"status": 1}),
            Report(lower, "sent"),
            Report(duplicate, "sent"),
            Report(gone, "delivered"),
            Report(adopting, "delivered", None, 424242),
            Report(other, "delivered", None, 1),  # names another provider message
            Report(twice, "sent"),
            Report(twice, "delivered"),
        ],
        source="poll",
    )
    event, kept, dup, missing, adopted, mismatch, first, second = results
    assert isinstance(event, StatusEvent)
    assert event.pk is not None
    assert (event.status, event.provider_status, event.source, event.payload) == (
        "delivered",
        1,
        "poll",
        {"status": 1},
    )
    assert raised.status == "delivered"
    assert raised.status_changed_at is not None
    assert isinstance(kept, StatusEvent)
    assert lower.status == "delivered"
    assert dup is None
    assert duplicate.status == "sent"
    assert isinstance(missing, Message.DoesNotExist)
    assert isinstance(adopted, StatusEvent)
    assert adopting.provider_message_id == 424242
    assert isinstance(mismatch, ReportMismatch)
    assert isinstance(first, StatusEvent)
    assert isinstance(second, StatusEvent)
    stored = dict(Message.objects.values_list("pk", "status"))
    assert stored == {
        raised.pk: "delivered",
        lower.pk: "delivered",
        duplicate.pk: "sent",
        adopting.pk: "delivered",
        other.pk: "accepted",
        twice.pk: "delivered",
    }
    assert Message.objects.get(pk=adopting.pk).provider_message_id == 424242
    assert StatusEvent.objects.filter(message=lower, status="sent", source="poll").exists()
    assert not StatusEvent.objects.filter(message=other).exists()
    assert sorted((pk, old, new) for pk, old, new, _event in changes) == sorted(
        [
            (duplicate.pk, "accepted", "sent"),  # the report before the batch
            (raised.pk, "accepted", "delivered"),
            (adopting.pk, "unknown", "delivered"),
            (twice.pk, "accepted", "sent"),
            (twice.pk, "sent", "delivered"),
        ]
    )
    assert {pk: event_pk for pk, _o, _n, event_pk in changes}[raised.pk] == event.pk


def test_an_unknown_source_or_status_refuses_the_whole_batch() -> None:
    one = message()
    with pytest.raises(ValueError, match="unknown source"):
        apply_reports([Report(one, "sent")], source="carrier pigeon")
    with pytest.raises(ValueError, match="unknown status"):
        apply_reports([Report(one, "sent"), Report(one, "nonsense")], source="poll")
    assert not StatusEvent.objects.exists()
    assert apply_reports([], source="poll") == []


def test_a_batch_is_one_statement_on_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: elsewhere each report is applied in turn")
    messages = [message() for _ in range(50)]
    with CaptureQueriesContext(connection) as queries:
        results = apply_reports([Report(m, "delivered") for m in messages], source="callback")
    assert len(queries) == 1, [q["sql"][:80] for q in queries]
    assert all(isinstance(r, StatusEvent) for r in results)
    assert set(Message.objects.values_list("status", flat=True)) == {"delivered"}


def test_a_poll_answer_with_a_nul_or_a_lone_surrogate_is_stored_escaped() -> None:
    """Regression: the status endpoint's answer went to the JSON column as it came, and
    PostgreSQL's ``jsonb`` refuses a NUL (the resync stopped on it)."""
    one, two = message(), message()
    body = {"message_id": one.provider_message_id, "status": 1, "note": "a\x00b\ud800c"}
    [event] = services.apply_polls([(one, StatusResult(one.provider_message_id, 1, body, 1))])
    assert isinstance(event, StatusEvent)
    assert StatusEvent.objects.get(pk=event.pk).payload["note"] == "a\\x00b\\ud800c"
    single = services.apply_poll(two, StatusResult(two.provider_message_id, 7, body, 1))
    assert single is not None
    assert StatusEvent.objects.get(pk=single.pk).payload["note"] == "a\\x00b\\ud800c"
    assert Message.objects.get(pk=two.pk).status == "seen"


reports = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=4),  # which message
        st.sampled_from(["pending", "sent", "delivered", "seen", "rejected", "failed"]),
        st.sampled_from(["poll", "callback"]),
    ),
    max_size=12,
)


@hypothesis_settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    starts=st.lists(st.sampled_from(STATUS_ORDER[3:]), min_size=5, max_size=5),
    batch=reports,
)
def test_a_batch_ends_as_the_same_reports_one_at_a_time(
    starts: list[str], batch: list[tuple[int, str, str]]
) -> None:
    """Any batch leaves the messages and their events as applying its reports in order does."""
    for source in ("poll", "callback"):
        mine = [(i, status) for i, status, src in batch if src == source]
        batched = [message(status) for status in starts]
        single = [message(status) for status in starts]
        answers = apply_reports([Report(batched[i], status) for i, status in mine], source=source)
        expected = [receive_report(single[i], status, source=source) for i, status in mine]
        assert [a is None for a in answers] == [e is None for e in expected]
        assert [m.status for m in batched] == [m.status for m in single]
        for got, want in zip(batched, single, strict=True):
            stored = Message.objects.get(pk=got.pk)
            assert stored.status == got.status == Message.objects.get(pk=want.pk).status
            events = sorted(got.events.values_list("status", "source", "provider_status"))
            assert events == sorted(want.events.values_list("status", "source", "provider_status"))
