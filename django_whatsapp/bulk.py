"""Bulk sending: one text, image or template to many recipients, each its own message.

Everything is validated first: a content error (an empty text, a bad image URL, wrong template
parameters) raises ``ValidationError`` and nothing is stored; a bad recipient is reported in
:attr:`BulkResult.invalid` and skipped. The messages are then stored in one go as ``queued`` and,
with ``SEND_ASYNC`` on, handed to the task framework when the transaction commits; otherwise they
are sent ``concurrency`` at a time by a pool of threads over one pooled HTTP session, where a 429
pauses every thread at once (:class:`~django_whatsapp.client.SharedBackoff`) instead of failing
messages. The threads only talk HTTP: the database work stays in the caller's thread and goes
in batches (one statement claims a batch, one records its accepted sends), as in a campaign.

For a console or form, :func:`parse_recipients` splits pasted numbers, and the admin calls
``send_bulk(parse_recipients(text), text=..., created_by=request.user)``.
"""

from __future__ import annotations

import copy
import logging
import re
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from . import expiry, faults, idempotency, optout, sending
from .client import SendResult, WhatsAppClient
from .conf import get_settings
from .exceptions import WhatsAppError
from .faults import classify
from .metadata import clean_links
from .models import Message, Template
from .signing import callback_url
from .validation import clean_recipient, clean_template, validate_message

logger = logging.getLogger("django_whatsapp")

#: The most threads one bulk send may use.
MAX_CONCURRENCY = 64
#: Rows per INSERT when the messages are stored.
BATCH_SIZE = 500
_SPLIT_RE = re.compile(r"[\n\r,;]+")


@dataclass
class BulkResult:
    """What a bulk send did."""

    #: One message per valid, distinct recipient, in the order given, each with its outcome.
    messages: list[Message] = field(default_factory=list)
    #: Recipients as given that were not valid, with the reasons; nothing was sent to them.
    invalid: dict[str, list[str]] = field(default_factory=dict)
    #: Recipients listed more than once (after normalising); each got one message.
    duplicates: list[str] = field(default_factory=list)
    #: Messages that an earlier send with the same ``idempotency_key`` stored: returned as they
    #: are now (also in :attr:`messages`), not sent again.
    existing: list[Message] = field(default_factory=list)
    #: Messages whose send raised (for example a ``message_sending`` receiver's veto), by id; the
    #: message's own status and error fields say what became of it.
    errors: dict[int, str] = field(default_factory=dict)
    #: Recipients (normalised) who opted out: their messages are stored ``not_sent`` with
    #: :class:`~django_whatsapp.exceptions.OptedOut` and nothing was requested for them.
    opted_out: list[str] = field(default_factory=list)
    #: Sent inline: the fault of the account or of the system (the balance, the key, an
    #: unreachable gateway or rate-limit cache) that stopped the send. The messages not requested
    #: by then are ``not_sent`` with the error "Not requested" naming it (retry them, or send
    #: queued: queued sends wait for the fault to pass instead).
    stopped_by: Exception | None = None

    @property
    def counts(self) -> dict[str, int]:
        """How many messages ended in each status."""
        return dict(Counter(str(message.status) for message in self.messages))


def parse_recipients(text: str) -> list[str]:
    """Recipients from pasted text: one per line, or separated by commas or semicolons."""
    return [part.strip() for part in _SPLIT_RE.split(text or "") if part.strip()]


