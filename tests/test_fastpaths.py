"""Each fast path of ``django_whatsapp.fastpaths`` does what the Python rule it stands for does.

One Hypothesis test, run for every pair on SQLite and on PostgreSQL: it builds the same messages
twice, each time in a savepoint rolled back afterwards, runs the fast path (what the app runs on
this database) on one and the rule on the other, and compares what each left: the rows (status,
provider id, attempts, error, whether the status moved), the events, the objects in memory, the
answers and the signals. The messages the app holds are often stale: a callback, a cancel or a
worker that took a chunk over moved the row between the claim and the record ("moved
meanwhile"), and the strategies draw such rows on purpose.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_whatsapp import optout, services, signals, window
from django_whatsapp.client import SendResult
from django_whatsapp.fastpaths import by_uuid
from django_whatsapp.models import Campaign, Contact, Message, StatusEvent
from django_whatsapp.sending import (
    SENDABLE,
    claim_campaign,
    claim_messages,
    claimable,
    record_accepted,
    record_send,
)
from django_whatsapp.status_rule import (
    STATUS_ORDER,
    Report,
    ReportMismatch,
    apply_by_rule,
    apply_report,
    apply_reports,
)
from django_whatsapp.webhooks.parsing import report_payload

from .examples import examples
from .test_callback import callback_path

pytestmark = pytest.mark.django_db

Status = Message.Status
Source = StatusEvent.Source

#: Provider ids: the message's own, one another message holds, and fresh ones.
OWN_ID, OTHERS_ID = 5_000_001, 5_000_002
FRESH_IDS = (5_000_003, 5_000_004, 5_000_005)
#: The stranger that holds ``OTHERS_ID``.
STRANGER = "380990000999"


def number(index: int) -> str:
    return f"38050000{index:04d}"


def make(index: int, status: str, provider_message_id: int | None = None, **fields: Any) -> Message:
    return Message.objects.create(
        source_addr="TestCo",
        destination_addr=number(index),
        text="hi",
        status=status,
        provider_message_id=provider_message_id,
        **fields,
    )


#: A message whose earlier try failed: its error and attempts are kept until one succeeds.
EARLIER_TRY: dict[str, Any] = {
    "error_code": 7,
    "error_name": "Gateway unreachable",
    "error_message": "Could not connect to the gateway.",
    "attempts": 2,
}


def stranger() -> Message:
    """A message outside the batch that holds ``OTHERS_ID``."""
    return Message.objects.create(
        source_addr="TestCo",
        destination_addr=STRANGER,
        text="hi",
        status=Status.DELIVERED,
        provider_message_id=OTHERS_ID,
    )


# -- what each side left -------------------------------------------------------------------------


@contextmanager
def heard(changes: bool = True) -> Iterator[list[tuple[Any, ...]]]:
    """The signals sent meanwhile, by message id: ``status_changed`` (old, new, the event's status
    and source; unless ``changes`` is false: then nobody listens to it), ``message_sent``,
    ``message_failed`` (the error's name)."""
    seen: list[tuple[Any, ...]] = []

    def changed(message: Message, old_status: str, new_status: str, event: Any, **_: Any) -> None:
        seen.append(("changed", message.pk, old_status, new_status, event.status, event.source))

    def sent(message: Message, **_: Any) -> None:
        seen.append(("sent", message.pk))

    def failed(message: Message, error: Any, **_: Any) -> None:
        seen.append(("failed", message.pk, getattr(error, "name", "")))

    if changes:
        signals.status_changed.connect(changed, dispatch_uid="test_fastpaths")
    signals.message_sent.connect(sent, dispatch_uid="test_fastpaths")
    signals.message_failed.connect(failed, dispatch_uid="test_fastpaths")
    try:
        yield seen
    finally:
        signals.status_changed.disconnect(dispatch_uid="test_fastpaths")
        signals.message_sent.disconnect(dispatch_uid="test_fastpaths")
        signals.message_failed.disconnect(dispatch_uid="test_fastpaths")


def rows(messages: list[Message], before: dict[int, Any]) -> list[Any]:
    """The stored state of ``messages``, by position: ``None`` for one that is gone."""
    stored = Message.objects.in_bulk([m.pk for m in messages])
    state: list[Any] = []
    for message in messages:
        row = stored.get(message.pk)
        if row is None:
            state.append(None)
            continue
        events = list(
            StatusEvent.objects.filter(message_id=message.pk)
            .order_by("pk")
            .values_list("status", "source", "provider_status", "payload")
        )
        state.append(
            (
                row.status,
                row.provider_message_id,
                row.attempts,
                row.error_code,
                row.error_name,
                row.error_message,
                row.status_changed_at != before[message.pk],
                row.submitted_at is None,
                events,
            )
        )
    return state


def in_memory(messages: list[Message]) -> list[Any]:
    return [
        (m.status, m.provider_message_id, m.attempts, m.error_name, m.error_code) for m in messages
    ]


def by_position(messages: list[Message], seen: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The signals with each message id replaced by the message's position, in the order sent
    for each message (two messages' signals may come in another order)."""
    position = {m.pk: i for i, m in enumerate(messages)}
    named = [(kind, position.get(pk, pk), *rest) for kind, pk, *rest in seen]
    return sorted(named, key=lambda signal: signal[1])


def event_or_error(result: Any) -> Any:
    if isinstance(result, StatusEvent):
        return ("event", result.status, result.source, result.provider_status, result.payload)
    if isinstance(result, BaseException):
        return ("error", type(result).__name__)
    return result


def both(
    build: Callable[[], list[Message]],
    fast: Callable[[list[Message]], Any],
    rule: Callable[[list[Message]], Any],
    *,
    changes: bool = True,
) -> tuple[Any, Any]:
    """Build the messages, run ``fast`` on them and take stock; build them again and do the same
    with ``rule``. Each run is rolled back. ``changes``: see :func:`heard`."""
    results = []
    for side in (fast, rule):
        with transaction.atomic():
            messages = build()
            before = dict(
                Message.objects.filter(pk__in=[m.pk for m in messages]).values_list(
                    "pk", "status_changed_at"
                )
            )
            with heard(changes) as seen:
                try:
                    answer: Any = side(messages)
                except (ReportMismatch, Message.DoesNotExist, IntegrityError) as error:
                    answer = ("raised", type(error).__name__)
            results.append(
                (
                    answer,
                    rows(messages, before),
                    in_memory(messages),
                    by_position(messages, seen),
                )
            )
            transaction.set_rollback(True)
    return results[0], results[1]


# -- the pairs ------------------------------------------------------------------------------------

statuses = st.sampled_from(STATUS_ORDER)
sources = st.sampled_from(Source.values)
payloads = st.fixed_dictionaries({"n": st.integers(0, 3)})


def stale(data: st.DataObject, status: str) -> str:
    """The status the app's copy of a message believes: the stored one, or an older one (the row
    moved meanwhile)."""
    return data.draw(st.sampled_from([status, Status.SENDING, Status.ACCEPTED]), label="memory")


def one_report(data: st.DataObject) -> None:
    """``status_rule.apply_report`` (one statement on PostgreSQL) equals ``apply_by_rule``."""
    stored = data.draw(statuses, label="stored")
    believed = stale(data, stored)
    own = data.draw(st.sampled_from([None, OWN_ID]), label="own id")
    status = data.draw(statuses, label="report")
    source = data.draw(sources, label="source")
    payload = data.draw(payloads, label="payload")
    duplicate = data.draw(st.booleans(), label="already reported")
    tried = data.draw(st.booleans(), label="an earlier try failed")
    gone = data.draw(st.sampled_from([False, False, False, True]), label="deleted meanwhile")
    sent = data.draw(
        st.none()
        | st.none()
        | st.builds(
            SendResult,
            message_id=st.sampled_from([OWN_ID, OTHERS_ID, FRESH_IDS[0]]),
            body=st.just({"message_id": 1}),
            attempts=st.integers(1, 3),
        ),
        label="send's result",
    )
    named = data.draw(
        st.sampled_from([None, None, OWN_ID, OTHERS_ID, FRESH_IDS[1]]), label="named provider id"
    )
    if sent is not None:
        status, source, named = Status.ACCEPTED, Source.SEND, None

    def build() -> list[Message]:
        stranger()
        message = make(0, stored, own, **(EARLIER_TRY if tried else {}))
        if duplicate:
            StatusEvent.objects.create(message=message, status=status, source=source)
        copy_ = Message.objects.get(pk=message.pk)
        copy_.status = believed
        copy_.provider_message_id = own if believed == stored else None
        if gone:
            StatusEvent.objects.filter(message=message).delete()
            Message.objects.filter(pk=message.pk).delete()
        return [copy_]

    def run(apply: Callable[..., Any]) -> Callable[[list[Message]], Any]:
        def side(messages: list[Message]) -> Any:
            return event_or_error(
                apply(
                    messages[0],
                    status,
                    source=source,
                    payload=payload,
                    provider_message_id=named,
                    sent=sent,
                )
            )

        return side

    fast, rule = both(build, run(apply_report), run(apply_by_rule))
    assert fast == rule


def many_reports(data: st.DataObject) -> None:
    """``status_rule.apply_reports`` (one statement on PostgreSQL) equals each report in turn by
    ``apply_by_rule``."""
    stored = data.draw(st.lists(statuses, min_size=3, max_size=3), label="stored")
    believed = [stale(data, status) for status in stored]
    source = data.draw(st.sampled_from([Source.CALLBACK, Source.POLL]), label="source")
    batch = data.draw(
        st.lists(
            st.tuples(
                st.integers(0, 2),
                statuses,
                payloads,
                st.sampled_from([None, None, OWN_ID, FRESH_IDS[0], OTHERS_ID]),
            ),
            max_size=6,
        ),
        label="reports",
    )
    duplicates = data.draw(st.lists(st.tuples(st.integers(0, 2), statuses), max_size=2))
    gone = data.draw(st.sets(st.integers(0, 2), max_size=1), label="deleted meanwhile")

    def build() -> list[Message]:
        stranger()
        kept = [
            make(i, status, OWN_ID + 10 * (i + 1) if i else None) for i, status in enumerate(stored)
        ]
        for i, status in duplicates:
            StatusEvent.objects.get_or_create(message=kept[i], status=status, source=source)
        copies = []
        for i, message in enumerate(kept):
            copy_ = Message.objects.get(pk=message.pk)
            copy_.status = believed[i]
            copies.append(copy_)
        for i in gone:
            StatusEvent.objects.filter(message=kept[i]).delete()
            Message.objects.filter(pk=kept[i].pk).delete()
        return copies

    def named(messages: list[Message], i: int, provider_id: int | None) -> int | None:
        # OWN_ID stands for the message's own id (message 0 has none: it may adopt one).
        own = messages[i].provider_message_id
        return (own or OWN_ID) if provider_id == OWN_ID else provider_id

    def fast(messages: list[Message]) -> Any:
        reports = [Report(messages[i], s, p, named(messages, i, n)) for i, s, p, n in batch]
        return [event_or_error(r) for r in apply_reports(reports, source=source)]

    def rule(messages: list[Message]) -> Any:
        answers = []
        ids = [named(messages, i, provider_id) for i, _s, _p, provider_id in batch]
        for (i, status, payload, _id), provider_id in zip(batch, ids, strict=True):
            try:
                answer: Any = apply_by_rule(
                    messages[i],
                    status,
                    source=source,
                    payload=payload,
                    provider_message_id=provider_id,
                )
            except (ReportMismatch, Message.DoesNotExist) as error:
                answer = error
            answers.append(event_or_error(answer))
        return answers

    fast_side, rule_side = both(build, fast, rule)
    assert fast_side == rule_side


def a_callback(data: st.DataObject) -> None:
    """The callback view (on PostgreSQL the function of migration 0008, called by one statement)
    does what finding the message by the ORM and applying each report by ``apply_by_rule``
    does."""
    stored = data.draw(statuses, label="stored")
    own = data.draw(st.sampled_from([None, OWN_ID]), label="own id")
    report = data.draw(
        st.fixed_dictionaries(
            {"status": st.sampled_from(["sent", "delivered", "read", 2, 4, 7])},
            optional={"message_id": st.sampled_from([OWN_ID, OTHERS_ID, FRESH_IDS[2]])},
        ),
        label="report",
    )
    already = data.draw(st.sets(st.sampled_from(["sent", "delivered", "seen"]), max_size=2))
    listening = data.draw(st.booleans(), label="a status_changed receiver")
    client = Client()

    def build() -> list[Message]:
        stranger()
        message = make(0, stored, own)
        for status in already:
            StatusEvent.objects.create(message=message, status=status, source=Source.CALLBACK)
        return [message]

    def fast(messages: list[Message]) -> Any:
        response = client.post(
            callback_path(messages[0]), json.dumps(report), content_type="application/json"
        )
        return response.status_code, response.json()

    def rule(messages: list[Message]) -> Any:
        found = Message.objects.filter(uuid=messages[0].uuid).first()
        assert found is not None
        try:
            event = apply_by_rule(
                found,
                report["status"],
                source=Source.CALLBACK,
                payload=report_payload(report),
                provider_message_id=report.get("message_id"),
            )
        except ReportMismatch as error:
            return 400, {"ok": False, "error": str(error)}
        applied = int(event is not None)
        answer = {"ok": True, "status": found.status, "applied": applied, "duplicates": 1 - applied}
        return 200, answer

    fast_side, rule_side = both(build, fast, rule, changes=listening)
    # The view finds its own object: compare the answers, the rows and the signals.
    assert (fast_side[0], fast_side[1], fast_side[3]) == (rule_side[0], rule_side[1], rule_side[3])


MOVES = {
    "still sending": None,
    "delivered by a callback, its id adopted": (Status.DELIVERED, True, ""),
    "sent by a callback, no id": (Status.SENT, False, ""),
    "cancelled": (Status.NOT_SENT, False, "Campaign cancelled"),
    "settled unknown by a takeover": (Status.UNKNOWN, False, ""),
    "accepted already": (Status.ACCEPTED, True, ""),
}


def accepted_sends(data: st.DataObject) -> None:
    """``sending.record_accepted`` (one statement on PostgreSQL, two elsewhere) equals
    ``record_send`` of each send, whatever became of the messages meanwhile."""
    count = data.draw(st.integers(1, 4), label="sends")
    moves = data.draw(st.lists(st.sampled_from(sorted(MOVES)), min_size=count, max_size=count))
    ids = data.draw(
        st.lists(
            st.sampled_from([*FRESH_IDS, OTHERS_ID, 6_000_000]), min_size=count, max_size=count
        ),
        label="provider ids",
    )
    attempts = data.draw(st.lists(st.integers(1, 3), min_size=count, max_size=count))
    errors = data.draw(st.booleans(), label="an error from an earlier try")

    def build() -> list[Message]:
        stranger()
        claimed = []
        adopted_ids = {OTHERS_ID}
        for i in range(count):
            message = make(i, Status.SENDING, **(EARLIER_TRY if errors else {}))
            claimed.append(copy.deepcopy(message))
            move = MOVES[moves[i]]
            if move is None:
                continue
            status, adopted, error = move
            adopts = adopted and ids[i] not in adopted_ids
            adopted_ids.add(ids[i])
            Message.objects.filter(pk=message.pk).update(
                status=status,
                status_changed_at=timezone.now() - timedelta(seconds=1),
                provider_message_id=ids[i] if adopts else None,
                error_name=error,
            )
            StatusEvent.objects.create(message=message, status=status, source=Source.CALLBACK)
        return claimed

    def results() -> list[SendResult]:
        return [
            SendResult(message_id=ids[i], body={"message_id": ids[i]}, attempts=attempts[i])
            for i in range(count)
        ]

    def fast(messages: list[Message]) -> Any:
        recorded = record_accepted(list(zip(messages, results(), strict=True)))
        return sorted(messages.index(m) for m in recorded)

    def rule(messages: list[Message]) -> Any:
        for message, result in zip(messages, results(), strict=True):
            record_send(message, result)
        return list(range(count))

    fast_side, rule_side = both(build, fast, rule)
    assert fast_side == rule_side


def a_campaigns_claim(data: st.DataObject) -> None:
    """``sending.claim_campaign`` (one ``UPDATE ... RETURNING``) claims what ``claimable`` says,
    only while the campaign runs, and finds the opt-outs ``optout.opted_out_numbers`` finds."""
    count = data.draw(st.integers(1, 6), label="recipients")
    kept = data.draw(
        st.lists(
            st.tuples(
                st.sampled_from([Status.DRAFT, Status.QUEUED, *STATUS_ORDER]),
                st.sampled_from([None, -60, 60]),  # send_after, seconds from now
                st.sampled_from(["none", "opted out", "opted in again"]),
            ),
            min_size=count,
            max_size=count,
        ),
        label="recipients' rows",
    )
    running = data.draw(st.booleans(), label="the campaign runs")
    first = data.draw(st.integers(0, count - 1), label="first")
    last = data.draw(st.integers(first, count - 1), label="last")
    limit = data.draw(st.integers(1, 8), label="limit")
    now = timezone.now()

    def build() -> list[Message]:
        numbers = [f"+{number(i)}" for i in range(count)]
        campaign = services.create_campaign("Claims", numbers, text="Hi", chunk_size=count)
        Campaign.objects.filter(pk=campaign.pk).update(
            status=Campaign.Status.RUNNING if running else Campaign.Status.PAUSED
        )
        messages = list(Message.objects.filter(campaign=campaign).order_by("pk"))
        for message, (status, after, consent) in zip(messages, kept, strict=True):
            Message.objects.filter(pk=message.pk).update(
                status=status,
                send_after=None if after is None else now + timedelta(seconds=after),
            )
            if consent != "none":
                Contact.objects.create(
                    number=message.destination_addr,
                    opted_out_at=now if consent == "opted out" else None,
                )
        return messages

    def bounds(messages: list[Message]) -> tuple[Campaign, int, int]:
        campaign = Campaign.objects.get(pk=messages[0].campaign_id)
        return campaign, messages[first].pk, messages[last].pk

    def fast(messages: list[Message]) -> Any:
        campaign, first_id, last_id = bounds(messages)
        claim = claim_campaign(campaign, first_id, last_id, limit, now, due_by=now)
        stored = Message.objects.in_bulk([m.pk for m in claim.messages])
        for message in claim.messages:  # what a payload needs, as the ORM reads it
            for name in CLAIMED_FIELDS:
                assert getattr(message, name) == getattr(stored[message.pk], name), name
        return [messages.index(m) for m in claim.messages], claim.opted_out

    def rule(messages: list[Message]) -> Any:
        campaign, first_id, last_id = bounds(messages)
        if campaign.status != Campaign.Status.RUNNING:
            return [], set()
        taken = list(claimable(campaign.pk, first_id, last_id, now)[:limit])
        Message.objects.filter(pk__in=[m.pk for m in taken]).update(
            status=Status.SENDING, status_changed_at=now, submitted_at=now
        )
        opted_out = optout.opted_out_numbers(m.destination_addr for m in taken)
        return [messages.index(m) for m in taken], opted_out

    fast_side, rule_side = both(build, fast, rule)
    assert (fast_side[0], fast_side[1]) == (rule_side[0], rule_side[1])


#: The fields a campaign's claim reads back for the payload.
CLAIMED_FIELDS = (
    "uuid",
    "destination_addr",
    "template_params",
    "attempts",
    "metadata",
    "tags",
    "target_content_type_id",
    "target_object_id",
    "expires_at",
    "campaign_id",
    "account",
)


def claims_by_id(data: st.DataObject) -> None:
    """``sending.claim_messages`` (one ``UPDATE ... RETURNING``) claims the messages still
    :data:`~django_whatsapp.sending.SENDABLE`, each once, and refreshes the others."""
    stored = data.draw(st.lists(statuses, min_size=1, max_size=5), label="stored")
    now = timezone.now()

    def build() -> list[Message]:
        messages = [make(i, status) for i, status in enumerate(stored)]
        for message in messages:
            message.status = Status.QUEUED  # the caller's copy: it was queued when read
        return messages

    def fast(messages: list[Message]) -> Any:
        return [messages.index(m) for m in claim_messages(list(messages), now)]

    def rule(messages: list[Message]) -> Any:
        claimed = []
        for i, message in enumerate(messages):
            if Message.objects.filter(pk=message.pk, status__in=SENDABLE).update(
                status=Status.SENDING, status_changed_at=now, submitted_at=now
            ):
                message.status = Status.SENDING
                claimed.append(i)
            else:
                message.refresh_from_db()
        return claimed

    fast_side, rule_side = both(build, fast, rule)
    assert fast_side == rule_side


#: What another process may do to the contact between two messages of the customer.
CONTACT_MOVES = ("nothing", "window closed", "opted out", "wrote later", "erased")
CONTACT_FIELDS = (
    "number",
    "name",
    "last_inbound_at",
    "window_closed_at",
    "opted_out_at",
    "opt_out_reason",
    "opt_out_message_id",
)
HOUR = timedelta(hours=1)


def a_customer_writes(data: st.DataObject) -> None:
    """``window.record_inbound`` (the upsert of ``fastpaths.contact`` on this database) against
    ``record_inbound_by_rule``: a contact absent or kept in any state, then messages whose times
    come in any order and whose names may be empty or too long, with another process moving the
    contact between them."""
    base = timezone.now().replace(microsecond=0) - timedelta(days=2)
    initial = data.draw(
        st.none()
        | st.fixed_dictionaries(
            {
                "last_inbound_at": st.sampled_from([None, base - HOUR, base, base + HOUR]),
                "name": st.sampled_from(["", "Ann"]),
                "window_closed_at": st.sampled_from([None, base - 2 * HOUR]),
                "opted_out_at": st.sampled_from([None, base - 3 * HOUR]),
            }
        ),
        label="contact",
    )
    steps = data.draw(
        st.lists(
            st.tuples(
                st.sampled_from([-2, -1, 0, 1, 2]),
                st.sampled_from(["", "Ann", "Bob", "Ç" * 300]),
                st.sampled_from(CONTACT_MOVES),
            ),
            min_size=1,
            max_size=4,
        ),
        label="messages",
    )

    def run(record: Callable[..., None]) -> list[Any]:
        seen: list[Any] = []
        with transaction.atomic():
            if initial is not None:
                Contact.objects.create(number=STRANGER, **initial)
                Contact.objects.filter(number=STRANGER).update(updated_at=base - 5 * HOUR)
            for hours, name, move in steps:
                started = timezone.now()
                record(STRANGER, base + hours * HOUR, name=name)
                row = Contact.objects.filter(number=STRANGER).values(*CONTACT_FIELDS, "updated_at")
                stored = dict(row.get())
                stored["updated_at moved"] = stored.pop("updated_at") >= started
                seen.append(stored)
                mover = Contact.objects.filter(number=STRANGER)
                if move == "window closed":
                    mover.update(window_closed_at=base + 3 * HOUR)
                elif move == "opted out":
                    mover.update(opted_out_at=base, opt_out_reason="STOP")
                elif move == "wrote later":
                    mover.update(last_inbound_at=base + 3 * HOUR)
                elif move == "erased":
                    mover.delete()
            transaction.set_rollback(True)
        return seen

    assert run(window.record_inbound) == run(window.record_inbound_by_rule)


PAIRS: dict[str, Callable[[st.DataObject], None]] = {
    "report": one_report,
    "reports": many_reports,
    "callback": a_callback,
    "accept": accepted_sends,
    "claim": a_campaigns_claim,
    "claim by id": claims_by_id,
    "contact": a_customer_writes,
}


@pytest.mark.parametrize("pair", sorted(PAIRS))
@hypothesis_settings(
    max_examples=examples(100),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_each_fast_path_does_what_its_rule_does(pair: str, data: st.DataObject) -> None:
    PAIRS[pair](data)


# -- a customer's window in one statement ------------------------------------------------------


@pytest.mark.parametrize("known", [False, True], ids=["first-message", "wrote-before"])
def test_a_customers_message_opens_the_window_in_one_statement(known: bool) -> None:
    """PostgreSQL and SQLite: the contact's upsert is the only statement (the rule's
    ``get_or_create`` took a SELECT, a savepoint, an INSERT and its release), whether the
    customer wrote before or not; the window then reads what the message said."""
    wrote = timezone.now() - HOUR
    if known:
        Contact.objects.create(number=STRANGER, last_inbound_at=wrote - HOUR, name="Ann")
    with CaptureQueriesContext(connection) as queries:
        window.record_inbound(STRANGER, wrote, name="Bob")
    statements = [q["sql"] for q in queries.captured_queries]
    assert len(statements) == 1, statements
    assert "ON CONFLICT" in statements[0], statements
    contact = Contact.objects.get(number=STRANGER)
    assert (contact.last_inbound_at, contact.name) == (wrote, "Bob")
    assert window.state(STRANGER).is_open


# -- the function's one text ----------------------------------------------------------------------

#: SHA-256 of ``fastpaths.by_uuid.CREATE`` and ``DROP``: the texts migration 0008 was written
#: with (it reads them from there).
CREATE_SHA256 = "ec501eaf6e56ad948098bba5f975edd595471e2833be2aedd4c715fa9927f562"
DROP_SHA256 = "a5757c1fe1383636c5c4a0d10565fc98f17e92ab0641096cfd5f3e6ee6a65317"


def test_the_function_migration_0008_installs_is_its_own() -> None:
    """Migration 0008 reads the function's text from ``fastpaths.by_uuid``: a changed text would
    install another function on a new database than the old ones have. Change the function with
    a new migration, and give 0008 its old text to keep."""
    assert hashlib.sha256(by_uuid.CREATE.encode()).hexdigest() == CREATE_SHA256
    assert hashlib.sha256(by_uuid.DROP.encode()).hexdigest() == DROP_SHA256


def test_postgresql_runs_the_function_of_that_text() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the function is PostgreSQL's; elsewhere migration 0008 does nothing")
    quote = connection.ops.quote_name
    text = by_uuid.CREATE.format(
        function=by_uuid.FUNCTION,
        message=quote(Message._meta.db_table),
        event=quote(StatusEvent._meta.db_table),
    )
    body = text.split("$body$")[1]
    with connection.cursor() as cursor:
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", [by_uuid.FUNCTION])
        assert cursor.fetchall() == [(body,)]
