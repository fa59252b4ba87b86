"""Campaigns in process: the audience streamed in and validated, start / pause / resume / cancel,
the chunk tasks run as a worker would (the framework's dummy backend keeps what was enqueued),
progress and results. Real worker processes: tests/test_campaign_workers.py."""

from __future__ import annotations

import io
from datetime import timedelta
from importlib.util import find_spec
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.utils import timezone

from django_whatsapp import services, signals
from django_whatsapp.campaigns import engine
from django_whatsapp.campaigns.audience import MAX_REJECTIONS_STORED, REPEATED_REASON
from django_whatsapp.models import Campaign, CampaignChunk, Message, Template
from django_whatsapp.sending import claim_batch
from django_whatsapp.signing import callback_url
from tests.conftest import FakeGateway

pytestmark = pytest.mark.django_db(transaction=True)

if find_spec("django.tasks"):  # Django 6.0+
    from django.tasks import default_task_backend

    DUMMY = "django.tasks.backends.dummy.DummyBackend"
else:
    pytest.importorskip("django_tasks")
    from django_tasks import default_task_backend  # type: ignore[no-redef,unused-ignore]

    DUMMY = "django_tasks.backends.dummy.DummyBackend"

Status = Message.Status
CStatus = Campaign.Status


@pytest.fixture(autouse=True)
def framework(settings: Any, gateway: FakeGateway) -> None:
    settings.TASKS = {"default": {"BACKEND": DUMMY}}
    default_task_backend.clear()  # type: ignore[attr-defined]


def enqueued() -> list[Any]:
    return list(default_task_backend.results)  # type: ignore[attr-defined]


def run_queue(*, ticks: bool = True) -> list[Any]:
    """Run what was enqueued, as a worker would, until nothing new comes (deferred ticks run
    at once when ``ticks``); return the results."""
    done: list[Any] = []
    for _round in range(50):
        results = enqueued()
        default_task_backend.clear()  # type: ignore[attr-defined]
        if not ticks:
            results = [r for r in results if r.task.name != "campaign_tick"]
        if not results:
            return done
        done += [r.task.call(*r.args, **r.kwargs) for r in results]
    raise AssertionError("the queue never ran dry")


def numbers(count: int, start: int = 0) -> list[str]:
    return [f"+38050{n:07d}" for n in range(start, start + count)]


def sent_numbers(gateway: FakeGateway) -> list[int]:
    return sorted(b["destination_addr"] for b in gateway.sent_bodies())


# -- the audience ------------------------------------------------------------------------------


def test_create_streams_validates_and_counts_each_row() -> None:
    given = [*numbers(5), "not a number", "+380500000001", "", "+38050000000" + "1" * 20]
    campaign = services.create_campaign("Spring sale", iter(given), text="Hello", chunk_size=2)
    assert campaign.status == CStatus.DRAFT
    assert (campaign.rows_read, campaign.recipients_count) == (9, 5)
    assert (campaign.rejected_count, campaign.duplicates_count) == (3, 1)
    rows = campaign.rejections.order_by("line")
    rejected = list(rows.exclude(reason=REPEATED_REASON).values_list("line", "value"))
    assert rejected == [(6, "not a number"), (8, ""), (9, given[8])]
    # The repeated number is listed too, with its line.
    repeated = list(rows.filter(reason=REPEATED_REASON).values_list("line", "value"))
    assert repeated == [(7, "+380500000001")]
    assert all(r.reason for r in campaign.rejections.all())
    messages = Message.objects.filter(campaign=campaign)
    assert sorted(messages.values_list("destination_addr", flat=True)) == [
        n.lstrip("+") for n in numbers(5)
    ]
    assert set(messages.values_list("status", flat=True)) == {Status.DRAFT}
    # Chunks of two cover every message once.
    chunks = list(CampaignChunk.objects.filter(campaign=campaign).order_by("first_id"))
    assert [c.size for c in chunks] == [2, 2, 1]
    covered = [m for c in chunks for m in messages.filter(pk__range=(c.first_id, c.last_id))]
    assert len(covered) == 5 == len(set(covered))