def _prototype(
    *,
    text: str | None,
    file_url: str | None,
    template: Template | str | None,
    params: Sequence[Any],
    header: str | None,
    source_addr: str | None,
    created_by: Any,
    account: str,
    links: dict[str, Any],
) -> Message:
    """One validated message with every field but the recipient; raises ``ValidationError``."""
    if template is not None:
        if text is not None or file_url is not None:
            raise ValidationError(_one_kind())
        try:
            resolved = clean_template(template)
        except ValidationError as error:
            raise ValidationError({"template": error}) from error
        message = Message(
            message_type=Message.MessageType.TEMPLATE,
            template=resolved,
            template_params={"body": [str(p) for p in params], "header": header},
        )
    elif file_url is not None:
        message = Message(
            message_type=Message.MessageType.MEDIA, file_url=file_url, text=text or ""
        )
    elif text is not None:
        message = Message(message_type=Message.MessageType.TEXT, text=text)
    else:
        raise ValidationError(_one_kind())
    message.source_addr = source_addr or get_settings(account).DEFAULT_SOURCE_ADDR or ""
    message.created_by = created_by
    message.account = account
    for name, value in links.items():
        setattr(message, name, value)
    # A recipient that is surely valid, so that only the content is checked here.
    message.destination_addr = "+12025550123"
    validate_message(message)
    return message


def _one_kind() -> str:
    return "Give text (with file_url for an image's caption), file_url, or template."


def send_bulk(
    recipients: Iterable[Any],
    *,
    text: str | None = None,
    file_url: str | None = None,
    template: Template | str | None = None,
    params: Sequence[Any] = (),
    header: str | None = None,
    source_addr: str | None = None,
    created_by: Any = None,
    concurrency: int = 8,
    client: WhatsAppClient | None = None,
    enqueue: bool | None = None,
    account: str | None = None,
    # The caller's own data, on every message (see services.send_message):
    metadata: dict[str, Any] | None = None,
    tags: Sequence[str] | None = None,
    target: models.Model | None = None,
    idempotency_key: str | None = None,
    # Every message's expiry (see services.send_message):
    expires_at: datetime | None = None,
    expires_in: timedelta | None = None,
) -> BulkResult:
    """Send one text (``text``), image (``file_url``, ``text`` its caption) or template
    (``template`` with ``params`` and ``header``) to every recipient, each its own message.

    Returns a :class:`BulkResult`. Sent inline (``SEND_ASYNC`` off, or ``enqueue=False``), the
    call returns when every message has its outcome, and must not run inside a transaction (each
    row is committed before its request goes out, and a rollback would forget messages the
    gateway took). ``client`` (for tests and tuning) must be safe to share between threads; by
    default one is made by :func:`sending.pooled_client`.

    ``account`` (a name in ``ACCOUNTS``; the default account when not given) sends every
    message through that account's gateway, key and sender. Recipients who opted out get a
    message stored ``not_sent`` (:class:`~django_whatsapp.exceptions.OptedOut`), listed in
    :attr:`BulkResult.opted_out`, and no request.

    ``metadata``, ``tags`` and ``target`` are stored on every message. With ``idempotency_key``,
    each message's key is ``"<idempotency_key>:<recipient>"``: sent again with the same key (a
    retried task), the recipients an earlier call stored get their first message back, in
    :attr:`BulkResult.existing`, and nothing is sent to them; a recipient whose first message had
    other content raises :class:`~django_whatsapp.exceptions.IdempotencyConflict`, before
    anything is stored.

    ``expires_at`` or ``expires_in``: every message's expiry (see
    :func:`~django_whatsapp.services.send_message`): a message not requested by then ends
    ``not_sent`` with :class:`~django_whatsapp.exceptions.MessageExpired`, never sent late.
    """
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be between 1 and {MAX_CONCURRENCY}")
    conf = get_settings(account)
    queued = get_settings().SEND_ASYNC if enqueue is None else enqueue
    if not queued and transaction.get_connection().in_atomic_block:
        raise transaction.TransactionManagementError(
            "send_bulk commits each message before sending it: call it outside a transaction, "
            "or queue the messages (SEND_ASYNC or enqueue=True)."
        )
    links = clean_links(metadata, tags, target)
    expires = expiry.clean(expires_at, expires_in)
    key = None
    if idempotency_key is not None:
        key = idempotency.clean_key(idempotency_key, reserve=RECIPIENT_ROOM)
    prototype = _prototype(
        links=links,
        text=text,
        file_url=file_url,
        template=template,
        params=params,
        header=header,
        source_addr=source_addr,
        created_by=created_by,
        account=conf.account,
    )
    prototype.expires_at = expires
    result = BulkResult()
    now = timezone.now()
    seen: set[str] = set()
    for given in recipients:
        try:
            recipient = clean_recipient(given)
        except ValidationError as error:
            result.invalid[str(given)] = list(error.messages)
            continue
        if recipient in seen:
            result.duplicates.append(str(given))
            continue
        seen.add(recipient)
        result.messages.append(_copy(prototype, recipient, now, key))
    if not result.messages:
        return result
    opted_out = optout.opted_out_numbers(m.destination_addr for m in result.messages)
    result.opted_out = [
        m.destination_addr for m in result.messages if m.destination_addr in opted_out
    ]
    # Configuration errors (no API key, no callback secret) surface before any row is written.
    conf.require_api_key()
    sender = None if queued else client or sending.pooled_client(concurrency, conf)
    callback_url(result.messages[0].uuid, conf)
    new = _store(result, queued, keyed=key is not None)
    if sender is not None:
        _send_all(result, sender, concurrency, new)
    logger.info(
        "WhatsApp bulk send of %d message(s) (%d invalid, %d duplicate, %d opted-out "
        "recipients): %s",
        len(result.messages),
        len(result.invalid),
        len(result.duplicates),
        len(result.opted_out),
        result.counts,
    )
    return result


