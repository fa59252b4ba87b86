"""A campaign's audience, streamed in: from an iterable of numbers or ``(number, params)`` pairs,
or from a CSV file.

The rows are read one at a time and stored in batches of ``BATCH_SIZE`` (plain multi-row
INSERTs, one transaction per batch), so memory stays flat however long the audience is and a
failure half-way keeps what was stored. Every row is validated: a bad one is counted and, up to
``MAX_REJECTIONS_STORED`` per campaign, kept as a :class:`CampaignRejection` with its line and
the reason, and the import goes on. A number listed twice gets one message: the database's
unique constraint on (campaign, recipient) drops the repeat, and ``duplicates_count`` counts it.

When the rows are in, the campaign's message ids are cut into chunks of ``chunk_size``, the units
of work of :mod:`.engine`.
"""

from __future__ import annotations

import csv
import logging
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from django.core.exceptions import ValidationError
from django.db import connections, models, router, transaction
from django.db.models import F
from django.db.models.constants import OnConflict
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import optout
from ..bulk import _prototype
from ..conf import DEFAULT_ACCOUNT, get_settings
from ..inputs import check_input, storable
from ..metadata import clean_links
from ..models import Campaign, CampaignChunk, CampaignRejection, Message, Template
from ..validation import clean_recipient, clean_template, clean_template_params

logger = logging.getLogger("django_whatsapp")

#: Rows per INSERT.
BATCH_SIZE = 2000
#: Messages per chunk: what one task sends.
CHUNK_SIZE = 500
#: Rejected rows kept per campaign (all are counted).
MAX_REJECTIONS_STORED = 10_000


@dataclass(frozen=True)
class Row:
    """One audience row: where it was (``line``), the number as given, its template
    parameters (``None``: the campaign's), or why it could not be read (``problem``)."""

    line: int
    number: Any
    params: Sequence[Any] | None = None
    problem: str = ""


def rows_from_iterable(recipients: Iterable[Any]) -> Iterator[Row]:
    """Rows from numbers or ``(number, params)`` pairs; ``line`` is the 1-based position."""
    for line, item in enumerate(recipients, start=1):
        if isinstance(item, tuple | list):
            if len(item) != 2 or isinstance(item[1], str | bytes):
                yield Row(line, item, problem=_("Give a number or a (number, params) pair."))
            else:
                yield Row(line, item[0], list(item[1]))
        else:
            yield Row(line, item)


def rows_from_csv(
    file: IO[str], *, number_column: str = "number", param_columns: Sequence[str] = ()
) -> Iterator[Row]:
    """Rows from a CSV text file with a header line: the number in ``number_column``, the
    template parameters in ``param_columns`` (in that order). ``line`` is the file's line
    number. The header is read now: raises ``ValidationError`` when it lacks a named column."""
    reader = csv.reader(file)
    header = next(reader, None)
    if header is None:
        raise ValidationError(_("The CSV file is empty: it needs a header line."))
    names = [name.strip() for name in header]
    missing = [c for c in (number_column, *param_columns) if c not in names]
    if missing:
        raise ValidationError(
            _("The CSV header has no column %(columns)s; it has: %(found)s.")
            % {"columns": ", ".join(missing), "found": ", ".join(names)}
        )
    number_at = names.index(number_column)
    params_at = [names.index(c) for c in param_columns]
    width = max([number_at, *params_at]) + 1

    def rows() -> Iterator[Row]:
        for record in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in record):
                continue  # blank lines are not rows
            if len(record) < width:
                yield Row(
                    line,
                    ",".join(record),
                    problem=_("The row has %(given)d columns; %(expected)d are needed.")
                    % {"given": len(record), "expected": width},
                )
                continue
            params = [record[i] for i in params_at] if params_at else None
            yield Row(line, record[number_at], params)

    return rows()


#: The reason a row whose recipient opted out is skipped with.
OPTED_OUT_REASON = gettext_lazy("The recipient opted out: nothing is sent to them.")


