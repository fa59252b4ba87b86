"""No report is lost or counted twice, whatever the order: a Hypothesis state machine.

Each run starts one message, either ``accepted`` with its provider id or ``unknown`` without
one (the send's answer was lost), then delivers reports in any order and any number of times:
callbacks through the real endpoint (Django's test client, the signed URL, JSON, form, query
string or Meta's webhook shape), polls through ``services.receive_report(..., source="poll")``
with a fresh or a stale copy, resyncs through the ``whatsapp_resync`` command against the fake
gateway, exact duplicates of earlier deliveries, and reports naming another message's id.

After every step:

- the message's status is the highest-ranked report received (``models.STATUS_RANK``), so a
  final status holds;
- every distinct (status, source) report is exactly one ``StatusEvent``;
- the provider id is the one reported (adopted once, never replaced);
- a report naming another message's id changed nothing, on either message.

The same promise under real concurrency (two identical callbacks at the same instant) is in
``test_reliability_concurrency.py`` (PostgreSQL).
"""

from __future__ import annotations

import io
import itertools
import json
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from django.core.management import call_command
from django.test import Client
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from django_whatsapp import services
from django_whatsapp.models import Message
from django_whatsapp.signing import callback_url
from django_whatsapp.status_rule import (
    FINAL_STATUSES,
    PROVIDER_CODES,
    STATUS_RANK,
    normalize_status,
)
from tests.conftest import STATUS_PATH, FakeGateway
from tests.examples import examples

Status = Message.Status
#: Provider ids handed out across all runs, so that none ever clashes with another run's.
PROVIDER_IDS = itertools.count(50_000_000, 10)

REPORTED = sorted(PROVIDER_CODES)  # the statuses the gateway reports
#: How a report may name its status on the wire: the name, the code, or an alias / other case.
spellings = st.sampled_from(REPORTED).flatmap(
    lambda status: st.sampled_from(
        [status, PROVIDER_CODES[status], str(PROVIDER_CODES[status]), status.upper()]
        + (["read", "READ"] if status == Status.SEEN else [])
    )
)
CHANNELS = ("json", "form", "get", "query-post", "meta")


def highest(statuses: list[str]) -> str:
    return max(statuses, key=STATUS_RANK.__getitem__)


