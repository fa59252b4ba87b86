"""Reading a campaign's audience from a CSV text file, to its end or not at all.

The file is read as a stream with :mod:`csv` in strict mode. What makes the *file* unreadable
raises ``ValidationError`` naming the line, so that a campaign is never made from half a file:

- bad quoting (a quote never closed, text after a closing quote);
- a field longer than :func:`csv.field_size_limit` (131,072 characters by default);
- a line longer than :data:`MAX_LINE_LENGTH` characters;
- bytes that are not UTF-8 (a text file opened with ``encoding="utf-8-sig"``, or a binary file
  read through :class:`Utf8Lines`, which finds the very line);
- a header with more than :data:`MAX_COLUMNS` columns, a NUL or an empty name, or without the
  columns named.

What makes one *row* unusable is that row's problem (``Row.problem``), and the import goes on: too
few or too many columns, a NUL or a lone surrogate in a cell. Blank lines are not rows.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from .. import inputs

#: The most columns an audience file may have.
MAX_COLUMNS = 100
#: The longest physical line of an audience file, in characters (twice the csv module's default
#: field limit: one field at its limit and the rest of a row).
MAX_LINE_LENGTH = 262_144

#: Why a row cannot be used (stored in English, shown translated: see :mod:`.audience`).
TOO_FEW_COLUMNS = gettext_noop("The row has %(given)d columns; %(expected)d are needed.")
TOO_MANY_COLUMNS = gettext_noop("The row has %(given)d columns; at most %(max)d are read.")
UNSTORABLE = gettext_noop(
    "The row holds a character no database can store (a NUL or a lone surrogate)."
)


# One way of keeping a bad value as every database stores it (a NUL as ``\x00``, a lone
# surrogate as its escape), shared with the inbound reports and the gateway's answers.
storable = inputs.storable


def unstorable(text: str) -> bool:
    """Whether ``text`` holds a NUL or a lone surrogate (neither can be stored)."""
    return "\x00" in text or any("\ud800" <= char <= "\udfff" for char in text)


@dataclass(frozen=True)
class Row:
    """One audience row: where it starts (``line``), the number as given, its template
    parameters (``None``: the campaign's) and the columns they came from, the row's cells by
    column name (``columns``, a CSV row's own), or why it cannot be used (``problem``, an
    English message with ``problem_params``)."""

    line: int
    number: Any
    params: Sequence[Any] | None = None
    problem: str = ""
    problem_params: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, str] | None = None
    param_columns: tuple[str, ...] = ()


class LineTooLong(ValueError):
    """A line longer than the reader's limit (raised by :class:`Utf8Lines`)."""


class Utf8Lines:
    """A binary file read as UTF-8 text one line at a time (a byte-order mark skipped), so that
    bytes that are not UTF-8 are found on their own line: ``readline`` raises
    ``UnicodeDecodeError`` for that line only. Lines end at ``\n`` (as ``newline=""`` reads
    them). For :func:`rows_from_csv` and :func:`csv_columns`."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self._first = True

    def readline(self, limit: int = -1) -> str:
        # A character is at most four bytes: more bytes than that are more characters.
        most = 4 * limit + 4 if limit >= 0 else -1
        data = self.raw.readline(most)
        if most >= 0 and len(data) >= most and not data.endswith(b"\n"):
            raise LineTooLong(limit)
        if self._first:
            self._first = False
            data = data.removeprefix(b"\xef\xbb\xbf")
        return data.decode("utf-8")

    def seek(self, offset: int) -> int:
        self._first = offset == 0
        return self.raw.seek(offset)

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> Utf8Lines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: What the audience is read from: a text file (``newline=""``) or :class:`Utf8Lines`.
TextSource = IO[str] | Utf8Lines


def _lines(file: TextSource, where: list[int]) -> Iterator[str]:
    """The file's physical lines, each at most :data:`MAX_LINE_LENGTH` characters; ``where[0]``
    is the number of the line being read. Raises ``ValidationError`` for a longer line or for
    bytes that are not UTF-8."""
    too_long = _("Line %(line)d of the CSV file is longer than %(max)s characters.")
    while True:
        where[0] += 1
        try:
            line = file.readline(MAX_LINE_LENGTH + 1)
        except UnicodeDecodeError as error:
            raise ValidationError(
                _(
                    "The CSV file is not UTF-8 text from line %(line)d on: save it as UTF-8 "
                    "(“CSV UTF-8” in a spreadsheet) and upload it again."
                )
                % {"line": where[0]},
                code="encoding",
            ) from error
        except LineTooLong as error:
            message = too_long % {"line": where[0], "max": f"{MAX_LINE_LENGTH:,}"}
            raise ValidationError(message, code="line_too_long") from error
        if not line:
            return
        if len(line) > MAX_LINE_LENGTH:
            message = too_long % {"line": where[0], "max": f"{MAX_LINE_LENGTH:,}"}
            raise ValidationError(message, code="line_too_long")
        yield line


def _unreadable(error: csv.Error, line: int) -> ValidationError:
    text = str(error)
    if "field larger than field limit" in text:
        message = _("Line %(line)d of the CSV file has a field longer than %(max)s characters.")
        params = {"line": line, "max": f"{csv.field_size_limit():,}"}
    elif "unexpected end of data" in text:
        message = _(
            "A quoted field of the CSV file is never closed (from line %(line)d or before): "
            "check its quotes."
        )
        params = {"line": line}
    else:
        message = _("Line %(line)d of the CSV file is not valid CSV (%(error)s): check its quotes.")
        params = {"line": line, "error": text}
    return ValidationError(message % params, code="bad_csv")


class CsvAudience:
    """A CSV text file with a header line, read as a stream: :attr:`names` (the header, read
    when the object is made) and :meth:`rows`."""

    def __init__(self, file: TextSource) -> None:
        self._where = [0]
        self._reader = csv.reader(_lines(file, self._where), strict=True)
        header = self._next()
        if header is None:
            raise ValidationError(_("The CSV file is empty: it needs a header line."), code="empty")
        if len(header) > MAX_COLUMNS:
            raise ValidationError(
                _("The CSV header has %(count)d columns; at most %(max)d are read.")
                % {"count": len(header), "max": MAX_COLUMNS},
                code="too_many_columns",
            )
        if any(unstorable(name) for name in header):
            raise ValidationError(
                _("The CSV header holds a NUL or a lone surrogate: it cannot be read."),
                code="unstorable",
            )
        self.names = [name.strip() for name in header]

    def _next(self) -> list[str] | None:
        try:
            return next(self._reader, None)
        except csv.Error as error:
            raise _unreadable(error, self._where[0]) from error

    def require(self, columns: Sequence[str]) -> None:
        """Raise ``ValidationError`` unless the header has each of ``columns``."""
        missing = [c for c in columns if c not in self.names]
        if missing:
            raise ValidationError(
                _("The CSV header has no column %(columns)s; it has: %(found)s.")
                % {"columns": ", ".join(missing), "found": ", ".join(self.names)},
                code="missing_column",
            )

    def rows(self, *, number_column: str, param_columns: Sequence[str] = ()) -> Iterator[Row]:
        """The rows after the header: the number in ``number_column``, the template parameters
        in ``param_columns`` (in that order; none: the campaign's), every cell by its column."""
        self.require([number_column, *param_columns])
        number_at = self.names.index(number_column)
        params_at = [self.names.index(c) for c in param_columns]
        width = max([number_at, *params_at]) + 1
        while True:
            start = self._where[0]
            record = self._next()
            if record is None:
                return
            line = start + 1
            if not any(cell.strip() for cell in record):
                continue  # blank lines are not rows
            joined = ",".join(record)
            if len(record) > MAX_COLUMNS:
                yield Row(
                    line,
                    joined,
                    problem=TOO_MANY_COLUMNS,
                    problem_params={"given": len(record), "max": MAX_COLUMNS},
                )
            elif any(unstorable(cell) for cell in record):
                yield Row(line, joined, problem=UNSTORABLE)
            elif len(record) < width:
                yield Row(
                    line,
                    joined,
                    problem=TOO_FEW_COLUMNS,
                    problem_params={"given": len(record), "expected": width},
                )
            else:
                params = [record[i] for i in params_at] if params_at else None
                cells = dict(zip(self.names, record, strict=False))
                names = tuple(param_columns)
                yield Row(line, record[number_at], params, columns=cells, param_columns=names)


def csv_columns(file: TextSource) -> list[str]:
    """The names in a CSV text file's header line; the file is rewound to its start. Raises
    ``ValidationError`` for an empty file or a header that cannot be read."""
    try:
        return CsvAudience(file).names
    finally:
        file.seek(0)


def rows_from_csv(
    file: TextSource, *, number_column: str = "number", param_columns: Sequence[str] = ()
) -> Iterator[Row]:
    """Rows from a CSV text file with a header line: the number in ``number_column``, the
    template parameters in ``param_columns`` (in that order). ``line`` is the line the row
    starts on. The header is read now: raises ``ValidationError`` when it cannot be read or
    lacks a named column; reading on raises ``ValidationError`` when the file cannot be read to
    its end (see the module's docstring)."""
    audience = CsvAudience(file)
    audience.require([number_column, *param_columns])
    return audience.rows(number_column=number_column, param_columns=param_columns)