def create_campaign(
    name: str,
    recipients: Iterable[Any],
    *,
    text: str | None = None,
    file_url: str | None = None,
    template: Template | str | None = None,
    params: Sequence[Any] = (),
    header: str | None = None,
    source_addr: str | None = None,
    send_at: datetime | None = None,
    created_by: Any = None,
    chunk_size: int = CHUNK_SIZE,
    account: str | None = None,
    # The caller's own data, on every message (see services.send_message):
    metadata: dict[str, Any] | None = None,
    tags: Sequence[str] | None = None,
    target: models.Model | None = None,
) -> Campaign:
    """Create a ``draft`` campaign of one text, image (``file_url``, ``text`` its caption) or
    template (with ``params`` for everyone, or each recipient's own, and ``header``), and store
    its audience (numbers, or ``(number, params)`` pairs, read as a stream) as ``draft``
    messages. Raises ``ValidationError`` (nothing stored) when the content is not valid; bad
    rows are reported on the campaign (``rejected_count``, ``rejections``), recipients who opted
    out among them (skipped, never stored to be sent). ``account`` (a name in ``ACCOUNTS``; the
    default account when not given) sends every message through that account's gateway, key,
    sender and rate budget. ``metadata``, ``tags`` and ``target`` are stored on every message, as
    for :func:`~django_whatsapp.services.send_message`. Start it with ``start_campaign``."""
    return create_from_rows(
        name,
        rows_from_iterable(recipients),
        text=text,
        file_url=file_url,
        template=template,
        params=params,
        header=header,
        source_addr=source_addr,
        send_at=send_at,
        created_by=created_by,
        chunk_size=chunk_size,
        account=account,
        metadata=metadata,
        tags=tags,
        target=target,
    )


def campaign_from_csv(
    name: str,
    file: IO[str],
    *,
    number_column: str = "number",
    param_columns: Sequence[str] = (),
    **content: Any,
) -> Campaign:
    """Create a campaign (:func:`create_campaign`) whose audience is a CSV text file, read as a
    stream: the number in ``number_column``, each recipient's template parameters in
    ``param_columns``. Rejected rows carry their line number in the file. Raises
    ``ValidationError`` (nothing stored) for a header without those columns."""
    rows = rows_from_csv(file, number_column=number_column, param_columns=param_columns)
    return create_from_rows(name, rows, **content)


def create_from_rows(
    name: str,
    rows: Iterator[Row],
    *,
    text: str | None = None,
    file_url: str | None = None,
    template: Template | str | None = None,
    params: Sequence[Any] = (),
    header: str | None = None,
    source_addr: str | None = None,
    send_at: datetime | None = None,
    created_by: Any = None,
    chunk_size: int = CHUNK_SIZE,
    account: str | None = None,
    # The caller's own data, on every message (see services.send_message):
    metadata: dict[str, Any] | None = None,
    tags: Sequence[str] | None = None,
    target: models.Model | None = None,
) -> Campaign:
    """:func:`create_campaign` for rows already read (:func:`rows_from_iterable`,
    :func:`rows_from_csv`)."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    if not str(name or "").strip():
        raise ValidationError({"name": _("Give the campaign a name.")})
    try:
        check_input(str(name))
    except ValidationError as error:
        raise ValidationError({"name": error}) from None
    # An unknown account is a configuration error, raised before anything is stored.
    account = get_settings(account).account
    links = clean_links(metadata, tags, target)
    prototype = _content(
        text, file_url, template, params, header, source_addr, created_by, account, links
    )
    campaign = Campaign.objects.create(
        name=str(name).strip()[:255],
        message_type=prototype.message_type,
        text=prototype.text,
        file_url=prototype.file_url,
        template=prototype.template,
        params=[str(p) for p in params],
        header=header or "",
        source_addr=prototype.source_addr,
        account=account,
        send_at=send_at,
        created_by=created_by,
    )
    _store(campaign, rows, prototype, header)
    plan_chunks(campaign, chunk_size)
    logger.info(
        "WhatsApp campaign %s created: %d recipients, %d rejected rows, %d duplicates",
        campaign.pk,
        campaign.recipients_count,
        campaign.rejected_count,
        campaign.duplicates_count,
    )
    return campaign


def _content(
    text: str | None,
    file_url: str | None,
    template: Template | str | None,
    params: Sequence[Any],
    header: str | None,
    source_addr: str | None,
    created_by: Any,
    account: str = DEFAULT_ACCOUNT,
    links: dict[str, Any] | None = None,
) -> Message:
    """The validated message every recipient's copy starts from; raises ``ValidationError``.
    A template without campaign-wide ``params`` takes each recipient's: stand-ins are checked
    here, and the prototype's body parameters stay empty."""
    stand_in = False
    if template is not None and not params and text is None and file_url is None:
        try:
            template = clean_template(template)
        except ValidationError as error:
            raise ValidationError({"template": error}) from error
        params = ["-"] * template.placeholder_count
        stand_in = bool(params)
    message = _prototype(
        text=text,
        file_url=file_url,
        template=template,
        params=params,
        header=header,
        source_addr=source_addr,
        created_by=created_by,
        account=account,
        links=links or {},
    )
    if message.template is not None:
        message.template_params = clean_template_params(message.template, params, header)
        if stand_in:
            message.template_params["body"] = []
    return message


