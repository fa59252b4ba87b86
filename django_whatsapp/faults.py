"""Whose fault is it: every outcome of a send classified once, and what the app does about a
fault of the account or of the system.

:func:`classify` is the one place that decides, for every path that calls the gateway (single
sends, bulk, queued tasks, campaigns):

- :attr:`Fault.SENT`: the gateway took the message;
- :attr:`Fault.MESSAGE`: the message's own fault (an invalid parameter, a closed 24-hour window,
  an opt-out, an unknown refusal): it ends ``not_sent``, for good;
- :attr:`Fault.MAYBE_SENT`: the request may have reached the gateway (a read timeout, a dropped
  connection, a success answer without the documented body, a bug on the way): ``unknown``,
  never sent again automatically;
- :attr:`Fault.ACCOUNT`: the gateway refused the account, not the message (402 / code 3: the
  balance; 401/403: the key). The account is *held* (:func:`hold`): its running campaigns are
  paused with the reason, its queued sends wait, and the messages refused for that reason are
  ``queued`` again, until an operator resumes after the top-up (``resume_campaign`` or
  ``release_account``);
- :attr:`Fault.LIMIT`: the account's own daily limit (``DAILY_LIMIT``, its messaging tier) is
  reached, and nothing was requested: queued and campaign work waits (``queued``, not before
  the time a place frees); nothing is held and no breaker opens;
- :attr:`Fault.SYSTEM`: the request certainly did not reach the gateway, or the gateway failed
  (it could not be reached, it answered server errors or 429 after the retries, the rate-limit
  cache could not be reached). Queued and campaign work *waits*: the message is ``queued``
  again, and the account's circuit breaker (:func:`note_outage`) makes every process wait with
  growing pauses (half a second, doubling, at most ``OUTAGE_MAX_PAUSE``, with jitter) and try
  one message when each pause ends (:func:`take_try`); the first success closes it
  (:func:`note_recovered`) and the work goes on by itself.

A single inline send (its caller waits for the answer) ends ``not_sent`` with its typed error for
an account's or a system's fault too; only an account's fault holds the account.

The breaker and the hold live in :class:`~django_whatsapp.models.AccountState`, one row per
account in the database: shared by every process and machine, whatever the cache does (the
rate-limit cache may be the very thing that is down). A transition (held, waiting, back) is
logged once, not once per message.
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from .client import SendResult
from .conf import get_settings
from .exceptions import (
    AuthenticationFailed,
    DailyLimitReached,
    GatewayServerError,
    InsufficientBalance,
    NotRequested,
    RateLimited,
    RateLimitUnavailable,
    TransportError,
    UnexpectedResponse,
    WhatsAppError,
)
from .models import AccountState

logger = logging.getLogger("django_whatsapp")

#: The first pause after a system fault, in seconds; each failed try doubles it, up to
#: ``OUTAGE_MAX_PAUSE``.
FIRST_PAUSE = 0.5
#: How long one process's try may be out before another process may try (seconds).
TRY_TIMEOUT = 60.0
#: HTTP statuses that say the gateway's endpoint is not there (a proxy in front of it during a
#: deployment, a wrong ``BASE_URL``): the system's fault, not the message's.
NOT_THERE = frozenset({404, 405, 408, 501})


class Fault(enum.StrEnum):
    """Whose fault an outcome is (see the module's docstring)."""

    SENT = "sent"
    MESSAGE = "message"
    MAYBE_SENT = "maybe_sent"
    ACCOUNT = "account"
    SYSTEM = "system"
    LIMIT = "limit"

    @property
    def is_final(self) -> bool:
        """Whether the message's status is settled by it for good (for queued and campaign
        work: the account's and the system's faults, and the daily limit, put the message back
        to ``queued``)."""
        return self in (Fault.SENT, Fault.MESSAGE, Fault.MAYBE_SENT)


def classify(outcome: SendResult | BaseException) -> Fault:
    """Whose fault the outcome of one send request is: the one rule every send path asks."""
    if isinstance(outcome, SendResult):
        return Fault.SENT
    if not isinstance(outcome, WhatsAppError):
        # A bug or an unforeseen failure on the way: the request may have gone out.
        return Fault.MAYBE_SENT
    if outcome.maybe_delivered or isinstance(outcome, UnexpectedResponse):
        return Fault.MAYBE_SENT
    if isinstance(outcome, InsufficientBalance | AuthenticationFailed):
        return Fault.ACCOUNT
    if isinstance(outcome, DailyLimitReached):
        return Fault.LIMIT
    if isinstance(
        outcome,
        RateLimitUnavailable | GatewayServerError | RateLimited | TransportError | NotRequested,
    ):
        return Fault.SYSTEM
    if type(outcome) is WhatsAppError and outcome.http_status in NOT_THERE:
        return Fault.SYSTEM
    return Fault.MESSAGE


def describe(error: BaseException) -> str:
    """The reason an operator reads for an account's or a system's fault."""
    if isinstance(error, InsufficientBalance):
        what = _("The gateway says the account's balance is empty: top it up, then resume.")
    elif isinstance(error, AuthenticationFailed):
        what = _("The gateway refused the account's API key: fix the key, then resume.")
    elif isinstance(error, RateLimitUnavailable):
        what = _("The cache that holds the shared rate limit cannot be reached.")
    elif isinstance(error, RateLimited):
        what = _("The gateway keeps answering “too many requests”.")
    elif isinstance(error, GatewayServerError):
        what = _("The gateway answers with server errors.")
    else:
        what = _("The gateway cannot be reached.")
    detail = str(error) if isinstance(error, WhatsAppError) else type(error).__name__
    return f"{what} ({_clean(detail)[:300]})"


def _clean(text: str) -> str:
    """Outside text (a gateway's answer) as every database keeps it."""
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8").replace("\x00", "\\x00")


# -- the account's state -----------------------------------------------------------------------


def _row(account: str) -> None:
    """Make sure the account has its row (two processes at once: one creates it)."""
    if not AccountState.objects.filter(account=account).exists():
        try:
            with transaction.atomic():
                AccountState.objects.create(account=account)
        except IntegrityError:
            pass  # another process created it meanwhile


def state(account: str) -> AccountState | None:
    """The account's state row, or ``None`` when nothing ever went wrong with it."""
    return AccountState.objects.filter(account=account).first()


def is_held(account: str) -> bool:
    return AccountState.objects.filter(account=account, held_since__isnull=False).exists()


def hold(account: str, error: BaseException) -> bool:
    """Hold the account after the gateway refused its balance or key: its queued sends wait
    until ``release_account``. Returns True when this call held it (it was not held). The
    caller pauses the account's running campaigns
    (:func:`django_whatsapp.campaigns.states.pause_account_campaigns`)."""
    _row(account)
    reason = describe(error)
    held = AccountState.objects.filter(account=account, held_since__isnull=True).update(
        held_since=timezone.now(), held_reason=reason
    )
    if held:
        logger.warning(
            "WhatsApp account %s is held: %s Its campaigns are paused and its queued sends "
            "wait until a campaign is resumed or the account is released.",
            account,
            reason,
        )
    return bool(held)


def release(account: str) -> bool:
    """Lift the account's hold (the operator topped up or fixed the key). Returns True when it
    was held. ``services.release_account`` also hands its queued sends out again."""
    released = AccountState.objects.filter(account=account, held_since__isnull=False).update(
        held_since=None, held_reason=""
    )
    if released:
        logger.info("WhatsApp account %s is released: its queued sends go on", account)
    return bool(released)


# -- the circuit breaker -----------------------------------------------------------------------


def pause_after(failures: int, *, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after ``failures`` failed tries in a row: half a second, doubling, at
    most ``OUTAGE_MAX_PAUSE``, each between three quarters and all of that (jitter, so that
    processes do not try in step)."""
    cap = get_settings().OUTAGE_MAX_PAUSE
    ceiling = min(cap, FIRST_PAUSE * 2.0 ** min(max(failures - 1, 0), 32))
    return ceiling * (0.75 + min(max(rand(), 0.0), 1.0) / 4)


def note_outage(account: str, error: BaseException, *, now: datetime | None = None) -> bool:
    """Record a system fault met by queued or campaign work: the account's breaker opens (or a
    try failed: the next pause grows). A failure of a request that went out while a pause was
    in force (another request of the same burst) changes nothing. Returns True when this call
    opened the breaker."""
    now = now or timezone.now()
    _row(account)
    reason = describe(error)
    with transaction.atomic():
        row = AccountState.objects.select_for_update().get(account=account)
        if row.waiting_since is not None and row.next_try_at is not None and row.next_try_at > now:
            return False  # the same burst: the pause in force answers it
        opened = row.waiting_since is None
        row.failures = 1 if opened else row.failures + 1
        pause = pause_after(row.failures)
        row.waiting_since = row.waiting_since or now
        row.wait_reason = reason
        row.next_try_at = now + timedelta(seconds=pause)
        row.probe_until = None
        row.save(
            update_fields=[
                "failures",
                "waiting_since",
                "wait_reason",
                "next_try_at",
                "probe_until",
                "updated_at",
            ]
        )
    if opened:
        logger.warning(
            "WhatsApp account %s: queued and campaign sends wait: %s Trying again in %.1fs, "
            "then with growing pauses.",
            account,
            reason,
            pause,
        )
    else:
        logger.debug(
            "WhatsApp account %s: try %d failed; next in %.1fs", account, row.failures, pause
        )
    return opened


def take_try(account: str, *, now: datetime | None = None) -> bool:
    """While the account's breaker is open: whether this caller may try one message now (its
    pause is over and no other process's try is out). Of concurrent callers, one gets True."""
    now = now or timezone.now()
    taken = (
        AccountState.objects.filter(
            account=account, waiting_since__isnull=False, next_try_at__lte=now
        )
        .filter(Q(probe_until__isnull=True) | Q(probe_until__lt=now))
        .update(probe_until=now + timedelta(seconds=TRY_TIMEOUT))
    )
    return bool(taken)


def give_back_try(account: str) -> None:
    """A try taken with :func:`take_try` sent nothing: another process may try at once."""
    AccountState.objects.filter(account=account).update(probe_until=None)


def answered_by_gateway(outcome: SendResult | BaseException) -> bool:
    """Whether the gateway itself answered the request (it is reachable and working), whatever
    it said of the message."""
    if isinstance(outcome, SendResult):
        return True
    return (
        isinstance(outcome, WhatsAppError)
        and outcome.http_status is not None
        and classify(outcome) is Fault.MESSAGE
    )


def answered_by_gateway_status(message: Any) -> bool:
    """Whether a message's recorded outcome shows the gateway answered (accepted it, or refused
    it for the message's own reason)."""
    status = message.status
    if status in ("draft", "queued", "sending", "unknown"):
        return False
    return status != "not_sent" or bool(message.submitted_at)


def note_recovered(account: str) -> bool:
    """A send went through: close the account's breaker. Returns True when it was open (the
    outage's end is logged once, with its length)."""
    now = timezone.now()
    row = (
        AccountState.objects.filter(account=account, waiting_since__isnull=False)
        .values_list("waiting_since", flat=True)
        .first()
    )
    if row is None:
        return False
    closed = AccountState.objects.filter(account=account, waiting_since=row).update(
        waiting_since=None, wait_reason="", next_try_at=None, failures=0, probe_until=None
    )
    if closed:
        logger.warning(
            "WhatsApp account %s: the gateway answers again after %.0fs; sends go on",
            account,
            (now - row).total_seconds(),
        )
    return bool(closed)


def seconds_to_wait(row: AccountState | None, *, now: datetime | None = None) -> float | None:
    """How long queued and campaign work of the account should wait now: ``None`` when it may
    send (no outage, or the pause is over), else the seconds until the next try."""
    if row is None or row.waiting_since is None or row.next_try_at is None:
        return None
    left = (row.next_try_at - (now or timezone.now())).total_seconds()
    return left if left > 0 else None