def test_create_refuses_bad_content_and_stores_nothing() -> None:
    with pytest.raises(ValidationError):
        services.create_campaign("No content", numbers(2))
    with pytest.raises(ValidationError):
        services.create_campaign("Empty text", numbers(2), text="")
    with pytest.raises(ValidationError):
        services.create_campaign("", numbers(2), text="Hi")
    assert Campaign.objects.count() == 0
    assert Message.objects.count() == 0


def test_template_campaign_takes_each_recipients_parameters(template: Template) -> None:
    rows = [
        ("+380500000001", ["Ann", "A-1"]),
        ("+380500000002", ["Bob"]),  # one parameter short
        ("+380500000003", ["Cy", "C-3"]),
    ]
    campaign = services.create_campaign(
        "Orders", rows, template=template, header="https://cdn.example.com/h.png"
    )
    assert (campaign.recipients_count, campaign.rejected_count) == (2, 1)
    [rejection] = campaign.rejections.all()
    assert rejection.line == 2
    assert "2 parameters" in rejection.reason
    params = dict(
        Message.objects.filter(campaign=campaign).values_list("destination_addr", "template_params")
    )
    assert params["380500000001"]["body"] == ["Ann", "A-1"]
    assert params["380500000003"]["header"] == "https://cdn.example.com/h.png"


def test_csv_rows_are_read_with_their_line_numbers(template: Template) -> None:
    data = io.StringIO(
        "phone,name,order\n"
        "+380500000001,Ann,A-1\n"
        "\n"
        "garbage,Bob,B-2\n"
        "+380500000003,Cy\n"
        '+380500000004,"Dee\nDee",D-4\n'
        "+380500000005,Eve,E-5\n"
    )
    campaign = services.campaign_from_csv(
        "CSV",
        data,
        number_column="phone",
        param_columns=["name", "order"],
        template=template,
        header="https://cdn.example.com/h.png",
    )
    assert campaign.recipients_count == 3
    assert sorted(campaign.rejections.values_list("line", flat=True)) == [4, 5]
    stored = Message.objects.get(campaign=campaign, destination_addr="380500000004")
    assert stored.template_params["body"] == ["Dee\nDee", "D-4"]


def test_csv_without_the_named_column_stores_nothing() -> None:
    with pytest.raises(ValidationError, match="phone"):
        services.campaign_from_csv(
            "CSV", io.StringIO("number\n+380500000001\n"), number_column="phone", text="Hi"
        )
    assert Campaign.objects.count() == 0


def test_rejections_kept_are_bounded_but_all_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    from django_whatsapp.campaigns import audience

    monkeypatch.setattr(audience, "MAX_REJECTIONS_STORED", 3)
    campaign = services.create_campaign("Bad", ["x"] * 7 + numbers(1), text="Hi")
    assert campaign.rejected_count == 7
    assert campaign.rejections.count() == 3
    assert MAX_REJECTIONS_STORED >= 1000


# -- sending -----------------------------------------------------------------------------------


def test_a_started_campaign_is_sent_by_its_chunk_tasks(gateway: FakeGateway) -> None:
    gateway.accept()
    campaign = services.create_campaign("Go", numbers(7), text="Hello", chunk_size=3)
    assert gateway.requests == []
    services.start_campaign(campaign)
    assert campaign.status == CStatus.RUNNING
    names = sorted(r.task.name for r in enqueued())
    assert names == ["campaign_tick", *["send_campaign_chunk"] * 3]
    run_queue()
    assert sent_numbers(gateway) == [int(n) for n in (x.lstrip("+") for x in numbers(7))]
    campaign.refresh_from_db()
    assert campaign.status == CStatus.DONE
    progress = services.campaign_progress(campaign)
    assert progress.counts == {Status.ACCEPTED: 7}
    assert (progress.total, progress.settled, progress.percent) == (7, 7, 100.0)
    assert dict(progress.funnel)["accepted"] == 7
    # Each request carried its message's own signed callback URL.
    urls = {b["destination_addr"]: b["callback_url"] for b in gateway.sent_bodies()}
    for message in Message.objects.filter(campaign=campaign):
        assert urls[int(message.destination_addr)] == callback_url(message.uuid)
    # Each message has its provider id and one send event.
    for message in Message.objects.filter(campaign=campaign):
        assert message.provider_message_id is not None
        assert list(message.events.values_list("status", "source")) == [("accepted", "send")]