#: Characters a bulk send's ``idempotency_key`` leaves for ``":<recipient>"``.
RECIPIENT_ROOM = 21


def _store(result: BulkResult, queued: bool, *, keyed: bool) -> list[Message]:
    """Store the messages (and enqueue them when ``queued``); return those this call stored.

    With keys, the messages an earlier call stored take their new copies' places in
    ``result.messages``; a race with another call storing the same keys is lost cleanly (the
    whole insert rolls back) and the lookup is made again."""
    for attempt in range(3):
        found = idempotency.existing_by_key(
            [m.idempotency_key or "" for m in result.messages] if keyed else [],
            result.messages[0].account,
        )
        firsts = {}
        for message in result.messages:
            first = found.get(message.idempotency_key or "") if keyed else None
            if first is not None:
                firsts[id(message)] = idempotency.same_or_conflict(first, message)
        new = [m for m in result.messages if id(m) not in firsts]
        try:
            with transaction.atomic():
                Message.objects.bulk_create(new, batch_size=BATCH_SIZE)
                if queued:
                    from .tasks import enqueue_message  # needs a task framework: imported on use

                    for message in new:
                        enqueue_message(message)
        except IntegrityError:
            for message in new:  # an earlier batch may have set them before the rollback
                message.pk = None
                message._state.adding = True
            if not keyed or attempt == 2:
                raise
            continue
        result.existing = [firsts[id(m)] for m in result.messages if id(m) in firsts]
        result.messages = [firsts.get(id(m), m) for m in result.messages]
        return new
    raise AssertionError("unreachable")  # pragma: no cover


def _copy(prototype: Message, recipient: str, now: datetime, key: str | None) -> Message:
    return Message(
        metadata=copy.deepcopy(prototype.metadata) if prototype.metadata else {},
        tags=list(prototype.tags),
        target_content_type=prototype.target_content_type,
        target_object_id=prototype.target_object_id,
        idempotency_key=f"{key}:{recipient}" if key is not None else None,
        message_type=prototype.message_type,
        source_addr=prototype.source_addr,
        destination_addr=recipient,
        text=prototype.text,
        file_url=prototype.file_url,
        template=prototype.template,
        template_params=(
            copy.deepcopy(prototype.template_params) if prototype.template_params else {}
        ),
        created_by=prototype.created_by,
        account=prototype.account,
        expires_at=prototype.expires_at,
        status=Message.Status.QUEUED,
        status_changed_at=now,
    )