class _Inserter:
    """Stores a campaign's messages with plain multi-row INSERTs that skip repeated recipients
    (``ON CONFLICT DO NOTHING`` / ``INSERT OR IGNORE``). Every column's database value comes from
    one prototype ``Message`` prepared once, as the ORM would prepare it; only the UUID, the
    recipient and the template parameters change per row. (``bulk_create`` prepares each value
    of each row through the ORM: most of an import's time.)"""

    def __init__(self, prototype: Message, now: datetime) -> None:
        self.alias = router.db_for_write(Message)
        self.connection = connections[self.alias]
        ops = self.connection.ops
        self.fields = [f for f in Message._meta.concrete_fields if not f.primary_key]
        prototype.status, prototype.status_changed_at = Message.Status.DRAFT, now
        self.base = [
            f.get_db_prep_save(f.pre_save(prototype, True), self.connection) for f in self.fields
        ]
        names = [f.name for f in self.fields]
        self.uuid_at = names.index("uuid")
        self.recipient_at = names.index("destination_addr")
        self.params_at = names.index("template_params")
        self.uuid_field = self.fields[self.uuid_at]
        self.params_field = self.fields[self.params_at]
        columns = ", ".join(ops.quote_name(f.column or f.name) for f in self.fields)
        self.head = (
            f"{ops.insert_statement(on_conflict=OnConflict.IGNORE)} "
            f"{ops.quote_name(Message._meta.db_table)} ({columns}) VALUES "
        )
        self.tail = ops.on_conflict_suffix_sql(self.fields, OnConflict.IGNORE, None, None)
        self.row_sql = "(" + ", ".join(["%s"] * len(self.fields)) + ")"
        # Every database takes at least 30,000 parameters in one statement.
        self.rows_per_statement = max(1, 30_000 // len(self.fields))

    def values(self, recipient: str, params: dict[str, Any]) -> list[Any]:
        row = list(self.base)
        row[self.uuid_at] = self.uuid_field.get_db_prep_save(uuid.uuid4(), self.connection)
        row[self.recipient_at] = recipient
        row[self.params_at] = self.params_field.get_db_prep_save(params, self.connection)
        return row

    def insert(self, rows: list[list[Any]]) -> None:
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            for start in range(0, len(rows), self.rows_per_statement):
                part = rows[start : start + self.rows_per_statement]
                sql = self.head + ", ".join([self.row_sql] * len(part)) + " " + self.tail
                cursor.execute(sql, [value for row in part for value in row])


def _store(campaign: Campaign, rows: Iterator[Row], prototype: Message, header: Any) -> None:
    now = timezone.now()
    prototype.campaign = campaign
    inserter = _Inserter(prototype, now)
    batch: list[tuple[str, Any, Row]] = []
    rejected: list[CampaignRejection] = []
    read = valid = rejected_total = 0
    template = prototype.template

    def reject(line: int, value: Any, reason: str) -> None:
        nonlocal rejected_total
        rejected_total += 1
        if rejected_total <= MAX_REJECTIONS_STORED:
            rejected.append(
                CampaignRejection(
                    campaign=campaign, line=line, value=storable(str(value))[:255], reason=reason
                )
            )

    def flush() -> None:
        nonlocal batch, rejected, valid
        if batch:
            # Recipients who opted out are reported as skipped rows, never stored to be sent.
            opted_out = optout.opted_out_numbers(recipient for recipient, _p, _r in batch)
            for recipient, _params, row in batch:
                if recipient in opted_out:
                    valid -= 1
                    reject(row.line, row.number, str(OPTED_OUT_REASON))
            kept = [(r, p) for r, p, _row in batch if r not in opted_out]
            if kept:
                inserter.insert([inserter.values(r, p) for r, p in kept])
        if rejected:  # only rows within MAX_REJECTIONS_STORED were kept
            CampaignRejection.objects.bulk_create(rejected)
        Campaign.objects.filter(pk=campaign.pk).update(
            rows_read=read, rejected_count=rejected_total
        )
        batch, rejected = [], []

    for row in rows:
        read += 1
        try:
            if row.problem:
                raise ValidationError(row.problem)
            recipient = clean_recipient(row.number)
            params = prototype.template_params
            if template is not None and row.params is not None:
                params = clean_template_params(template, row.params, header)
            elif template is not None and not params.get("body") and template.placeholder_count:
                raise ValidationError(_("This row has no template parameters."))
        except ValidationError as error:
            reject(row.line, row.number, " ".join(error.messages))
        else:
            valid += 1
            batch.append((recipient, params, row))
        if len(batch) >= BATCH_SIZE or len(rejected) >= BATCH_SIZE:
            flush()
    flush()
    stored = Message.objects.filter(campaign=campaign).count()
    Campaign.objects.filter(pk=campaign.pk).update(
        recipients_count=stored, duplicates_count=valid - stored
    )
    campaign.rows_read, campaign.rejected_count = read, rejected_total
    campaign.recipients_count, campaign.duplicates_count = stored, valid - stored


def plan_chunks(campaign: Campaign, chunk_size: int = CHUNK_SIZE) -> int:
    """Cut the campaign's not-yet-planned message ids into chunks of ``chunk_size`` (a
    streaming pass over the ids); return how many chunks were made."""
    last_planned = (
        CampaignChunk.objects.filter(campaign=campaign)
        .order_by("-last_id")
        .values_list("last_id", flat=True)
        .first()
        or 0
    )
    ids = (
        Message.objects.filter(campaign=campaign, pk__gt=last_planned)
        .order_by("pk")
        .values_list("pk", flat=True)
        .iterator(chunk_size=5000)
    )
    chunks: list[CampaignChunk] = []
    made = 0
    current: list[int] = []

    def cut() -> None:
        nonlocal current
        chunks.append(
            CampaignChunk(
                campaign=campaign, first_id=current[0], last_id=current[-1], size=len(current)
            )
        )
        current = []

    for pk in ids:
        current.append(pk)
        if len(current) >= chunk_size:
            cut()
        if len(chunks) >= 500:
            CampaignChunk.objects.bulk_create(chunks)
            made += len(chunks)
            chunks = []
    if current:
        cut()
    CampaignChunk.objects.bulk_create(chunks)
    made += len(chunks)
    Campaign.objects.filter(pk=campaign.pk).update(updated_at=F("updated_at"))
    return made


# -- a look before creating (the admin's preview) ----------------------------------------------

#: Rows :func:`preview_csv` reads at most (each one validated, none stored).
PREVIEW_MAX_ROWS = 100_000


@dataclass(frozen=True)
class AudiencePreview:
    """What a CSV audience would give, found without storing anything: the first valid rows
    as unsaved messages, the first rejected rows (unsaved ``CampaignRejection``), and the counts
    of the rows read. ``complete`` is false when the reading stopped at ``max_rows``. Repeated
    numbers are only found when the campaign is created."""

    messages: list[Message]
    rejected: list[CampaignRejection]
    rows_read: int
    valid: int
    rejected_count: int
    complete: bool


def csv_columns(file: IO[str]) -> list[str]:
    """The names in a CSV text file's header line (empty for an empty file); the file is
    rewound to its start."""
    header = next(csv.reader(file), None)
    file.seek(0)
    return [name.strip() for name in header or []]


def preview_csv(
    file: IO[str],
    *,
    number_column: str = "number",
    param_columns: Sequence[str] = (),
    first: int = 5,
    max_rejections: int = 100,
    max_rows: int = PREVIEW_MAX_ROWS,
    text: str | None = None,
    file_url: str | None = None,
    template: Template | str | None = None,
    params: Sequence[Any] = (),
    header: str | None = None,
    source_addr: str | None = None,
) -> AudiencePreview:
    """Read a CSV audience as :func:`campaign_from_csv` would, validating the content and each
    row with the same rules, and store nothing: raises ``ValidationError`` for bad content or a
    header without the named columns; the bad rows are returned (line, value, reason)."""
    prototype = _content(text, file_url, template, params, header, source_addr, None)
    rows = rows_from_csv(file, number_column=number_column, param_columns=param_columns)
    messages: list[Message] = []
    rejected: list[CampaignRejection] = []
    read = valid = bad = 0
    complete = True
    for row in rows:
        if read >= max_rows:
            complete = False
            break
        read += 1
        try:
            if row.problem:
                raise ValidationError(row.problem)
            recipient = clean_recipient(row.number)
            values = prototype.template_params
            if prototype.template is not None and row.params is not None:
                values = clean_template_params(prototype.template, row.params, header)
            elif (
                prototype.template is not None
                and not values.get("body")
                and prototype.template.placeholder_count
            ):
                raise ValidationError(_("This row has no template parameters."))
        except ValidationError as error:
            bad += 1
            if len(rejected) < max_rejections:
                reason = " ".join(error.messages)
                rejected.append(
                    CampaignRejection(line=row.line, value=str(row.number)[:255], reason=reason)
                )
            continue
        valid += 1
        if len(messages) < first:
            messages.append(
                Message(
                    message_type=prototype.message_type,
                    source_addr=prototype.source_addr,
                    destination_addr=recipient,
                    text=prototype.text,
                    file_url=prototype.file_url,
                    template=prototype.template,
                    template_params=values,
                )
            )
    return AudiencePreview(messages, rejected, read, valid, bad, complete)
