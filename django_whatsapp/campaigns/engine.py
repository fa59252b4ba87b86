"""The campaign engine: what a worker's task does with one chunk, and the campaign's tick.

A chunk is a range of the campaign's message ids (:class:`CampaignChunk`). A task runs it:

1. **Lease.** One conditional UPDATE takes the chunk when it is ``pending`` or its lease ran
   out, with a fresh token and ``leased_until = now + CAMPAIGN_LEASE``; another task holding it
   (a job delivered twice) or a ``done`` chunk makes the run return at once. The worker renews
   the lease as it goes; a renewal that finds another token stops it.
2. **Settle.** A chunk run before (its worker was killed) may have messages left in
   ``sending``: claimed, perhaps submitted, never recorded. They become ``unknown`` (the request
   may have reached the gateway), never sent again automatically; a callback or a poll settles
   them.
3. **Send.** Messages are claimed up to ``concurrency`` at a time in ONE statement
   (:func:`~django_whatsapp.sending.claim_campaign`: draft/queued -> sending, only while the
   campaign runs; the same statement says whose recipients opted out), submitted by a pool of
   ``concurrency`` threads over one pooled session (which takes the shared rate-limit budget,
   :mod:`django_whatsapp.ratelimit`), and their outcomes recorded in batches
   (:func:`~django_whatsapp.sending.record_outcomes`) once every request out is answered (a slow
   one holds up only its own slot: :class:`~django_whatsapp.campaigns.answers.Answers`); then
   as many are claimed again. A batch that the gateway accepted whole is recorded just after
   the next batch is handed out, while those requests are out (its round trip no longer holds
   them up); a batch with any other outcome is recorded first, its faults reacted to, before
   anything more is claimed. A worker never claims more messages than requests it can have in
   flight, so a killed worker leaves at most ``2 x concurrency`` messages unrecorded, each one
   whose request reached, or may have reached, the gateway: its requests in flight and the
   accepted batch before them. The campaign's status is read at least every ``CHECK_EVERY`` seconds:
   pause and cancel stop the claims at once, and rate-limited requests still waiting give their
   messages back to ``queued``.

   WhatsApp's limits are kept on the way (``sending.prepare_claimed``): an expired message
   ends ``not_sent``; a recipient outside the campaign's sending hours in their own time waits
   (``queued``, ``send_after`` their next opening) while the others are sent; and once the
   account's ``DAILY_LIMIT`` is reached, the run claims no more: the recipients refused wait
   for a place to free.
4. **Finish.** The chunk becomes ``done``; or ``pending`` again, for ``resume_campaign`` to hand
   out, when the campaign was paused or cancelled; or ``pending`` with ``not_before`` when its
   remaining recipients all wait (their hours, the daily limit): the tick hands it out again
   then.

The **tick** (:func:`tick`, run by the ``campaign_tick`` task) starts a scheduled campaign when
its ``send_at`` comes, sweeps its waiting recipients once its ``expires_at`` has passed, hands
out chunks that are pending and not handed out (a waiting chunk once its ``not_before`` comes,
by :func:`django_whatsapp.clock.now`), and chunks whose lease ran out (a killed worker's) to the
task framework again, marks the campaign ``done`` when every chunk is, and says when the next
tick is due. Each chunk task ends by asking for a tick too, so the remaining workers pick up a
dead worker's chunk without an operator.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count, Exists, Min, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import clock, expiry, faults
from ..client import SendResult, WhatsAppClient
from ..conf import get_settings
from ..exceptions import DailyLimitReached, RateLimited
from ..faults import Fault
from ..models import Campaign, CampaignChunk, Message, StatusEvent
from ..ratelimit import gate_for
from ..sending import (
    SENDABLE,
    Recorded,
    claim_campaign,
    outcome_of,
    pooled_client,
    prepare_claimed,
    record_outcomes,
    requeue,
)
from ..status_rule import apply_report
from .answers import Answers
from .hours import of_campaign
from .states import pause_account_campaigns, sweep_cancelled

logger = logging.getLogger("django_whatsapp")

Status = Message.Status
State = CampaignChunk.State
#: Requests in flight per chunk task.
CONCURRENCY = 8
#: Seconds between two readings of the campaign's status while a chunk is sent.
CHECK_EVERY = 0.5


@dataclass
class ChunkRun:
    """What one run of a chunk did. ``outcome``: ``done``, ``waiting`` (its remaining recipients
    all wait, until ``waits_until``: their sending hours, the daily limit), ``outage`` (it
    waited a lease's length for the gateway or the rate-limit cache: the tick hands it out
    again), ``stopped`` (the campaign was paused or cancelled), ``busy`` (another run holds it,
    or it is done), ``lost`` (its lease was taken over), ``missing``. ``waiting`` counts the
    recipients this run put back to wait."""

    chunk_id: int
    outcome: str
    accepted: int = 0
    failed: int = 0
    requeued: int = 0
    settled_unknown: int = 0
    waiting: int = 0
    waits_until: datetime | None = None


@dataclass
class Tick:
    """What a tick decided: the chunks to hand to the task framework, and when the next tick
    is due (``None``: the campaign needs no more ticks)."""

    chunk_ids: list[int] = field(default_factory=list)
    next_at: datetime | None = None


def _lease_for(seconds: float) -> datetime:
    return timezone.now() + timedelta(seconds=seconds)


def lease_chunk(chunk_id: int, token: str, seconds: float) -> bool:
    """Take the chunk (pending, or its lease ran out) under ``token``; True when taken."""
    now = timezone.now()
    from django.db.models import F

    taken = (
        CampaignChunk.objects.filter(pk=chunk_id)
        .filter(Q(state=State.PENDING) | Q(state=State.LEASED, leased_until__lt=now))
        .update(
            state=State.LEASED,
            lease_token=token,
            leased_until=now + timedelta(seconds=seconds),
            runs=F("runs") + 1,
        )
    )
    return bool(taken)


def _renew(chunk_id: int, token: str, seconds: float) -> bool:
    return bool(
        CampaignChunk.objects.filter(pk=chunk_id, lease_token=token, state=State.LEASED).update(
            leased_until=_lease_for(seconds)
        )
    )


def _release(chunk_id: int, token: str, *, done: bool, not_before: datetime | None = None) -> None:
    changes: dict[str, object] = {"leased_until": None, "lease_token": ""}
    if done:
        changes.update(state=State.DONE, finished_at=timezone.now())
    else:
        changes.update(state=State.PENDING, queued_at=None, not_before=not_before)
    CampaignChunk.objects.filter(pk=chunk_id, lease_token=token).update(**changes)


def settle_claimed(chunk: CampaignChunk) -> int:
    """Messages of the chunk left in ``sending`` by a run that died: ``unknown`` (never sent
    twice). Returns how many."""
    stuck = Message.objects.filter(
        campaign_id=chunk.campaign_id,
        pk__gte=chunk.first_id,
        pk__lte=chunk.last_id,
        status=Status.SENDING,
    )
    payload = {"reason": "campaign chunk re-run: claimed by a worker that stopped answering"}
    settled = 0
    for message in stuck.order_by("pk").iterator(chunk_size=500):
        if apply_report(
            message,
            Status.UNKNOWN,
            source=StatusEvent.Source.SEND,
            payload=payload,
            expect=(Status.SENDING,),
        ):
            settled += 1
    if settled:
        logger.warning(
            "WhatsApp campaign %s: %d message(s) of chunk %s were claimed by a worker that "
            "died; now unknown",
            chunk.campaign_id,
            settled,
            chunk.pk,
        )
    return settled


def run_chunk(
    chunk_id: int, *, concurrency: int = CONCURRENCY, client: WhatsAppClient | None = None
) -> ChunkRun:
    """Send one chunk of a campaign (see the module's docstring). ``client`` (tests, tuning)
    must be safe to share between threads; by default one pooled client is made for the run,
    with the shared rate limit's gate when ``RATE_LIMIT`` is set."""
    conf = get_settings()
    # The token names the process (for operators and tests: which worker holds a chunk).
    token = f"{os.getpid()}-{uuid.uuid4().hex[:20]}"
    if not lease_chunk(chunk_id, token, conf.CAMPAIGN_LEASE):
        exists = CampaignChunk.objects.filter(pk=chunk_id).exists()
        return ChunkRun(chunk_id, "busy" if exists else "missing")
    chunk = CampaignChunk.objects.select_related("campaign", "campaign__template").get(pk=chunk_id)
    campaign = chunk.campaign
    # The campaign's own account: its gateway, key and rate budget.
    try:
        conf = get_settings(campaign.account)
    except ImproperlyConfigured as error:
        # The account left ACCOUNTS while the campaign ran: nothing can be sent for it. Its
        # campaigns pause with the reason and every recipient not requested yet waits; Resume
        # is refused until the account is configured again.
        reason = _("This campaign's account cannot be used: %(problem)s") % {"problem": error}
        pause_account_campaigns(campaign.account, reason)
        _release(chunk_id, token, done=False)
        logger.error("WhatsApp campaign %s paused: %s", campaign.pk, error)
        return ChunkRun(chunk_id, "stopped")
    run = ChunkRun(chunk_id, "done")
    if chunk.runs > 1:
        run.settled_unknown = settle_claimed(chunk)
    breaker = Breaker(campaign.account)
    if campaign.status == Campaign.Status.RUNNING and breaker.held:
        # The gateway refused the account's balance or key: nothing is sent until an operator
        # resumes the campaign after the top-up.
        pause_account_campaigns(campaign.account, breaker.held_reason)
        campaign.refresh_from_db()
    if campaign.status != Campaign.Status.RUNNING:
        _release(chunk_id, token, done=False)
        run.outcome = "stopped"
        return run
    stop = threading.Event()
    own_client = client is None
    if client is None:
        # No immediate retries of a request that failed for the system's fault, and the first
        # such failure holds back the requests still waiting at the gate: the account's breaker
        # waits and tries again (see faults.py); 429s wait at the gate as before.
        gate = gate_for(
            conf,
            max_in_flight=concurrency,
            keep_trying=lambda: not stop.is_set(),
            stop_on_outage=True,
        )
        client = pooled_client(concurrency, conf, gate=gate, max_retries=0)
    try:
        _send_chunk(chunk, campaign, client, concurrency, token, stop, run, breaker)
    finally:
        if own_client:
            client.close()
    if run.outcome == "done":
        run.waits_until = waits_until(chunk, run.waits_until)
        if run.waits_until is not None:
            run.outcome = "waiting"
    waiting = run.waits_until if run.outcome == "waiting" else None
    _release(chunk_id, token, done=run.outcome == "done", not_before=waiting)
    logger.info(
        "WhatsApp campaign %s chunk %s: %s (%d accepted, %d failed, %d requeued, %d waiting)",
        campaign.pk,
        chunk_id,
        run.outcome,
        run.accepted,
        run.failed,
        run.requeued,
        run.waiting,
    )
    return run


def waits_until(chunk: CampaignChunk, limit_until: datetime | None = None) -> datetime | None:
    """When a chunk whose run claimed all it could may go on: ``None`` when none of its
    recipients is left to send; else ``limit_until`` (the daily limit was reached) or now when
    some are due, else the soonest time one of them waits for."""
    now = clock.now()
    left = Message.objects.filter(
        campaign_id=chunk.campaign_id,
        pk__gte=chunk.first_id,
        pk__lte=chunk.last_id,
        status__in=SENDABLE,
    ).aggregate(
        count=Count("pk"),
        due=Count("pk", filter=Q(send_after__isnull=True) | Q(send_after__lte=now)),
        soonest=Min("send_after"),
    )
    if not left["count"]:
        return None
    if left["due"]:
        return limit_until or now
    soonest: datetime = left["soonest"]
    return soonest


class Breaker:
    """This worker's view of its account's state (:mod:`django_whatsapp.faults`), read when the
    campaign's status is (every ``CHECK_EVERY`` seconds) and after a fault: whether the account
    is held, and while the gateway or the rate-limit cache cannot be reached, when to try again.
    While the account waits, a worker claims nothing until the pause is over; then one process
    tries one message (:func:`faults.take_try`), and the first success closes the breaker for
    all."""

    def __init__(self, account: str) -> None:
        self.account = account
        self.held = False
        self.held_reason = ""
        self.waiting = False
        self.next_try: datetime | None = None
        #: This worker's try is out (one message, while the account waits).
        self.trying = False
        self.refresh()

    def refresh(self) -> None:
        row = faults.state(self.account)
        self.held = row is not None and row.held_since is not None
        self.held_reason = row.held_reason if row is not None else ""
        self.waiting = row is not None and row.waiting_since is not None
        self.next_try = row.next_try_at if row is not None else None

    def room(self, wanted: int) -> int:
        """How many messages this worker may claim now (``wanted`` when the account is well)."""
        if not self.waiting:
            return wanted
        if self.trying:
            return 0
        if self.next_try is not None and self.next_try > timezone.now():
            return 0
        if faults.take_try(self.account):
            self.trying = True
            return 1
        self.refresh()  # another process's try is out, or it just closed the breaker
        return 0 if self.waiting else wanted

    def seconds_to_wait(self) -> float:
        """How long to wait before looking again while nothing is in flight."""
        if self.next_try is None:
            return CHECK_EVERY
        left = (self.next_try - timezone.now()).total_seconds()
        return min(max(left, 0.01), CHECK_EVERY)

    def nothing_to_try(self) -> None:
        """This worker's try found nothing to send (its chunk is through, or the message was
        refused before any request): another may try."""
        if self.trying:
            self.trying = False
            faults.give_back_try(self.account)

    def after(self, outcomes: list[tuple[Message, SendResult | BaseException]]) -> None:
        """Learn from a recorded batch: a fault of the account or of the system was recorded
        already (:func:`django_whatsapp.sending.react`), so read the account's state again; a
        gateway that answered while the account waited closes its breaker."""
        judged = [faults.classify(outcome) for _m, outcome in outcomes]
        if any(fault not in (Fault.SENT, Fault.MESSAGE) for fault in judged):
            self.trying = False
            self.refresh()
        elif self.waiting or self.trying:
            if any(faults.answered_by_gateway(outcome) for _m, outcome in outcomes):
                faults.note_recovered(self.account)
                self.waiting, self.next_try = False, None
            self.nothing_to_try()


def _send_chunk(
    chunk: CampaignChunk,
    campaign: Campaign,
    client: WhatsAppClient,
    concurrency: int,
    token: str,
    stop: threading.Event,
    run: ChunkRun,
    breaker: Breaker,
) -> None:
    conf = get_settings(campaign.account)
    lease = conf.CAMPAIGN_LEASE
    hours = of_campaign(campaign)
    in_flight: dict[Future[SendResult], Message] = {}
    answers = Answers()
    exhausted = False
    checked = renewed = time.monotonic()
    idle = threading.Event()  # never set: waits on it are pauses
    well_at = time.monotonic()  # the last moment the account was not waiting
    # A batch all accepted is recorded after the next batch is handed out, while its requests
    # are out: the recording's round trip no longer holds the requests up (every other outcome
    # is recorded at once, before anything more is claimed).
    unrecorded: list[tuple[Message, SendResult | BaseException]] = []

    def record_unrecorded() -> None:
        if unrecorded:
            _record(campaign, unrecorded, stop, run)
            unrecorded.clear()

    def still_running() -> bool:
        status = Campaign.objects.filter(pk=campaign.pk).values_list("status", flat=True).first()
        return status == Campaign.Status.RUNNING

    try:
        with ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="whatsapp-campaign"
        ) as pool:
            while True:
                now = time.monotonic()
                if not breaker.waiting:
                    well_at = now  # an outage's wait is counted from the last good moment
                if not stop.is_set() and now - checked >= CHECK_EVERY:
                    checked = now
                    if not still_running():
                        run.outcome = "stopped"
                        stop.set()
                    else:
                        breaker.refresh()
                if not stop.is_set() and now - renewed >= lease / 3:
                    renewed = now
                    if not _renew(chunk.pk, token, lease):
                        run.outcome = "lost"
                        stop.set()
                room = concurrency - len(in_flight)
                limited = run.waits_until is not None  # the daily limit is reached: claim no more
                if (
                    not stop.is_set()
                    and not exhausted
                    and not limited
                    and room >= max(1, concurrency // 2)
                ):
                    room = breaker.room(room)
                else:
                    room = 0
                if room:
                    if client.gate is not None:
                        client.gate.allow_requests()  # the breaker lets this worker send again
                    # One statement claims the batch and says whose recipients opted out.
                    claim = claim_campaign(campaign, chunk.first_id, chunk.last_id, room)
                    if not claim.messages:
                        breaker.nothing_to_try()
                        if still_running():
                            exhausted = True
                        else:
                            run.outcome = "stopped"
                            stop.set()
                    # A recipient who opted out since the import is refused here, before any
                    # request; so is a message that expired, or that the window policy or a
                    # receiver refuses. Recipients outside their sending hours, or over the daily
                    # limit, wait.
                    fault = False
                    for prepared in prepare_claimed(
                        claim.messages, conf, deferred=True, hours=hours, opted_out=claim.opted_out
                    ):
                        if prepared.payload is not None:
                            future = answers.hand_out(pool, client.send, prepared.payload)
                            in_flight[future] = prepared.message
                        elif prepared.waits_until is not None:
                            run.waiting += 1
                            if isinstance(prepared.refusal, DailyLimitReached):
                                run.waits_until = min(
                                    run.waits_until or prepared.waits_until, prepared.waits_until
                                )
                        elif prepared.message.status == Status.QUEUED:
                            run.requeued += 1  # the cache that counts the daily limit failed
                            fault = True
                        else:
                            run.failed += 1
                    if fault:
                        breaker.refresh()
                    if not in_flight:
                        breaker.nothing_to_try()
                record_unrecorded()
                if not in_flight:
                    if exhausted or stop.is_set() or run.waits_until is not None:
                        return
                    if breaker.waiting:
                        # The gateway or the rate-limit cache cannot be reached: wait for the next
                        # try, looking at the campaign's status and the lease meanwhile; after a
                        # lease's length the chunk goes back to the tick, so that a worker is never
                        # held (nor its shutdown) by an outage however long.
                        if time.monotonic() - well_at >= lease:
                            run.outcome = "outage"
                            return
                        idle.wait(breaker.seconds_to_wait())
                    continue
                # Record in batches: once every request out is answered (a slow one holds up only
                # its own slot: see Answers), record them together and claim as many again.
                outcomes = [
                    (in_flight.pop(future), outcome_of(future))
                    for future in answers.take(CHECK_EVERY)
                ]
                if not outcomes:
                    continue
                if all(isinstance(outcome, SendResult) for _m, outcome in outcomes):
                    breaker.after(outcomes)
                    unrecorded.extend(outcomes)  # recorded once the next batch is out
                    continue
                recorded = _record(campaign, outcomes, stop, run)
                breaker.after(outcomes)
                if recorded.requeued:
                    exhausted = False  # messages given back: the chunk is not through yet
                if recorded.fault is Fault.ACCOUNT and not stop.is_set():
                    run.outcome = "stopped"  # its campaign is paused: the rest wait for a resume
                    stop.set()

    finally:
        record_unrecorded()  # also when the run fails: the gateway took them


def _record(
    campaign: Campaign,
    outcomes: list[tuple[Message, SendResult | BaseException]],
    stop: threading.Event,
    run: ChunkRun,
) -> Recorded:
    # Rate-limited requests of a campaign that was paused or cancelled meanwhile certainly did
    # not reach the gateway: their messages go back to queued, for a resume.
    back = [
        m
        for m, o in outcomes
        if isinstance(o, RateLimited) and not o.maybe_delivered and stop.is_set()
    ]
    if back:
        run.requeued += requeue(back)
    rest = [(m, o) for m, o in outcomes if m not in back]
    recorded = record_outcomes(rest, deferred=True) if rest else Recorded(0, {})
    run.accepted += recorded.accepted
    run.requeued += recorded.requeued
    run.failed += sum(not isinstance(o, SendResult) for _m, o in rest) - recorded.requeued
    if back or recorded.requeued:
        # A cancel that came meanwhile found these messages in flight: cancel them now.
        status = Campaign.objects.filter(pk=campaign.pk).values_list("status", flat=True).first()
        if status == Campaign.Status.CANCELLED:
            sweep_cancelled(campaign)
    return recorded


# -- the tick ----------------------------------------------------------------------------------


def tick(campaign_id: int, *, interval: float | None = None) -> Tick:
    """Move the campaign along (see the module's docstring); return what to hand out and when
    to tick next. ``interval``: seconds between ticks while the campaign runs (by default a
    third of ``CAMPAIGN_LEASE``)."""
    conf = get_settings()
    interval = interval if interval is not None else conf.CAMPAIGN_LEASE / 3
    now = timezone.now()
    moment = clock.now()
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        return Tick()
    if campaign.status == Campaign.Status.SCHEDULED:
        if campaign.send_at is not None and campaign.send_at > now:
            return Tick(next_at=campaign.send_at)
        Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.SCHEDULED).update(
            status=Campaign.Status.RUNNING, started_at=now
        )
        campaign.refresh_from_db()
    if campaign.status != Campaign.Status.RUNNING:
        return Tick()
    chunks = CampaignChunk.objects.filter(campaign=campaign)
    if campaign.expires_at is not None and campaign.expires_at <= moment:
        # Its recipients not sent by now are not sent at all; chunks left with nothing are done.
        expiry.sweep(Message.objects.filter(campaign=campaign), moment)
        close_empty_chunks(campaign)
    # Pending chunks not handed out (released by a pause, or waiting until their not_before),
    # chunks whose lease ran out (their worker died), and pending chunks handed out long ago
    # whose job may have been lost (a second job for a chunk is harmless: the lease admits one
    # run).
    forgotten = now - timedelta(seconds=10 * conf.CAMPAIGN_LEASE)
    due = chunks.filter(
        Q(state=State.PENDING, queued_at__isnull=True) & not_waiting(moment)
        | Q(state=State.PENDING, queued_at__lt=forgotten)
        | Q(state=State.LEASED, leased_until__lt=now)
    )
    ids = list(due.values_list("pk", flat=True)[:10_000])
    if ids:
        CampaignChunk.objects.filter(pk__in=ids).update(queued_at=now)
    if not chunks.exclude(state=State.DONE).exists():
        finish(campaign)
        return Tick()
    return Tick(chunk_ids=ids, next_at=now + timedelta(seconds=interval))