def test_signals_are_sent_for_each_campaign_message(gateway: FakeGateway) -> None:
    gateway.accept()
    seen: dict[str, list[int]] = {"sending": [], "sent": [], "changed": []}

    def on_sending(sender: Any, message: Message, **kwargs: Any) -> None:
        seen["sending"].append(message.pk)

    def on_sent(sender: Any, message: Message, **kwargs: Any) -> None:
        seen["sent"].append(message.pk)

    def on_changed(sender: Any, message: Message, **kwargs: Any) -> None:
        seen["changed"].append(message.pk)

    signals.message_sending.connect(on_sending, weak=False)
    signals.message_sent.connect(on_sent, weak=False)
    signals.status_changed.connect(on_changed, weak=False)
    try:
        campaign = services.create_campaign("Signals", numbers(3), text="Hi")
        services.start_campaign(campaign)
        run_queue()
    finally:
        signals.message_sending.disconnect(on_sending)
        signals.message_sent.disconnect(on_sent)
        signals.status_changed.disconnect(on_changed)
    ids = sorted(Message.objects.filter(campaign=campaign).values_list("pk", flat=True))
    assert sorted(seen["sending"]) == sorted(seen["sent"]) == sorted(seen["changed"]) == ids


def test_a_job_delivered_twice_sends_each_message_once(gateway: FakeGateway) -> None:
    gateway.accept()
    campaign = services.create_campaign("Twice", numbers(4), text="Hi", chunk_size=10)
    services.start_campaign(campaign)
    chunk = CampaignChunk.objects.get(campaign=campaign)
    # The same chunk's job twice (a redelivery), run one after the other.
    engine.run_chunk(chunk.pk)
    assert engine.run_chunk(chunk.pk).outcome == "busy"
    run_queue()
    assert len(gateway.sent_bodies()) == 4


def test_an_account_removed_while_its_campaign_runs_pauses_it_and_burns_no_one(
    gateway: FakeGateway, settings: Any
) -> None:
    """The campaign's account leaves ``ACCOUNTS`` (a deploy) while its chunks wait for a
    worker: the worker pauses the campaign with the reason instead of failing its task again
    every lease, nothing is requested or failed, Resume is refused until the account is back,
    and then everyone is sent."""
    gateway.accept()
    accounts = {"outlet": {"API_KEY": "outlet-key", "DEFAULT_SOURCE_ADDR": "Outlet"}}
    configured = settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "ACCOUNTS": accounts}
    campaign = services.create_campaign(
        "Outlet", numbers(3), text="Hi", account="outlet", chunk_size=2
    )
    services.start_campaign(campaign)
    settings.DJANGO_WHATSAPP = {**configured, "ACCOUNTS": {}}

    outcomes = run_queue()

    campaign.refresh_from_db()
    removed = "DJANGO_WHATSAPP['ACCOUNTS'] has no account 'outlet'. Known accounts: default."
    assert campaign.status == Campaign.Status.PAUSED
    assert campaign.pause_reason == f"This campaign's account cannot be used: {removed}"
    assert "stopped" in outcomes
    assert gateway.sent_bodies() == []
    assert set(Message.objects.values_list("status", flat=True)) <= {"draft", "queued"}
    assert set(CampaignChunk.objects.values_list("state", flat=True)) == {"pending"}
    with pytest.raises(ImproperlyConfigured, match="no account 'outlet'"):
        services.resume_campaign(campaign)

    settings.DJANGO_WHATSAPP = configured
    services.resume_campaign(campaign)
    run_queue()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DONE
    assert set(Message.objects.values_list("status", flat=True)) == {"accepted"}
    assert len(gateway.sent_bodies()) == 3


class _WorkerStops(BaseException):
    """What a worker meets that is not an error of the send (a shutdown, a receiver's bug
    outside ``Exception``): the run ends at once."""


