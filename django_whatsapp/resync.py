"""Resync: poll the gateway for the status of messages that are not final, and apply the answers.

``whatsapp_resync`` runs this; a project can schedule it as its own task too::

    from datetime import timedelta
    from django_whatsapp import services

    summary = services.resync_statuses(services.resync_selection(since=timedelta(days=2)))

The polls run ``concurrency`` at a time (fewer for a small selection: a thread per
``POLLS_PER_THREAD`` messages) on one pooled HTTP session per account, where a 429 pauses them
all; each message is polled through its own account's gateway and key. The polling threads only
talk HTTP: the answers are applied in the caller's thread, in id order, ``APPLY_BATCH`` at a time
(one statement per batch on PostgreSQL) while the next polls run, so the outcome and the order
of the reports are the same whatever the concurrency. Messages are read in id-ordered chunks of
``CHUNK_SIZE`` (keyset pagination), so memory stays flat however many there are.
"""

from __future__ import annotations

import math
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from .client import StatusResult, WhatsAppClient
from .conf import get_settings
from .exceptions import WhatsAppError
from .models import FINAL_STATUSES, Message, StatusEvent
from .sending import pooled_client, storable_answer
from .status_rule import Report, apply_reports, receive_report

#: Messages read from the database at a time.
CHUNK_SIZE = 500
#: The most polls in flight at once.
MAX_CONCURRENCY = 64
DEFAULT_CONCURRENCY = 8
#: Answers applied at once (one statement on PostgreSQL); the polls run this far ahead.
APPLY_BATCH = 100
#: Messages per polling thread at least: a small selection is polled by fewer threads, in order.
POLLS_PER_THREAD = 16

__all__ = [
    "MAX_CONCURRENCY",
    "Polled",
    "ResyncSummary",
    "apply_poll",
    "apply_polls",
    "poll_statuses",
    "resync_candidates",
    "resync_selection",
    "resync_statuses",
]


def poll_statuses(
    messages: Iterable[Message],
    client: WhatsAppClient,
    concurrency: int,
    *,
    ahead: int | None = None,
) -> Iterator[tuple[Message, Future[StatusResult]]]:
    """Poll each message's status in a pool of ``concurrency`` threads, keeping at most
    ``ahead`` polls (twice the concurrency by default) ahead of the caller; yield each message
    with its poll, in the order given (apply each with :func:`apply_poll`, or a batch of them
    with :func:`apply_polls`). The threads only talk HTTP: the database work stays in the caller's
    thread. Messages without a provider id are skipped."""
    limit = ahead if ahead is not None else 2 * concurrency
    queued: deque[tuple[Message, Future[StatusResult]]] = deque()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="whatsapp-poll") as pool:
        try:
            for message in messages:
                if message.provider_message_id is None:  # adopted nothing yet: nothing to poll
                    continue
                queued.append(
                    (message, pool.submit(client.get_status, message.provider_message_id))
                )
                if len(queued) >= limit:
                    yield queued.popleft()
            while queued:
                yield queued.popleft()
        finally:
            for _message, future in queued:
                future.cancel()


def apply_poll(message: Message, result: StatusResult) -> StatusEvent | None:
    """Apply the status endpoint's answer about a message (a ``poll`` report). Polls can run in
    other threads (:func:`poll_statuses`) while this runs where the database work is done. The
    answer is kept as the event's payload, made storable (:func:`~.sending.storable_answer`)."""
    return receive_report(
        message,
        result.status,
        source=StatusEvent.Source.POLL,
        payload=storable_answer(result.body),
        provider_message_id=result.message_id,
    )


def apply_polls(
    polls: Sequence[tuple[Message, StatusResult]],
) -> list[StatusEvent | Exception | None]:
    """:func:`apply_poll` for a batch of answers, in one statement on PostgreSQL. Returns, for
    each in order, the new event, ``None`` for a duplicate, or the
    :class:`~.status_rule.ReportMismatch` (or ``Message.DoesNotExist``) that refused it; the
    others are applied all the same."""
    return apply_reports(
        [
            Report(message, result.status, storable_answer(result.body), result.message_id)
            for message, result in polls
        ],
        source=StatusEvent.Source.POLL,
    )


# -- the resync ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Polled:
    """One message's outcome, reported in the selection's order."""

    #: Its place in the selection (from 1) and the selection's size.
    index: int
    total: int
    #: The message as it is after the poll.
    message: Message
    old_status: str
    #: Why nothing changed: the poll failed (:class:`~.exceptions.WhatsAppError`) or the answer
    #: was refused (:class:`~.status_rule.ReportMismatch`, ``Message.DoesNotExist``).
    error: Exception | None = None

    @property
    def changed(self) -> bool:
        return self.error is None and self.message.status != self.old_status


@dataclass
class ResyncSummary:
    """What a resync did: ``total`` messages polled, each changed, unchanged or failed."""

    total: int
    changed: int = 0
    unchanged: int = 0
    failed: int = 0