def not_waiting(moment: datetime) -> Q:
    """Chunks that do not wait (no ``not_before``, or it has come by ``moment``)."""
    return Q(not_before__isnull=True) | Q(not_before__lte=moment)


def close_empty_chunks(campaign: Campaign) -> int:
    """Pending chunks of the campaign with no recipient left to send (they expired, say) are
    ``done``. Returns how many."""
    left = Message.objects.filter(
        campaign_id=OuterRef("campaign_id"),
        pk__gte=OuterRef("first_id"),
        pk__lte=OuterRef("last_id"),
        status__in=SENDABLE,
    )
    return (
        CampaignChunk.objects.filter(campaign=campaign, state=State.PENDING)
        .exclude(Exists(left))
        .update(state=State.DONE, finished_at=timezone.now(), queued_at=None)
    )


def wait_for_a_dead_lease(
    campaign_id: int, *, sleep: Callable[[float], None] = time.sleep
) -> list[int]:
    """Called by a worker that finished its chunk when nothing of the campaign is left to hand
    out: find out whether the worker holding another chunk is alive, and if it is not, wait
    until its lease runs out and return the chunks then due (marked handed out), for this
    worker to run at once. So a dead worker's chunk is taken over by the remaining workers even
    when deferred ticks are late (RQ's scheduler may have died with the worker).

    A live worker renews its lease every third of ``CAMPAIGN_LEASE``: this waits until the
    holder's next renewal is due, and a little longer (a sixth of the lease, at least
    ``2 * CHECK_EVERY``); a lease renewed meanwhile is a live worker's, and nothing more is
    waited for. The time a lease was last renewed says nothing by itself: a worker killed just
    after renewing looks as fresh as a live one. Returns ``[]`` when no chunk is leased or one
    is still pending (a chunk that waits for its not_before does not count)."""
    lease = get_settings().CAMPAIGN_LEASE
    chunks = CampaignChunk.objects.filter(campaign_id=campaign_id)
    if chunks.filter(state=State.PENDING).filter(not_waiting(clock.now())).exists():
        return []
    held = (
        chunks.filter(state=State.LEASED, leased_until__isnull=False)
        .order_by("leased_until")
        .values_list("pk", "leased_until")
        .first()
    )
    if held is None:
        return []
    chunk_id, until = held[0], cast(datetime, held[1])  # not null: see the filter
    left = (until - timezone.now()).total_seconds()
    if left > 0:
        renewal_due = left - 2 * lease / 3 + max(lease / 6, 2 * CHECK_EVERY)
        if renewal_due > 0:
            sleep(renewal_due)
        now_until = (
            CampaignChunk.objects.filter(pk=chunk_id, state=State.LEASED)
            .values_list("leased_until", flat=True)
            .first()
        )
        if now_until != until:
            return []  # renewed (its worker is alive) or released
        left = (until - timezone.now()).total_seconds()
        if left > 0:
            sleep(left + 0.05)
    return tick(campaign_id).chunk_ids


def finish(campaign: Campaign) -> bool:
    """Mark a running campaign whose chunks are all done as ``done``."""
    done = Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.RUNNING).update(
        status=Campaign.Status.DONE, finished_at=timezone.now()
    )
    if done:
        logger.info("WhatsApp campaign %s is done", campaign.pk)
    return bool(done)