def test_a_run_that_ends_abruptly_still_records_the_batch_the_gateway_accepted(
    gateway: FakeGateway,
) -> None:
    """A batch all accepted is recorded only once the next batch is handed out; a run that ends
    before that (here a ``message_sending`` receiver raises outside ``Exception`` while the next
    batch is prepared) records it on the way out: the gateway took those messages, so they are
    ``accepted``, not left ``sending`` (which would make them ``unknown``)."""
    gateway.accept()
    campaign = services.create_campaign("Abrupt", numbers(8), text="Hi", chunk_size=10)
    services.start_campaign(campaign)
    default_task_backend.clear()  # type: ignore[attr-defined]
    chunk = CampaignChunk.objects.get(campaign=campaign)
    prepared: list[int] = []

    def stop_at_the_second_batch(sender: Any, message: Message, **kwargs: Any) -> None:
        prepared.append(message.pk)
        if len(prepared) == 5:
            raise _WorkerStops

    signals.message_sending.connect(stop_at_the_second_batch, weak=False)
    try:
        with pytest.raises(_WorkerStops):
            engine.run_chunk(chunk.pk, concurrency=4)
    finally:
        signals.message_sending.disconnect(stop_at_the_second_batch)
    statuses = dict(Message.objects.filter(campaign=campaign).values_list("pk", "status"))
    first_batch = prepared[:4]
    assert [statuses[pk] for pk in first_batch] == [Status.ACCEPTED] * 4
    assert len(gateway.sent_bodies()) == 4
    assert Status.ACCEPTED not in [s for pk, s in statuses.items() if pk not in first_batch]


def test_a_dead_workers_chunk_is_taken_over_and_its_claimed_messages_not_resent(
    gateway: FakeGateway,
) -> None:
    gateway.accept()
    campaign = services.create_campaign("Killed", numbers(6), text="Hi", chunk_size=10)
    services.start_campaign(campaign)
    default_task_backend.clear()  # type: ignore[attr-defined]
    chunk = CampaignChunk.objects.get(campaign=campaign)
    # A worker leased the chunk and claimed two messages, then died (SIGKILL): no answer was
    # recorded, and nobody knows whether their requests went out.
    assert engine.lease_chunk(chunk.pk, "dead-worker", 60)
    dead = claim_batch(campaign, chunk.first_id, chunk.last_id, 2)
    assert [m.status for m in dead] == [Status.SENDING, Status.SENDING]
    # While its lease lasts, nobody else takes the chunk.
    assert engine.run_chunk(chunk.pk).outcome == "busy"
    assert engine.tick(campaign.pk).chunk_ids == []
    # The lease runs out: the next tick hands the chunk out again, and its run settles the two
    # claimed messages as unknown and sends the four others.
    CampaignChunk.objects.filter(pk=chunk.pk).update(
        leased_until=timezone.now() - timedelta(seconds=1)
    )
    assert engine.tick(campaign.pk).chunk_ids == [chunk.pk]
    run = engine.run_chunk(chunk.pk)
    assert (run.outcome, run.accepted, run.settled_unknown) == ("done", 4, 2)
    statuses = dict(Message.objects.filter(campaign=campaign).values_list("pk", "status"))
    assert [statuses[m.pk] for m in dead] == [Status.UNKNOWN, Status.UNKNOWN]
    assert sorted(statuses.values()).count(Status.ACCEPTED) == 4
    sent = sent_numbers(gateway)
    assert len(sent) == 4
    assert not {int(m.destination_addr) for m in dead} & set(sent)
    engine.tick(campaign.pk)
    campaign.refresh_from_db()
    assert campaign.status == CStatus.DONE


def test_pause_stops_the_sending_and_resume_finishes_it(gateway: FakeGateway) -> None:
    gateway.accept()
    campaign = services.create_campaign("Pause", numbers(6), text="Hi", chunk_size=2)
    services.start_campaign(campaign)
    services.pause_campaign(campaign)
    assert campaign.status == CStatus.PAUSED
    outcomes = run_queue()
    assert "stopped" in outcomes
    assert gateway.requests == []
    assert set(CampaignChunk.objects.values_list("state", flat=True)) == {"pending"}
    services.resume_campaign(campaign)
    run_queue()
    assert len(gateway.sent_bodies()) == 6
    campaign.refresh_from_db()
    assert campaign.status == CStatus.DONE


