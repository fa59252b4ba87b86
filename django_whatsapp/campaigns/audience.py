"""A campaign's audience, streamed in: from an iterable of numbers or ``(number, params)`` pairs,
or from a CSV file (:mod:`.csvfile`).

Creating a campaign is all or nothing: the campaign, its messages, its rejected and repeated
rows and its chunks are written in one transaction, so a file that cannot be read to its end (bad
quoting, an oversized field, an encoding error: ``ValidationError``), an error of the database or
a process killed half-way leaves no campaign behind.

The rows are read one at a time and stored in batches of ``BATCH_SIZE`` (plain multi-row
INSERTs), so memory stays flat however long the audience is. Each row is sorted (:mod:`.rows`)
into rejected, repeated or kept, and the campaign's counts are those piles (``rows_read =
recipients_count + rejected_count + duplicates_count``). Up to ``MAX_REJECTIONS_STORED`` rows of
each of the first two piles are kept per campaign as :class:`CampaignRejection` (a repeated row
with :data:`~.rows.REPEATED_REASON`); all are counted. A CSV row's other cells are kept in its
message's metadata (``metadata["csv"]``), for the campaign's export.

When the rows are in, the campaign's message ids are cut into chunks of ``chunk_size``, the units
of work of :mod:`.engine`.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connections, models, router, transaction
from django.db.models import F
from django.db.models.constants import OnConflict
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import expiry
from ..conf import get_settings
from ..inputs import check_input
from ..metadata import MAX_METADATA_BYTES, clean_links
from ..models import Campaign, CampaignChunk, CampaignRejection, Message, Template
from .csvfile import CsvAudience, Row, TextSource, csv_columns, rows_from_csv, storable
from .hours import clean as clean_hours
from .preview import PREVIEW_MAX_ROWS, AudiencePreview, preview_csv
from .rows import (
    BATCH_SIZE,
    CSV_METADATA_KEY,
    OPTED_OUT_REASON,
    REPEATED_REASON,
    Candidate,
    Sorter,
    prototype_for,
    reason_in_words,
    row_columns,
    rows_from_iterable,
)

__all__ = [
    "BATCH_SIZE",
    "CHUNK_SIZE",
    "CSV_METADATA_KEY",
    "MAX_REJECTIONS_STORED",
    "OPTED_OUT_REASON",
    "PREVIEW_MAX_ROWS",
    "REPEATED_REASON",
    "AudiencePreview",
    "CsvAudience",
    "Row",
    "campaign_from_csv",
    "create_campaign",
    "create_from_rows",
    "csv_columns",
    "plan_chunks",
    "preview_csv",
    "reason_in_words",
    "rows_from_csv",
    "rows_from_iterable",
]

logger = logging.getLogger("django_whatsapp")

#: Messages per chunk: what one task sends.
CHUNK_SIZE = 500
#: Rejected rows, and repeated rows, kept per campaign (all are counted).
MAX_REJECTIONS_STORED = 10_000


# -- creating a campaign -----------------------------------------------------------------------


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
    # WhatsApp's limits (see create_from_rows):
    expires_at: datetime | None = None,
    expires_in: timedelta | None = None,
    sending_hours: Any = None,
) -> Campaign:
    """Create a ``draft`` campaign of one text, image (``file_url``, ``text`` its caption) or
    template (with ``params`` for everyone, or each recipient's own, and ``header``), and store
    its audience (numbers, or ``(number, params)`` pairs, read as a stream) as ``draft``
    messages, all or nothing. Raises ``ValidationError`` (nothing stored) when the content is
    not valid; bad rows are reported on the campaign (``rejected_count``, ``rejections``),
    recipients who opted out among them (skipped, never stored to be sent), and repeated numbers
    counted (``duplicates_count``) and listed. ``account`` (a name in ``ACCOUNTS``; the default
    account when not given) sends every message through that account's gateway, key, sender and
    rate budget. ``metadata``, ``tags`` and ``target`` are stored on every message, as for
    :func:`~django_whatsapp.services.send_message`. ``expires_at`` or ``expires_in``: its
    recipients not sent by then are not sent at all. ``sending_hours`` (``("09:00", "20:00")``,
    a pair of ``HH:MM`` or ``datetime.time``): each recipient is sent only between those hours
    in their own time zone (:mod:`.hours`). Start it with ``start_campaign``."""
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
        expires_at=expires_at,
        expires_in=expires_in,
        sending_hours=sending_hours,
    )


def campaign_from_csv(
    name: str,
    file: TextSource,
    *,
    number_column: str = "number",
    param_columns: Sequence[str] = (),
    **content: Any,
) -> Campaign:
    """Create a campaign (:func:`create_campaign`) whose audience is a CSV text file, read as a
    stream: the number in ``number_column``, each recipient's template parameters in
    ``param_columns``; each message keeps the row's other cells in its metadata (under
    :data:`CSV_METADATA_KEY`). Rejected rows carry the line they start on. Raises
    ``ValidationError``, and stores nothing, for a header without those columns or a file that
    cannot be read to its end (see :mod:`.csvfile`)."""
    rows = rows_from_csv(file, number_column=number_column, param_columns=param_columns)
    return create_from_rows(name, rows, number_column=number_column, **content)


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
    number_column: str | None = None,
    expires_at: datetime | None = None,
    expires_in: timedelta | None = None,
    sending_hours: Any = None,
) -> Campaign:
    """:func:`create_campaign` for rows already read (:func:`rows_from_iterable`,
    :func:`rows_from_csv`), in one transaction."""
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
    expires = expiry.clean(expires_at, expires_in)
    hours = clean_hours(sending_hours)
    prototype = prototype_for(
        text, file_url, template, params, header, source_addr, created_by, account, links
    )
    prototype.expires_at = expires
    with transaction.atomic(using=router.db_for_write(Campaign)):
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
            expires_at=expires,
            sending_hours_start=hours.start if hours else None,
            sending_hours_end=hours.end if hours else None,
        )
        _store(campaign, rows, prototype, header, number_column)
        plan_chunks(campaign, chunk_size)
    logger.info(
        "WhatsApp campaign %s created: %d recipients, %d rejected rows, %d duplicates",
        campaign.pk,
        campaign.recipients_count,
        campaign.rejected_count,
        campaign.duplicates_count,
    )
    return campaign


class _Inserter:
    """Stores a campaign's messages with plain multi-row INSERTs. Every column's database value
    comes from one prototype ``Message`` prepared once, as the ORM would prepare it; only the
    UUID, the recipient, the template parameters and (for a CSV row with other columns) the
    metadata change per row. (``bulk_create`` prepares each value of each row through the ORM:
    most of an import's time.) Repeated recipients never reach it (:class:`_Sorter`); ``ON
    CONFLICT DO NOTHING`` stays as the database's own guard."""

    def __init__(self, prototype: Message, now: datetime) -> None:
        self.alias = router.db_for_write(Message)
        self.connection = connections[self.alias]
        ops = self.connection.ops
        self.fields = [f for f in Message._meta.concrete_fields if not f.primary_key]
        prototype.status, prototype.status_changed_at = Message.Status.DRAFT, now
        self.base = [
            f.get_db_prep_save(f.pre_save(prototype, True), self.connection) for f in self.fields
        ]
        self.metadata = dict(prototype.metadata or {})
        names = [f.name for f in self.fields]
        self.uuid_at = names.index("uuid")
        self.recipient_at = names.index("destination_addr")
        self.params_at = names.index("template_params")
        self.metadata_at = names.index("metadata")
        self.uuid_field = self.fields[self.uuid_at]
        self.params_field = self.fields[self.params_at]
        self.metadata_field = self.fields[self.metadata_at]
        columns = ", ".join(ops.quote_name(f.column or f.name) for f in self.fields)
        self.head = (
            f"{ops.insert_statement(on_conflict=OnConflict.IGNORE)} "
            f"{ops.quote_name(Message._meta.db_table)} ({columns}) VALUES "
        )
        self.tail = ops.on_conflict_suffix_sql(self.fields, OnConflict.IGNORE, None, None)
        self.row_sql = "(" + ", ".join(["%s"] * len(self.fields)) + ")"
        # Every database takes at least 30,000 parameters in one statement.
        self.rows_per_statement = max(1, 30_000 // len(self.fields))

    def values(
        self, recipient: str, params: dict[str, Any], columns: dict[str, str] | None
    ) -> list[Any]:
        row = list(self.base)
        row[self.uuid_at] = self.uuid_field.get_db_prep_save(uuid.uuid4(), self.connection)
        row[self.recipient_at] = recipient
        row[self.params_at] = self.params_field.get_db_prep_save(params, self.connection)
        if columns:
            metadata = {**self.metadata, CSV_METADATA_KEY: columns}
            if len(json.dumps(metadata).encode()) <= MAX_METADATA_BYTES:
                row[self.metadata_at] = self.metadata_field.get_db_prep_save(
                    metadata, self.connection
                )
        return row

    def insert(self, rows: list[list[Any]]) -> None:
        with self.connection.cursor() as cursor:
            for start in range(0, len(rows), self.rows_per_statement):
                part = rows[start : start + self.rows_per_statement]
                sql = self.head + ", ".join([self.row_sql] * len(part)) + " " + self.tail
                cursor.execute(sql, [value for row in part for value in row])


def _store(
    campaign: Campaign,
    rows: Iterator[Row],
    prototype: Message,
    header: Any,
    number_column: str | None,
) -> None:
    """Read every row, store the kept ones as messages and the others as rejections, and count
    them on the campaign (inside :func:`create_from_rows`'s transaction)."""
    now = timezone.now()
    prototype.campaign = campaign
    inserter = _Inserter(prototype, now)

    def taken(numbers: list[str]) -> set[str]:
        return set(
            Message.objects.filter(campaign=campaign, destination_addr__in=numbers).values_list(
                "destination_addr", flat=True
            )
        )

    sorter = Sorter(prototype, header, taken)
    batch: list[Candidate] = []
    aside: list[CampaignRejection] = []
    read = kept = rejected = repeated = 0

    def set_aside(row: Row, reason: str) -> None:
        nonlocal rejected, repeated
        if reason == REPEATED_REASON:
            repeated += 1
            if repeated > MAX_REJECTIONS_STORED:
                return
        else:
            rejected += 1
            if rejected > MAX_REJECTIONS_STORED:
                return
        value = storable(str(row.number))[:255]
        aside.append(
            CampaignRejection(campaign=campaign, line=row.line, value=value, reason=reason)
        )

    def flush() -> None:
        nonlocal batch, aside, kept
        if batch:
            good, others = sorter.sort(batch)
            for candidate, reason in others:
                set_aside(candidate.row, reason)
            if good:
                inserter.insert(
                    [
                        inserter.values(c.recipient, c.params, row_columns(c.row, number_column))
                        for c in good
                    ]
                )
                kept += len(good)
        if aside:
            CampaignRejection.objects.bulk_create(aside)
        batch, aside = [], []

    for row in rows:
        read += 1
        checked = sorter.check(row)
        if isinstance(checked, str):
            set_aside(row, checked)
        else:
            batch.append(checked)
        if len(batch) >= BATCH_SIZE or len(aside) >= BATCH_SIZE:
            flush()
    flush()
    Campaign.objects.filter(pk=campaign.pk).update(
        rows_read=read, recipients_count=kept, rejected_count=rejected, duplicates_count=repeated
    )
    campaign.rows_read, campaign.rejected_count = read, rejected
    campaign.recipients_count, campaign.duplicates_count = kept, repeated


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