def _send_all(
    result: BulkResult, client: WhatsAppClient, concurrency: int, messages: list[Message]
) -> None:
    """Send ``messages`` with ``concurrency`` requests in flight (see :func:`_send_batched`)."""
    if messages:
        _send_batched(result, client, min(concurrency, len(messages)), messages)


#: Messages claimed (and prepared) at once: at least this many, or twice the concurrency.
CLAIM_BATCH = 32


def _send_batched(
    result: BulkResult, client: WhatsAppClient, concurrency: int, messages: list[Message]
) -> None:
    """A pool of ``concurrency`` threads only talks HTTP (``client.send``); the database work
    stays in the caller's thread, on its one connection, and goes in batches: the messages are
    claimed ``CLAIM_BATCH`` (or twice the concurrency) at a time in one statement
    (:func:`sending.claim_messages`) with one opt-out query, and the accepted ones recorded
    together (one statement on PostgreSQL, :func:`sending.record_outcomes`). Up to twice
    ``concurrency`` requests are handed to the pool, so its threads have the next request at
    hand while this thread claims and records: every slot stays busy. Should the process die,
    the messages claimed and not yet answered stay ``sending`` (see ``whatsapp_resync
    --stale-sending``): at most a claim batch and the requests handed out."""
    conf = get_settings(messages[0].account)
    claim_size = max(CLAIM_BATCH, 2 * concurrency)
    pending: deque[Message] = deque(messages)
    ready: deque[tuple[Message, dict[str, Any]]] = deque()
    in_flight: dict[Future[SendResult], Message] = {}
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="whatsapp-bulk") as pool:
        while pending or ready or in_flight:
            if pending and len(ready) < concurrency:
                batch = [pending.popleft() for _ in range(min(claim_size, len(pending)))]
                for prepared in sending.prepare_claimed(sending.claim_messages(batch), conf):
                    if prepared.payload is not None:
                        ready.append((prepared.message, prepared.payload))
                    elif prepared.raised:  # a receiver's veto
                        refusal = prepared.refusal
                        result.errors[prepared.message.pk] = f"{type(refusal).__name__}: {refusal}"
            while ready and len(in_flight) < 2 * concurrency:
                message, payload = ready.popleft()
                in_flight[pool.submit(client.send, payload)] = message
            if not in_flight:
                continue
            # Record as soon as half the requests handed out are answered, together.
            answered: set[Future[SendResult]] = set()
            wanted = min(len(in_flight), concurrency)
            while len(answered) < wanted:
                done, _waiting = wait(set(in_flight) - answered, return_when=FIRST_COMPLETED)
                answered |= done
            outcomes = [(in_flight.pop(future), sending.outcome_of(future)) for future in answered]
            recorded = sending.record_outcomes(outcomes)
            result.errors.update(recorded.errors)
            if recorded.fault is not None and result.stopped_by is None:
                # The account or the system failed, not the messages: request no more.
                result.stopped_by = next(
                    o
                    for _m, o in outcomes
                    if isinstance(o, Exception) and classify(o) is recorded.fault
                )
                _not_requested(result.stopped_by, [m for m, _p in ready], list(pending))
                ready.clear()
                pending.clear()


def _not_requested(cause: Exception, claimed: list[Message], unclaimed: list[Message]) -> None:
    """An inline bulk send stopped by ``cause`` (a fault of the account or of the system): the
    messages not requested yet end ``not_sent`` with an error naming it, with no request."""
    reason = faults.describe(cause)
    error = WhatsAppError(
        _("Not requested: the send stopped. %(reason)s") % {"reason": reason},
        name="Not requested",
    )
    for message in claimed:  # claimed: recorded as any refusal before the request
        sending.record_send(message, error)
    if unclaimed:
        fields = sending.error_fields(error)
        Message.objects.filter(
            pk__in=[m.pk for m in unclaimed], status=Message.Status.QUEUED
        ).update(status=Message.Status.NOT_SENT, status_changed_at=timezone.now(), **fields)
        for message in unclaimed:
            message.refresh_from_db()