def test_cancel_marks_what_was_not_sent(gateway: FakeGateway) -> None:
    gateway.accept()
    campaign = services.create_campaign("Cancel", numbers(4), text="Hi")
    services.start_campaign(campaign)
    services.cancel_campaign(campaign)
    run_queue()
    assert gateway.requests == []
    assert services.campaign_progress(campaign).counts == {Status.NOT_SENT: 4}
    assert set(Message.objects.values_list("error_name", flat=True)) == {"Campaign cancelled"}
    with pytest.raises(services.CampaignStateError):
        services.resume_campaign(campaign)


def test_state_changes_that_make_no_sense_are_refused() -> None:
    campaign = services.create_campaign("States", numbers(1), text="Hi")
    with pytest.raises(services.CampaignStateError, match="draft"):
        services.resume_campaign(campaign)
    with pytest.raises(services.CampaignStateError):
        services.pause_campaign(campaign)
    services.start_campaign(campaign)
    with pytest.raises(services.CampaignStateError):
        services.start_campaign(campaign)


def test_a_campaign_with_send_at_waits_for_it(gateway: FakeGateway) -> None:
    gateway.accept()
    later = timezone.now() + timedelta(hours=1)
    campaign = services.create_campaign("Later", numbers(2), text="Hi", send_at=later)
    services.start_campaign(campaign)
    assert campaign.status == CStatus.SCHEDULED
    [tick] = enqueued()
    assert tick.task.name == "campaign_tick"
    assert tick.task.run_after == later
    # Run early (a clock running ahead), the tick schedules itself for send_at again.
    default_task_backend.clear()  # type: ignore[attr-defined]
    tick.task.call(*tick.args, **tick.kwargs)
    campaign.refresh_from_db()
    assert campaign.status == CStatus.SCHEDULED
    assert gateway.requests == []
    [again] = enqueued()
    assert again.task.name == "campaign_tick"
    assert again.task.run_after == later
    # send_at has come: the tick starts the campaign and hands its chunks out.
    Campaign.objects.filter(pk=campaign.pk).update(send_at=timezone.now())
    plan = engine.tick(campaign.pk)
    assert plan.chunk_ids
    campaign.refresh_from_db()
    assert campaign.status == CStatus.RUNNING


def test_results_are_csv_rows() -> None:
    campaign = services.create_campaign("Rows", numbers(2), text="Hi")
    rows = list(services.campaign_results(campaign))
    assert rows[0][:2] == ["recipient", "status"]
    assert [r[:2] for r in rows[1:]] == [[n, "draft"] for n in numbers(2)]


def test_an_answer_recorded_after_a_takeover_is_still_adopted(gateway: FakeGateway) -> None:
    from django_whatsapp.client import SendResult
    from django_whatsapp.sending import record_accepted

    campaign = services.create_campaign("Late", numbers(2), text="Hi")
    services.start_campaign(campaign)
    chunk = CampaignChunk.objects.get(campaign=campaign)
    claimed = claim_batch(campaign, chunk.first_id, chunk.last_id, 2)
    # Another worker took the chunk over and settled the claimed messages as unknown...
    assert engine.settle_claimed(chunk) == 2
    # ...then the slow worker's answers came: the gateway's ids are adopted, nothing is lost.
    results = [
        (m, SendResult(message_id=7000 + i, attempts=1, body={})) for i, m in enumerate(claimed)
    ]
    assert len(record_accepted(results)) == 2
    stored = dict(Message.objects.values_list("pk", "provider_message_id"))
    assert sorted(stored.values()) == [7000, 7001]
    assert set(Message.objects.values_list("status", flat=True)) == {Status.ACCEPTED}


def test_a_chunk_handed_out_long_ago_and_never_run_is_handed_out_again() -> None:
    campaign = services.create_campaign("Lost job", numbers(2), text="Hi")
    services.start_campaign(campaign)
    chunk = CampaignChunk.objects.get(campaign=campaign)
    assert engine.tick(campaign.pk).chunk_ids == []  # its job is in the queue
    CampaignChunk.objects.filter(pk=chunk.pk).update(queued_at=timezone.now() - timedelta(hours=1))
    assert engine.tick(campaign.pk).chunk_ids == [chunk.pk]


