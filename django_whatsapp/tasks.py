"""The task-framework entry points, and handing messages to them.

Django's task framework is ``django.tasks`` on Django 6.0 and later, and the ``django-tasks``
backport (``django_tasks``) on Django 5.2. Any backend of that framework runs these tasks: the
database backend ``django_tasks_db`` (``manage.py db_worker``), RQ on Redis (``django-tasks-rq``),
Celery (``django-tasks-celery``)... This module is imported only when ``SEND_ASYNC`` is on (or a
message is explicitly enqueued).
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

try:  # Django 6.0+
    from django.tasks import task
except ImportError:  # Django 5.2: the backport
    try:
        from django_tasks import task  # type: ignore[no-redef,import-not-found,unused-ignore]
    except ImportError as error:
        raise ImproperlyConfigured(
            "Campaigns and queued sending (DJANGO_WHATSAPP['SEND_ASYNC']) need Django's task "
            "framework: Django 6.0+, or on Django 5.2 the backport (pip install django-tasks) "
            "with a TASKS backend such as django-tasks-db."
        ) from error

import logging
from datetime import datetime, timedelta
from functools import partial

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import clock, expiry, faults, optout
from .campaigns import engine
from .conf import get_settings
from .models import Campaign, CampaignChunk, Message
from .sending import claim_for_sending, ensure_campaign_running, move_status, send_now
from .signing import callback_url
from .validation import validate_message

logger = logging.getLogger("django_whatsapp")
Status = Message.Status


@task()
def send_message_task(message_id: int) -> str | None:
    """Send one stored message now. Returns its status, or ``None`` when it no longer exists.

    Running it twice for one message (two workers got the same job) submits it once: the
    services' claim lets only one of them move it to ``sending``.

    A fault of the account or of the system is not the message's (:mod:`django_whatsapp.faults`):
    while its account is held (the gateway refused the balance or the key) the message stays
    ``queued`` until the account is released; while the gateway or the rate-limit cache cannot be
    reached, the task runs again when the account's next try is due, and one task at a time
    tries (the others wait for its answer). Returns ``"held"`` or ``"waiting"`` then.

    WhatsApp's limits: an expired message ends ``not_sent`` without a request
    (:mod:`django_whatsapp.expiry`), also while its account is held (the task runs again at its
    expiry); over the account's ``DAILY_LIMIT`` it stays ``queued`` and the task runs again
    when a place frees (``send_after``), returning ``"waiting"``.
    """
    message = Message.objects.filter(pk=message_id).first()
    if message is None:
        return None
    if message.status not in (Status.DRAFT, Status.QUEUED):
        return str(message.status)
    now = clock.now()
    if expiry.expired(message, now):
        send_now(message, deferred=True)  # refused before any request: not_sent, Expired
        return str(message.status)
    if message.send_after is not None and message.send_after > now:
        _later(message_id, _until(message, message.send_after, now))
        return "waiting"
    account = message.account
    row = faults.state(account)
    if row is not None and row.held_since is not None:
        if message.expires_at is not None:
            _later(message_id, _until(message, message.expires_at, now))  # to expire it then
        return "held"  # release_account hands it out again
    trying = False
    if row is not None and row.waiting_since is not None:
        left = faults.seconds_to_wait(row)
        if left is None and faults.take_try(account):
            trying = True
        else:
            _later(message_id, left if left is not None else CHECK_AGAIN)
            return "waiting"
    send_now(message, deferred=True)
    now = clock.now()
    if message.status == Status.QUEUED and message.send_after and message.send_after > now:
        # Over the daily limit: again when a place frees (or at its expiry, to expire it).
        _later(message_id, _until(message, message.send_after, now))
        return "waiting"
    if message.status == Status.QUEUED:
        # Back to queued for a fault of the account (held: wait for the release) or of the
        # system (note_outage set the next try).
        row = faults.state(account)
        if row is None or row.held_since is None:
            _later(message_id, faults.seconds_to_wait(row) or CHECK_AGAIN)
        return "held" if row is not None and row.held_since is not None else "waiting"
    if trying:
        if not faults.answered_by_gateway_status(message):
            faults.give_back_try(account)
        elif faults.note_recovered(account) and not backend_defers():
            requeue_waiting(account)  # their tasks could not run again later by themselves
    return str(message.status)


#: Seconds a task waits to look again when another task's try is out.
CHECK_AGAIN = 1.0


def _until(message: Message, moment: datetime, now: datetime) -> float:
    """Seconds from ``now`` to ``moment``, or to the message's expiry when that comes first
    (the clock's times; at least a tenth of a second)."""
    if message.expires_at is not None:
        moment = min(moment, message.expires_at)
    return max((moment - now).total_seconds(), 0.1)


def backend_defers() -> bool:
    """Whether the task backend can run a task later (``run_after``)."""
    return bool(send_message_task.get_backend().supports_defer)


def _later(message_id: int, seconds: float) -> None:
    """Run the message's task again in ``seconds``. A backend that cannot defer leaves the
    message ``queued``: it is handed out again when a queued send finds the outage over, or by
    ``release_account``."""
    if backend_defers():
        when = timezone.now() + timedelta(seconds=seconds)
        transaction.on_commit(partial(send_message_task.using(run_after=when).enqueue, message_id))


def requeue_waiting(account: str) -> int:
    """Hand the account's ``queued`` messages that belong to no campaign to the task framework
    again (when the transaction commits): a held account released, or an outage over with a
    backend that could not defer their retry. Safe when some are queued already: a message is
    claimed once. Returns how many."""
    ids = list(
        Message.objects.filter(
            account=account, status=Status.QUEUED, campaign__isnull=True
        ).values_list("pk", flat=True)
    )
    for message_id in ids:
        transaction.on_commit(partial(send_message_task.enqueue, message_id))
    return len(ids)


def enqueue_message(message: Message) -> Message:
    """Store a message as ``queued`` and hand it to the task framework when the current
    transaction commits (at once outside one); a rolled-back transaction sends nothing.

    An unsaved message is validated and saved as ``queued``; a ``draft`` is moved to ``queued``;
    a ``queued`` one (a retry, or one whose task was lost) is enqueued again, which is safe: the
    worker's claim submits it at most once. A message in any other status is returned as it is.
    Raises ``ValidationError`` (nothing stored) for an invalid message, and
    :class:`~django_whatsapp.exceptions.CampaignNotRunning` for a message of a campaign that is
    not running (only its campaign sends it).
    """
    conf = get_settings(message.account)
    # A configuration error surfaces here, not later in a worker.
    conf.require_api_key()
    callback_url(message.uuid, conf)
    ensure_campaign_running(message)
    now = timezone.now()
    if message.pk is None:
        validate_message(message)
        message.status, message.status_changed_at = Status.QUEUED, now
        message.save()
    elif message.status == Status.DRAFT:
        validate_message(message)
        if not move_status(message, (Status.DRAFT,), Status.QUEUED, now):
            message.refresh_from_db()
            return message
        message.status, message.status_changed_at = Status.QUEUED, now
    elif message.status != Status.QUEUED:
        return message
    if optout.refusal(message) is not None or expiry.expired(message):
        # The recipient opted out, or the message expired: refused now (not_sent, the error
        # kept), no task enqueued.
        claim_for_sending(message, conf)
        return message
    transaction.on_commit(partial(_enqueue, message.pk))
    return message


def _enqueue(message_id: int) -> None:
    send_message_task.enqueue(message_id)
    logger.info("WhatsApp message %s queued", message_id)


# -- campaigns ---------------------------------------------------------------------------------


@task()
def send_campaign_chunk(chunk_id: int) -> str:
    """Send one chunk of a campaign (:func:`django_whatsapp.campaigns.engine.run_chunk`), then
    tick the campaign, so that the remaining workers hand out a dead worker's chunk once its
    lease has run out and mark the campaign done. Returns the run's outcome.

    Running it twice for one chunk (the job delivered twice, or handed out again after a lease
    ran out) submits no message twice: the chunk's lease admits one run at a time, and each
    message is claimed once."""
    run = engine.run_chunk(chunk_id)
    campaign_id = (
        CampaignChunk.objects.filter(pk=chunk_id).values_list("campaign_id", flat=True).first()
    )
    if campaign_id is not None and run.outcome in ("done", "lost", "waiting"):
        plan = engine.tick(campaign_id)
        _follow(campaign_id, plan)
        if not plan.chunk_ids:
            # A chunk whose worker died: run it here once its lease runs out.
            for orphan in engine.wait_for_a_dead_lease(campaign_id):
                engine.run_chunk(orphan)
            _follow(campaign_id, engine.tick(campaign_id))
    return run.outcome


@task()
def campaign_tick(campaign_id: int, due: str | None = None) -> str:
    """Move a campaign along (:func:`django_whatsapp.campaigns.engine.tick`): start it at its
    ``send_at``, hand out pending chunks and those whose lease ran out, mark it done; then
    schedule the next tick while it needs one. ``due`` is when this tick was scheduled for: a
    tick that a later schedule superseded does its work but schedules no successor, so a
    campaign has one chain of ticks. Returns the campaign's status."""
    current = Campaign.objects.filter(pk=campaign_id).values_list("next_tick_at", flat=True).first()
    mine = due is None or (current is not None and current.isoformat() == due)
    _follow(campaign_id, engine.tick(campaign_id), chain=mine)
    status = Campaign.objects.filter(pk=campaign_id).values_list("status", flat=True).first()
    return str(status)


def _follow(campaign_id: int, plan: engine.Tick, *, chain: bool = False) -> None:
    """Hand out the tick's chunks, and schedule the next tick when this is the campaign's chain
    of ticks, or no tick is scheduled in the future (``next_tick_at``)."""
    enqueue_chunks(plan.chunk_ids)
    if plan.next_at is None:
        return
    now = timezone.now()
    waiting = Q(next_tick_at__isnull=True) | Q(next_tick_at__lte=now)
    if chain or Campaign.objects.filter(pk=campaign_id).filter(waiting).exists():
        schedule_tick(campaign_id, plan.next_at)


def enqueue_chunks(chunk_ids: list[int]) -> None:
    """Hand chunks to the task framework (at once, or when the transaction commits)."""
    for chunk_id in chunk_ids:
        transaction.on_commit(partial(send_campaign_chunk.enqueue, chunk_id))


def schedule_tick(campaign_id: int, at: datetime | None = None) -> None:
    """Run ``campaign_tick`` at ``at`` (now when ``None`` or past), and note when on the
    campaign."""
    now = timezone.now()
    due = at if at is not None and at > now else now
    Campaign.objects.filter(pk=campaign_id).update(next_tick_at=due)
    if due > now and not campaign_tick.get_backend().supports_defer:
        # This backend cannot run a task later: the chunk tasks' own ticks move the campaign
        # along; a scheduled campaign then needs start_campaign at its time.
        logger.warning("WhatsApp campaign %s: the task backend cannot defer its tick", campaign_id)
        return
    deferred = campaign_tick.using(run_after=due) if due > now else campaign_tick
    transaction.on_commit(partial(deferred.enqueue, campaign_id, due.isoformat()))
