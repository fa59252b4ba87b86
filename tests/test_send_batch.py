"""The send path's batches, shared by bulk sends and campaigns: one statement claims a batch of
stored messages (``sending.claim_messages``), one records the accepted ones with their events
(``sending.record_accepted``; on PostgreSQL the events are inserted by the same statement).
Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_whatsapp import signals
from django_whatsapp.client import SendResult
from django_whatsapp.models import Message, StatusEvent
from django_whatsapp.sending import claim_messages, record_accepted

pytestmark = pytest.mark.django_db

Status = Message.Status


def stored(count: int, status: str = Status.QUEUED) -> list[Message]:
    return [
        Message.objects.create(
            source_addr="TestCo", destination_addr=f"38050000{n:04d}", text="hi", status=status
        )
        for n in range(count)
    ]


def test_a_claim_takes_only_the_sendable_messages_in_one_statement() -> None:
    free = stored(3)
    taken = stored(1, Status.SENDING)[0]
    with CaptureQueriesContext(connection) as queries:
        claimed = claim_messages([free[0], taken, free[1], free[2]])
    assert claimed == [free[0], free[1], free[2]]
    assert queries.captured_queries[0]["sql"].split()[0] == "UPDATE"
    # One statement claims; the one message someone else has is read back as it is.
    assert len(queries) == 2
    assert all(m.status == Status.SENDING and m.submitted_at is not None for m in claimed)
    assert taken.status == Status.SENDING
    assert set(Message.objects.values_list("status", flat=True)) == {Status.SENDING}
    # A second claim of the same messages gets none of them.
    assert claim_messages(free) == []
    assert claim_messages([]) == []


def test_accepted_sends_are_recorded_together_with_their_events() -> None:
    messages = claim_messages(stored(5))
    changed: list[tuple[int, str, str]] = []

    def record(message: Message, old_status: str, new_status: str, **_: Any) -> None:
        changed.append((message.pk, old_status, new_status))

    signals.status_changed.connect(record, dispatch_uid="test_send_batch")
    body = {"message_id": 0, "note": "a\x00b"}
    try:
        with CaptureQueriesContext(connection) as queries:
            recorded = record_accepted(
                [
                    (m, SendResult(9100 + i, 2, {**body, "message_id": 9100 + i}))
                    for i, m in enumerate(messages)
                ]
            )
    finally:
        signals.status_changed.disconnect(dispatch_uid="test_send_batch")
    assert recorded == messages
    # (The test runs in a transaction: a savepoint around the batch is not a statement of it.)
    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    if connection.vendor == "postgresql":
        assert len(statements) == 1
    else:  # the UPDATE and the INSERT
        assert len(statements) == 2
    assert changed == [(m.pk, Status.SENDING, Status.ACCEPTED) for m in messages]
    rows = list(
        Message.objects.order_by("pk").values_list("status", "provider_message_id", "attempts")
    )
    assert rows == [(Status.ACCEPTED, 9100 + i, 2) for i in range(5)]
    events = StatusEvent.objects.order_by("message_id")
    assert [(e.message_id, e.status, e.source) for e in events] == [
        (m.pk, Status.ACCEPTED, "send") for m in messages
    ]
    # The gateway's answer is kept as every database's JSON column can hold it.
    assert {e.payload["note"] for e in events} == {"a\\x00b"}
    assert [e.pk for e in events] == sorted(
        e.pk for _m, e in ((m, StatusEvent.objects.get(message=m)) for m in messages)
    )


def test_a_provider_id_of_another_message_fails_only_that_message() -> None:
    owner = stored(1, Status.ACCEPTED)[0]
    Message.objects.filter(pk=owner.pk).update(provider_message_id=9200)
    messages = claim_messages(stored(3))
    ids = [9201, 9200, 9202]
    recorded = record_accepted(
        [(m, SendResult(i, 1, {"message_id": i})) for m, i in zip(messages, ids, strict=True)]
    )
    assert recorded == messages
    statuses = [Message.objects.get(pk=m.pk) for m in messages]
    assert [(m.status, m.provider_message_id) for m in statuses] == [
        (Status.ACCEPTED, 9201),
        (Status.UNKNOWN, None),
        (Status.ACCEPTED, 9202),
    ]
    assert statuses[1].error_name == "Duplicate message_id"


def test_a_message_settled_meanwhile_adopts_the_gateways_id() -> None:
    late, current = claim_messages(stored(2))
    Message.objects.filter(pk=late.pk).update(status=Status.UNKNOWN)
    recorded = record_accepted(
        [(late, SendResult(9300, 1, {})), (current, SendResult(9301, 1, {}))]
    )
    assert sorted(m.pk for m in recorded) == sorted([late.pk, current.pk])
    assert dict(Message.objects.values_list("pk", "provider_message_id")) == {
        late.pk: 9300,
        current.pk: 9301,
    }
    assert set(Message.objects.values_list("status", flat=True)) == {Status.ACCEPTED}
    assert record_accepted([]) == []