def test_results_do_not_let_a_spreadsheet_run_the_gateways_text() -> None:
    campaign = services.create_campaign("Rows", numbers(3), text="Hi")
    for pk, name in zip(
        Message.objects.order_by("pk").values_list("pk", flat=True),
        ["=HYPERLINK(1)", "@SUM(1)", "Too Many Requests"],
        strict=True,
    ):
        Message.objects.filter(pk=pk).update(error_name=name)
    names = [row[4] for row in list(services.campaign_results(campaign))[1:]]
    assert names == ["'=HYPERLINK(1)", "'@SUM(1)", "Too Many Requests"]


def test_a_rate_limited_campaign_message_waits_instead_of_failing(settings: Any) -> None:
    from tests.limited_gateway import LimitedGateway

    fake = LimitedGateway(rate=None, retry_after=0)
    fake.refuse_first = 15  # more 429s than MAX_RETRIES (3) and the default retries (10)
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "BASE_URL": fake.base_url}
    try:
        campaign = services.create_campaign("Patient", numbers(1), text="Hi")
        services.start_campaign(campaign)
        run_queue()
    finally:
        fake.close()
    assert fake.count(429) == 15
    assert services.campaign_progress(campaign).counts == {Status.ACCEPTED: 1}
    assert Message.objects.get().attempts == 16


def test_a_refused_message_is_kept_with_its_error_and_the_others_go_on(
    gateway: FakeGateway,
) -> None:
    vetoed: list[int] = []

    def veto(sender: Any, message: Message, **kwargs: Any) -> None:
        if message.destination_addr.endswith("1"):
            vetoed.append(message.pk)
            raise RuntimeError("blocked by policy")

    gateway.answer({"name": "Invalid Number", "code": 42, "status": 400}, status=400)
    signals.message_sending.connect(veto, weak=False)
    try:
        campaign = services.create_campaign("Refusals", numbers(3), text="Hi")
        services.start_campaign(campaign)
        run_queue()
    finally:
        signals.message_sending.disconnect(veto)
    assert len(vetoed) == 1
    by_number = {m.destination_addr: m for m in Message.objects.filter(campaign=campaign)}
    blocked = by_number["380500000001"]
    assert blocked.status == Status.NOT_SENT
    assert "blocked by policy" in blocked.error_message
    # The gateway refused the other two: kept as not sent with its error, sent once each.
    assert len(gateway.sent_bodies()) == 2
    others = [m for n, m in by_number.items() if n != "380500000001"]
    assert {m.status for m in others} == {Status.NOT_SENT}
    assert all(m.error_code == 42 for m in others)
    campaign.refresh_from_db()
    assert campaign.status == CStatus.DONE


def test_a_chunk_that_no_longer_exists_is_missing() -> None:
    assert engine.run_chunk(999_999).outcome == "missing"


