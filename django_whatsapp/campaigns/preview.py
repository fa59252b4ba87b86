"""A look at a CSV audience before a campaign is made from it (the admin's preview): the file
read and its rows sorted exactly as :func:`~.audience.campaign_from_csv` would (the opt-outs as
they are now), with nothing stored, so the preview and the campaign tell the same numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..conf import get_settings
from ..models import CampaignRejection, Message, Template
from .csvfile import Row, TextSource, rows_from_csv, storable
from .rows import BATCH_SIZE, REPEATED_REASON, Candidate, Sorter, prototype_for

#: Rows :func:`preview_csv` reads at most (each one validated, none stored).
PREVIEW_MAX_ROWS = 100_000


@dataclass(frozen=True)
class AudiencePreview:
    """What a CSV audience would give, found without storing anything, sorted as the campaign
    would be: the first kept rows as unsaved messages, the first rejected and the first
    repeated rows (unsaved ``CampaignRejection``), and the counts (``rows_read = valid +
    rejected_count + repeated_count``). ``complete`` is false when the reading stopped at
    ``max_rows``."""

    messages: list[Message]
    rejected: list[CampaignRejection]
    rows_read: int
    valid: int
    rejected_count: int
    complete: bool
    repeated: list[CampaignRejection]
    repeated_count: int


def preview_csv(
    file: TextSource,
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
    account: str | None = None,
) -> AudiencePreview:
    """Read a CSV audience as :func:`campaign_from_csv` would, checking the content and sorting
    each row with the same rules (the opt-outs as they are now), and store nothing: raises
    ``ValidationError`` for bad content, a header without the named columns or a file that
    cannot be read; the rejected and repeated rows are returned (line, value, reason)."""
    account = get_settings(account).account
    prototype = prototype_for(text, file_url, template, params, header, source_addr, None, account)
    rows = rows_from_csv(file, number_column=number_column, param_columns=param_columns)
    kept_numbers: set[str] = set()

    def taken(numbers: list[str]) -> set[str]:
        return kept_numbers.intersection(numbers)

    sorter = Sorter(prototype, header, taken)
    messages: list[Message] = []
    rejected: list[CampaignRejection] = []
    repeated: list[CampaignRejection] = []
    counts = {"read": 0, "kept": 0, "rejected": 0, "repeated": 0}
    batch: list[Candidate] = []

    def set_aside(row: Row, reason: str) -> None:
        pile, shown = (
            ("repeated", repeated) if reason == REPEATED_REASON else ("rejected", rejected)
        )
        counts[pile] += 1
        if len(shown) < max_rejections:
            value = storable(str(row.number))[:255]
            shown.append(CampaignRejection(line=row.line, value=value, reason=reason))

    def flush() -> None:
        nonlocal batch
        good, others = sorter.sort(batch)
        for candidate, reason in others:
            set_aside(candidate.row, reason)
        for candidate in good:
            kept_numbers.add(candidate.recipient)
            if len(messages) < first:
                messages.append(
                    Message(
                        message_type=prototype.message_type,
                        source_addr=prototype.source_addr,
                        destination_addr=candidate.recipient,
                        text=prototype.text,
                        file_url=prototype.file_url,
                        template=prototype.template,
                        template_params=candidate.params,
                        account=account,
                    )
                )
        counts["kept"] += len(good)
        batch = []

    complete = True
    for row in rows:
        if counts["read"] >= max_rows:
            complete = False
            break
        counts["read"] += 1
        checked = sorter.check(row)
        if isinstance(checked, str):
            set_aside(row, checked)
        else:
            batch.append(checked)
        if len(batch) >= BATCH_SIZE:
            flush()
    flush()
    return AudiencePreview(
        messages=messages,
        rejected=rejected,
        rows_read=counts["read"],
        valid=counts["kept"],
        rejected_count=counts["rejected"],
        complete=complete,
        repeated=repeated,
        repeated_count=counts["repeated"],
    )
