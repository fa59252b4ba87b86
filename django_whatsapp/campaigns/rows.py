"""The rows of a campaign's audience and the one way they are sorted, shared by the import
(:mod:`.audience`) and its preview (:mod:`.preview`).

Every row ends in exactly one of three piles, in the order of the audience:

- **rejected**: the row cannot be sent (a bad number, a missing or empty parameter, a NUL, a
  recipient who opted out), with its reason;
- **repeated**: its number was already taken by an earlier row (one who opted out included), with
  :data:`REPEATED_REASON`;
- **kept**: one message.

Reasons are stored in English (the import checks rows with translation off) and shown in the
reader's language by :func:`reason_in_words`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext

from .. import optout
from ..bulk import _prototype
from ..conf import DEFAULT_ACCOUNT
from ..models import Message, Template
from ..validation import clean_recipient, clean_template, clean_template_params
from .csvfile import TOO_FEW_COLUMNS, TOO_MANY_COLUMNS, UNSTORABLE, Row, unstorable

#: Rows sorted at a time (one opt-out query each), and per INSERT.
BATCH_SIZE = 2000
#: Where a message keeps its CSV row's other columns (``metadata[CSV_METADATA_KEY]``): the
#: campaign's export lists them. A cell is kept up to ``CSV_CELL_KEPT`` characters.
CSV_METADATA_KEY = "csv"
CSV_CELL_KEPT = 1000

#: The reasons a row is set aside (English; :func:`reason_in_words` translates them).
OPTED_OUT_REASON = gettext_noop("The recipient opted out: nothing is sent to them.")
REPEATED_REASON = gettext_noop("This number is listed more than once: it gets one message.")
NOT_A_PAIR = gettext_noop("Give a number or a (number, params) pair.")
NO_PARAMS = gettext_noop("This row has no template parameters.")
EMPTY_COLUMN = gettext_noop(
    "The column “%(column)s” is empty: the template's placeholder {{%(number)d}} needs a value."
)
#: What separates two reasons of one row in the stored text.
REASON_SEPARATOR = "\n"


# -- rows --------------------------------------------------------------------------------------


def rows_from_iterable(recipients: Iterable[Any]) -> Iterator[Row]:
    """Rows from numbers or ``(number, params)`` pairs; ``line`` is the 1-based position."""
    for line, item in enumerate(recipients, start=1):
        if isinstance(item, tuple | list):
            if len(item) != 2 or isinstance(item[1], str | bytes):
                yield Row(line, item, problem=NOT_A_PAIR)
            else:
                yield Row(line, item[0], list(item[1]))
        else:
            yield Row(line, item)


# -- reasons, stored in English and shown translated -------------------------------------------

#: The reasons with values, as the import stores them (English) and as they are translated.
#: (Reasons without values are translated by the catalogue as they are.)
_REASON_FORMS: list[tuple[str, str | None, str | None]] = [
    (TOO_FEW_COLUMNS, None, None),
    (TOO_MANY_COLUMNS, None, None),
    (EMPTY_COLUMN, None, None),
    # django_whatsapp.validation's, for a row's number and parameters:
    ("The recipient has %(count)d digits; at most %(max)d are allowed.", None, None),
    (
        "The template %(name)s takes %(expected)d parameter; %(given)d were given.",
        "The template %(name)s takes %(expected)d parameters; %(given)d were given.",
        "expected",
    ),
]
_PLACEHOLDER = re.compile(r"%\((\w+)\)([sd])")


def _pattern(msgid: str) -> re.Pattern[str]:
    parts, last = [], 0
    for match in _PLACEHOLDER.finditer(msgid):
        parts.append(re.escape(msgid[last : match.start()]))
        value = r"-?\d{1,18}" if match.group(2) == "d" else r".{0,300}?"
        parts.append(f"(?P<{match.group(1)}>{value})")
        last = match.end()
    parts.append(re.escape(msgid[last:]))
    return re.compile("".join(parts))


_REASON_PATTERNS = [
    (pattern, msgid, plural, count)
    for msgid, plural, count in _REASON_FORMS
    for pattern in (_pattern(msgid), *([_pattern(plural)] if plural else []))
]


def _part_in_words(part: str) -> str:
    for pattern, msgid, plural, count in _REASON_PATTERNS:
        match = pattern.fullmatch(part)
        if match is None:
            continue
        values: dict[str, Any] = {
            name: int(value) if re.fullmatch(r"-?\d+", value) else value
            for name, value in match.groupdict().items()
        }
        if plural is not None and count is not None:
            return ngettext(msgid, plural, values[count]) % values
        return _(msgid) % values
    return _(part) if part else part


def reason_in_words(stored: str) -> str:
    """A stored reason (English, its parts separated by :data:`REASON_SEPARATOR`) in the
    active language. Text it does not know is shown as it is."""
    return " ".join(_part_in_words(part) for part in stored.split(REASON_SEPARATOR))


def _english(error: ValidationError) -> str:
    """The messages of ``error`` (raised while translation was off) as one stored reason."""
    if hasattr(error, "error_dict"):
        parts = [e for errors in error.error_dict.values() for e in errors]
    else:
        parts = list(error.error_list)
    texts = []
    for part in parts:
        message = str(part.message)
        texts.append(message % part.params if part.params else message)
    return REASON_SEPARATOR.join(texts)


# -- sorting rows into kept, repeated and rejected ---------------------------------------------


@dataclass
class Candidate:
    """A row whose number and parameters are good: kept unless repeated or opted out."""

    row: Row
    recipient: str
    params: dict[str, Any]


class Sorter:
    """Checks each row (:meth:`check`) and sorts the good ones, batch by batch and in order,
    into kept, repeated and opted out (:meth:`sort`). ``taken(numbers)`` says which of
    ``numbers`` earlier batches kept."""

    def __init__(
        self, prototype: Message, header: Any, taken: Callable[[list[str]], set[str]]
    ) -> None:
        self.prototype = prototype
        self.template = prototype.template
        self.header = header
        self.taken = taken
        self.opted_out: set[str] = set()  # numbers already set aside as opted out

    def check(self, row: Row) -> Candidate | str:
        """The row as a candidate, or why it is rejected (English)."""
        with translation.override(None):  # reasons are stored in English
            try:
                return self._check(row)
            except ValidationError as error:
                return _english(error)

    def _check(self, row: Row) -> Candidate | str:
        if row.problem:
            return row.problem % row.problem_params if row.problem_params else row.problem
        if unstorable(str(row.number)):
            return UNSTORABLE
        recipient = clean_recipient(row.number)
        params = self.prototype.template_params
        template = self.template
        if template is not None and row.params is not None:
            values = [str(value) for value in row.params]
            if any(unstorable(value) for value in values):
                return UNSTORABLE
            for number, (value, column) in enumerate(
                zip(values, row.param_columns, strict=False), 1
            ):
                if not value.strip():
                    return EMPTY_COLUMN % {"column": column, "number": number}
            params = clean_template_params(template, values, self.header)
        elif template is not None and not params.get("body") and template.placeholder_count:
            return NO_PARAMS
        return Candidate(row, recipient, params)

    def sort(self, batch: list[Candidate]) -> tuple[list[Candidate], list[tuple[Candidate, str]]]:
        """The batch's kept candidates, and the others with their reason (repeated, opted
        out), in the batch's order."""
        numbers = list(dict.fromkeys(c.recipient for c in batch))
        before = self.taken(numbers) | (self.opted_out & set(numbers))
        opted_out = optout.opted_out_numbers(n for n in numbers if n not in before)
        seen: set[str] = set()
        kept: list[Candidate] = []
        aside: list[tuple[Candidate, str]] = []
        for candidate in batch:
            number = candidate.recipient
            if number in before or number in seen:
                aside.append((candidate, REPEATED_REASON))
                continue
            seen.add(number)
            if number in opted_out:
                self.opted_out.add(number)
                aside.append((candidate, OPTED_OUT_REASON))
            else:
                kept.append(candidate)
        return kept, aside


def row_columns(row: Row, number_column: str | None) -> dict[str, str] | None:
    """The CSV row's cells but the number, each cut to ``CSV_CELL_KEPT`` characters."""
    if not row.columns:
        return None
    kept = {
        name: value if len(value) <= CSV_CELL_KEPT else value[:CSV_CELL_KEPT] + "…"
        for name, value in row.columns.items()
        if name != number_column
    }
    return kept or None


def prototype_for(
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