def test_without_deferred_tasks_a_scheduled_campaign_waits_for_a_start(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.TASKS = {
        "default": {"BACKEND": DUMMY.replace("dummy.DummyBackend", "immediate.ImmediateBackend")}
    }
    later = timezone.now() + timedelta(hours=1)
    campaign = services.create_campaign("No defer", numbers(1), text="Hi", send_at=later)
    with caplog.at_level("WARNING", logger="django_whatsapp"):
        services.start_campaign(campaign)
    assert campaign.status == CStatus.SCHEDULED
    assert "cannot defer" in caplog.text


def test_a_pause_mid_chunk_stops_the_claims_and_resume_sends_the_rest_once(
    gateway: FakeGateway,
) -> None:
    gateway.accept()
    campaign = services.create_campaign("Mid", numbers(20), text="Hi", chunk_size=20)
    services.start_campaign(campaign)
    default_task_backend.clear()  # type: ignore[attr-defined]
    seen: list[int] = []

    def pause_on_third(sender: Any, message: Message, **kwargs: Any) -> None:
        seen.append(message.pk)
        if len(seen) == 3:  # an operator clicks Pause while the chunk is being sent
            Campaign.objects.filter(pk=campaign.pk).update(status=CStatus.PAUSED)

    signals.message_sending.connect(pause_on_third, weak=False)
    try:
        chunk = CampaignChunk.objects.get(campaign=campaign)
        run = engine.run_chunk(chunk.pk, concurrency=4)
    finally:
        signals.message_sending.disconnect(pause_on_third)
    # The batch already claimed went out; nothing more was claimed.
    assert (run.outcome, run.accepted) == ("stopped", 4)
    assert len(gateway.sent_bodies()) == 4
    chunk.refresh_from_db()
    assert chunk.state == CampaignChunk.State.PENDING
    campaign.refresh_from_db()
    services.resume_campaign(campaign)
    run_queue()
    sent = sent_numbers(gateway)
    assert sent == sorted(set(sent))
    assert len(sent) == 20


def test_a_worker_that_lost_its_lease_stops_claiming(gateway: FakeGateway, settings: Any) -> None:
    gateway.accept()
    # A lease so short that the worker renews it before each claim.
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "CAMPAIGN_LEASE": 0.001}
    campaign = services.create_campaign("Lost lease", numbers(12), text="Hi", chunk_size=12)
    services.start_campaign(campaign)
    default_task_backend.clear()  # type: ignore[attr-defined]
    chunk = CampaignChunk.objects.get(campaign=campaign)
    seen: list[int] = []

    def steal_on_second(sender: Any, message: Message, **kwargs: Any) -> None:
        seen.append(message.pk)
        if len(seen) == 2:  # another worker took the chunk over meanwhile
            CampaignChunk.objects.filter(pk=chunk.pk).update(lease_token="other-worker")

    signals.message_sending.connect(steal_on_second, weak=False)
    try:
        run = engine.run_chunk(chunk.pk, concurrency=4)
    finally:
        signals.message_sending.disconnect(steal_on_second)
    assert run.outcome == "lost"
    assert run.accepted == 4  # what it had claimed is recorded; nothing more was claimed
    assert len(gateway.sent_bodies()) == 4
    chunk.refresh_from_db()
    assert chunk.lease_token == "other-worker"  # the new holder's lease is left alone


def test_a_finished_worker_waits_for_a_dead_lease_and_takes_the_chunk() -> None:
    """A finished worker waits until the holder's next renewal is due: renewed meanwhile, the
    holder is alive and nothing more is waited for; not renewed (even though it was renewed
    just before its worker died), the lease is waited out and the chunk taken."""
    campaign = services.create_campaign("Orphan", numbers(2), text="Hi")
    services.start_campaign(campaign)
    chunk = CampaignChunk.objects.get(campaign=campaign)
    assert engine.lease_chunk(chunk.pk, "alive", 60)
    slept: list[float] = []

    def alive(seconds: float) -> None:  # the holder renews while the other one waits
        slept.append(seconds)
        assert engine._renew(chunk.pk, "alive", 60)

    # Fresh: the next renewal is due in about 20 s, and 10 s more are allowed for it.
    assert engine.wait_for_a_dead_lease(campaign.pk, sleep=alive) == []
    assert len(slept) == 1
    assert 25 < slept[0] <= 30
    slept.clear()

    def dead(seconds: float) -> None:  # nobody renews; the second wait lets the lease run out
        slept.append(seconds)
        if len(slept) == 2:
            CampaignChunk.objects.filter(pk=chunk.pk).update(
                leased_until=timezone.now() - timedelta(milliseconds=1)
            )

    assert engine.lease_chunk(chunk.pk, "killed-just-after-renewing", 60) is False  # still held
    assert engine.wait_for_a_dead_lease(campaign.pk, sleep=dead) == [chunk.pk]
    assert len(slept) == 2
    assert 25 < slept[0] <= 30
    assert 25 < slept[1] <= 60.1
    # Nothing leased, or a chunk still pending: nothing to wait for.
    CampaignChunk.objects.filter(pk=chunk.pk).update(state=CampaignChunk.State.DONE)
    assert engine.wait_for_a_dead_lease(campaign.pk, sleep=dead) == []
    CampaignChunk.objects.filter(pk=chunk.pk).update(state=CampaignChunk.State.PENDING)
    assert engine.wait_for_a_dead_lease(campaign.pk, sleep=dead) == []
    assert len(slept) == 2