def make_machine(gateway: FakeGateway) -> type[RuleBasedStateMachine]:
    class Reports(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.client = Client()
            self.deliveries: list[tuple[str, Any, bool]] = []  # (channel, spelling, with_id)

        @initialize(answer_lost=st.booleans())
        def start(self, answer_lost: bool) -> None:
            self.provider_id = next(PROVIDER_IDS)
            initial = Status.UNKNOWN if answer_lost else Status.ACCEPTED
            self.message = Message.objects.create(
                source_addr="TestCo",
                destination_addr="380501234567",
                text="hello",
                status=initial,
                provider_message_id=None if answer_lost else self.provider_id,
            )
            self.sibling = Message.objects.create(
                source_addr="TestCo",
                destination_addr="380501234568",
                text="the other one",
                status=Status.SENT,
                provider_message_id=self.provider_id + 1,
            )
            self.stale = Message.objects.get(pk=self.message.pk)  # never refreshed
            url = callback_url(self.message.uuid)
            assert url is not None
            self.path = urlsplit(url).path
            # The model: what was received, and what the message must show for it.
            self.statuses = [initial]
            self.reports: set[tuple[str, str]] = set()
            self.expected_id: int | None = None if answer_lost else self.provider_id
            self.last_rank = STATUS_RANK[initial]

        # -- deliveries --------------------------------------------------------------------

        def _post(self, channel: str, body: dict[str, Any]) -> Any:
            if channel == "json":
                return self.client.post(
                    self.path, json.dumps(body), content_type="application/json"
                )
            if channel == "form":
                return self.client.post(
                    self.path, urlencode(body), content_type="application/x-www-form-urlencoded"
                )
            if channel == "get":
                return self.client.get(self.path, body)
            if channel == "query-post":
                return self.client.post(f"{self.path}?{urlencode(body)}")
            meta = {"statuses": [{"id": "wamid.HBgM", "status": body["status"]}]}
            return self.client.post(self.path, json.dumps(meta), content_type="application/json")

        def _callback(self, channel: str, spelling: Any, with_id: bool) -> None:
            body: dict[str, Any] = {"status": spelling}
            if with_id and channel != "meta":
                body["message_id"] = self.provider_id
            response = self._post(channel, body)
            assert response.status_code == 200, (channel, body, response.content)
            status = normalize_status(spelling)
            self.statuses.append(status)
            self.reports.add((status, "callback"))
            if with_id and channel != "meta":
                self.expected_id = self.provider_id
            answer = response.json()
            assert answer["status"] == highest(self.statuses)
            self.deliveries.append((channel, spelling, with_id))

        @rule(channel=st.sampled_from(CHANNELS), spelling=spellings, with_id=st.booleans())
        def callback(self, channel: str, spelling: Any, with_id: bool) -> None:
            self._callback(channel, spelling, with_id)

        @rule(data=st.data())
        def the_same_callback_again(self, data: st.DataObject) -> None:
            if not self.deliveries:
                return
            channel, spelling, with_id = data.draw(st.sampled_from(self.deliveries))
            self._callback(channel, spelling, with_id)

        @rule(spelling=spellings, stale=st.booleans(), with_id=st.booleans())
        def poll(self, spelling: Any, stale: bool, with_id: bool) -> None:
            copy = self.stale if stale else Message.objects.get(pk=self.message.pk)
            services.receive_report(
                copy,
                spelling,
                source="poll",
                payload={"message_id": self.provider_id, "status": spelling},
                provider_message_id=self.provider_id if with_id else None,
            )
            status = normalize_status(spelling)
            self.statuses.append(status)
            self.reports.add((status, "poll"))
            if with_id:
                self.expected_id = self.provider_id
            assert copy.status == highest(self.statuses)

        @rule(status=st.sampled_from(REPORTED))
        def resync(self, status: str) -> None:
            gateway.server.clear()
            gateway.server.expect_oneshot_request(STATUS_PATH, method="POST").respond_with_json(
                {"message_id": self.provider_id, "status": PROVIDER_CODES[status]}
            )
            out = io.StringIO()
            call_command("whatsapp_resync", "--ids", str(self.message.pk), stdout=out)
            polled = [r for r, _ in gateway.server.log if r.path == STATUS_PATH]
            # Only messages with an id that are not final are polled.
            due = self.expected_id is not None and highest(self.statuses) not in FINAL_STATUSES
            assert len(polled) == (1 if due else 0), out.getvalue()
            if due:
                assert json.loads(polled[0].get_data()) == {"message_id": self.provider_id}
                self.statuses.append(status)
                self.reports.add((status, "poll"))
                assert "Polled 1: " in out.getvalue()
            else:
                assert "Polled 0: " in out.getvalue()

        @rule(channel=st.sampled_from(("json", "form", "get")), spelling=spellings)
        def a_report_about_another_message(self, channel: str, spelling: Any) -> None:
            """The sibling's id in this message's signed URL: refused, nothing changes."""
            before = list(self.sibling.events.values_list("pk", flat=True))
            response = self._post(
                channel, {"message_id": self.sibling.provider_message_id, "status": spelling}
            )
            assert response.status_code == 400, response.content
            sibling = Message.objects.get(pk=self.sibling.pk)
            assert (sibling.status, sibling.provider_message_id) == (
                Status.SENT,
                self.provider_id + 1,
            )
            assert list(sibling.events.values_list("pk", flat=True)) == before == []

        # -- invariants --------------------------------------------------------------------

        @invariant()
        def the_status_is_the_highest_ranked_report(self) -> None:
            fresh = Message.objects.get(pk=self.message.pk)
            assert fresh.status == highest(self.statuses)
            rank = STATUS_RANK[fresh.status]
            assert rank >= self.last_rank  # never moves down: a final status holds
            self.last_rank = rank

        @invariant()
        def every_distinct_report_is_exactly_one_event(self) -> None:
            events = list(self.message.events.values_list("status", "source"))
            assert sorted(events) == sorted(self.reports)

        @invariant()
        def the_provider_id_is_adopted_once_and_kept(self) -> None:
            fresh = Message.objects.get(pk=self.message.pk)
            assert fresh.provider_message_id == self.expected_id

    return Reports


@pytest.mark.django_db
def test_reports_in_any_order_with_duplicates_and_resyncs(gateway: FakeGateway) -> None:
    run_state_machine_as_test(
        make_machine(gateway),
        settings=settings(
            max_examples=examples(100),
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