def resync_selection(
    *,
    ids: Iterable[int] | None = None,
    since: timedelta | None = None,
    account: str | None = None,
) -> QuerySet[Message]:
    """The messages a resync polls, in id order: those with a provider id that are not final;
    only ``ids``, only those created within ``since``, only ``account``'s (which must be
    configured: ``ImproperlyConfigured`` otherwise)."""
    queryset = Message.objects.filter(provider_message_id__isnull=False).exclude(
        status__in=FINAL_STATUSES
    )
    if ids is not None:
        queryset = queryset.filter(pk__in=list(ids))
    if account is not None:
        get_settings(account)
        queryset = queryset.filter(account=account)
    if since is not None:
        queryset = queryset.filter(created_at__gte=timezone.now() - since)
    return queryset.order_by("pk")


def resync_candidates(queryset: QuerySet[Message], limit: int | None = None) -> Iterator[Message]:
    """The selection in id order (at most ``limit``), read ``CHUNK_SIZE`` rows at a time: each
    chunk starts after the last id seen, so memory stays flat and no row is read twice."""
    last_pk = 0
    remaining = limit if limit is not None else sys.maxsize
    while remaining > 0:
        size = min(CHUNK_SIZE, remaining)
        batch = list(queryset.filter(pk__gt=last_pk)[:size])
        yield from batch
        if len(batch) < size:
            return
        remaining -= len(batch)
        last_pk = batch[-1].pk


def resync_statuses(
    queryset: QuerySet[Message] | None = None,
    *,
    limit: int | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_polled: Callable[[Polled], None] | None = None,
) -> ResyncSummary:
    """Poll the status of every message of ``queryset`` (:func:`resync_selection` by default; at
    most ``limit``) and apply the answers, ``concurrency`` polls in flight at once.

    ``on_polled`` is called with each message's :class:`Polled`, in id order, once its answer is
    applied (or its poll failed). A failed poll changes nothing and the resync goes on. Raises
    ``ImproperlyConfigured``, before any poll, when a selected message's account is not
    configured, and ``ValueError`` for a ``limit`` under 1 or a ``concurrency`` out of 1 to
    ``MAX_CONCURRENCY``.
    """
    if limit is not None and limit < 1:
        raise ValueError("limit must be at least 1")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be between 1 and {MAX_CONCURRENCY}")
    if queryset is None:
        queryset = resync_selection()
    total = queryset.count()
    if limit is not None:
        total = min(total, limit)
    accounts = _accounts_of(queryset)
    for account in accounts:
        try:
            get_settings(account)
        except ImproperlyConfigured as error:
            raise ImproperlyConfigured(
                _("Messages of account %(account)s cannot be polled: %(error)s")
                % {"account": repr(account), "error": error}
            ) from error
    summary = ResyncSummary(total)
    report = _Reporter(summary, on_polled)
    # A thread, and its connection to the gateway (a TLS handshake), pays off only over several
    # polls: one per POLLS_PER_THREAD messages, up to ``concurrency``.
    threads = max(1, min(concurrency, math.ceil(total / POLLS_PER_THREAD)))
    batch: list[tuple[int, Message, StatusResult]] = []
    for index, (message, poll) in enumerate(_polls(queryset, accounts, total, threads), start=1):
        try:
            batch.append((index, message, poll.result()))
        except WhatsAppError as error:
            report.apply(batch)  # the reports stay in order
            report(Polled(index, total, message, message.status, error))
        if len(batch) >= APPLY_BATCH:
            report.apply(batch)
    report.apply(batch)
    return summary


class _Reporter:
    """Applies batches of answers and reports each message, counting into the summary."""

    def __init__(self, summary: ResyncSummary, on_polled: Callable[[Polled], None] | None):
        self.summary = summary
        self.on_polled = on_polled

    def __call__(self, polled: Polled) -> None:
        if polled.error is not None:
            self.summary.failed += 1
        elif polled.changed:
            self.summary.changed += 1
        else:
            self.summary.unchanged += 1
        if self.on_polled is not None:
            self.on_polled(polled)

    def apply(self, batch: list[tuple[int, Message, StatusResult]]) -> None:
        """Apply a batch of answers (emptying it) and report each, in order."""
        if not batch:
            return
        before = [message.status for _index, message, _result in batch]
        outcomes = apply_polls([(message, result) for _index, message, result in batch])
        total = self.summary.total
        for (index, message, _result), old, outcome in zip(batch, before, outcomes, strict=True):
            error = outcome if isinstance(outcome, Exception) else None
            self(Polled(index, total, message, old, error))
        batch.clear()


def _accounts_of(queryset: QuerySet[Message]) -> list[str]:
    """The accounts of the selected messages, sorted."""
    return sorted(set(queryset.order_by().values_list("account", flat=True).distinct()))


def _polls(
    queryset: QuerySet[Message], accounts: list[str], total: int, threads: int
) -> Iterator[tuple[Message, Future[StatusResult]]]:
    """The polls of the selection (at most ``total``), one account after the other, each
    through a pooled client of that account's settings (its gateway, key and limits)."""
    remaining = total
    for account in accounts:
        if remaining <= 0:
            return
        with pooled_client(threads, get_settings(account)) as client:
            selected = queryset.filter(account=account)
            polled_in_order = poll_statuses(
                resync_candidates(selected, remaining),
                client,
                threads,
                ahead=APPLY_BATCH + 2 * threads,
            )
            for polled in polled_in_order:
                remaining -= 1
                yield polled
