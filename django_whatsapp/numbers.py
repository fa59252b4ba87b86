"""Phone numbers: read once, where they enter, as the digits every comparison uses.

One number, one person: ``+380 50 333 01 00``, ``00380503330100``, ``380-50-333-01-00`` and
``(050) 333-01-00`` (with ``DEFAULT_REGION = "UA"``) are one customer, stored and sent as
``380503330100``. :func:`normalize_number` is the one function that reads a number; the send
services, bulk sends, campaigns, inbound messages, opt-outs, the window, conversations, erasure
and the admin's search all go through it (``validation.clean_recipient`` is the same function).

How a number is read (with Google's libphonenumber, the ``phonenumbers`` package):

- spaces, dashes, dots, slashes and brackets are ignored; any other character that is not a digit
  (a letter, a second ``+``) makes it no number;
- ``+`` or ``00`` before the digits: an international number;
- digits alone: an international number without its ``+`` when they are a valid one (as the
  gateway writes numbers, as the app stores them, and as it always took them); else, with
  ``DEFAULT_REGION`` set, a number of that country when they are a valid one there
  (``050 333 01 00`` in ``UA``, ``(202) 555-0100`` in ``US``); else the first reading that is
  possible at all. So reading a stored number again always gives it back unchanged. Where a
  national number is also a valid international one (``361 234 5678``: Hungary, or Corpus
  Christi with ``US``), the international reading wins: write the national number with its
  trunk prefix (``1 361 234 5678``).

Normalising is not a stricter check: a number is refused only when it cannot be one at all
(``phonenumbers.is_possible_number``: an unknown country code, too few or too many digits for its
country). Numbers that a project stored or that the gateway sends are read with
``national=False``: never with the region.

:func:`mask_number` is what log lines write instead of a whole number; :func:`mentions` finds a
number written any of those ways inside a text (for a data-subject erasure).
"""

from __future__ import annotations

import functools
import re
from typing import Any

import phonenumbers
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from .conf import get_settings
from .inputs import check_input

__all__ = [
    "MAX_DIGITS",
    "is_whole_number",
    "mask_number",
    "mentions",
    "near_pattern",
    "normalize_number",
    "search_digits",
]

#: The most digits a number may have (the gateway's limit on ``destination_addr``).
MAX_DIGITS = 20
#: What may separate a number's digits: white space, dashes (ASCII and typographic), dots,
#: slashes and brackets.
SEPARATORS = " \t\u00a0\u202f().\\-/\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
_SEPARATOR_RE = re.compile(r"[\s().\-/\u2010-\u2015\u2212]")
_E164 = phonenumbers.PhoneNumberFormat.E164


def normalize_number(value: Any, *, national: bool = True) -> str:
    """The digits of the phone number ``value`` (international format, no ``+``), however it is
    written: see the module's docstring. ``national=False`` reads it without ``DEFAULT_REGION``
    (a number already stored, or one the gateway sent). Raises ``ValidationError`` (codes
    ``required``, ``invalid``, ``max_length``, ``impossible``) for what cannot be a number."""
    text = str(value if value is not None else "")
    check_input(text)
    text = _SEPARATOR_RE.sub("", text).strip()
    plus = text.startswith("+")
    body = text[1:] if plus else text
    if not body:
        raise ValidationError(_("Enter the recipient's phone number."), code="required")
    if not body.isascii() or not body.isdigit():
        raise ValidationError(
            _("The recipient must be a phone number in international format, digits only."),
            code="invalid",
        )
    if len(body) > MAX_DIGITS:
        raise ValidationError(
            _("The recipient has %(count)d digits; at most %(max)d are allowed."),
            code="max_length",
            params={"count": len(body), "max": MAX_DIGITS},
        )
    region = get_settings().DEFAULT_REGION if national else None
    digits = _read(body, plus, region)
    if digits is None:
        if not plus and body.startswith("0") and not body.startswith("00") and region is None:
            raise ValidationError(
                _(
                    "%(number)s is not a phone number in international format: a national "
                    "number (with its leading 0) needs DEFAULT_REGION, or write it with its "
                    "country code."
                ),
                code="impossible",
                params={"number": text},
            )
        raise ValidationError(
            _(
                "%(number)s cannot be a phone number (an unknown country code, or too few or "
                "too many digits for its country)."
            ),
            code="impossible",
            params={"number": text},
        )
    return digits


@functools.lru_cache(maxsize=8192)
def _read(body: str, plus: bool, region: str | None) -> str | None:
    """The E.164 digits of ``body`` (digits only), or ``None`` when no reading is possible."""
    readings: list[tuple[str, str | None]]
    if plus:
        readings = [("+" + body, None)]
    elif body.startswith("00"):
        readings = [("+" + body[2:], None)]
    elif region:
        readings = [("+" + body, None), (body, region)]
    else:
        readings = [("+" + body, None)]
    # In this order: the international reading first, then the region's.
    parsed = []
    for text, country in readings:
        try:
            parsed.append(phonenumbers.parse(text, country))
        except phonenumbers.NumberParseException:
            continue
    # Validity only chooses between two readings (it is the costly check).
    chosen = None
    if len(parsed) > 1:
        chosen = next((n for n in parsed if phonenumbers.is_valid_number(n)), None)
    if chosen is None:
        chosen = next((n for n in parsed if phonenumbers.is_possible_number(n)), None)
    if chosen is None:
        return None
    return phonenumbers.format_number(chosen, _E164).lstrip("+")


def is_whole_number(number: str) -> bool:
    """Whether ``number`` (normalised digits) is a whole number, not one that could only be
    dialled locally (``+380 50 444``: libphonenumber's ``IS_POSSIBLE_LOCAL_ONLY``, which
    :func:`normalize_number` accepts, as it is not a stricter check). An erasure takes whole
    numbers only: a part of a number names no one."""
    try:
        parsed = phonenumbers.parse("+" + number, None)
    except phonenumbers.NumberParseException:
        return False
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    return bool(reason == phonenumbers.ValidationResult.IS_POSSIBLE)


def mask_number(number: Any) -> str:
    """``number`` for a log line: its middle digits hidden (``380*******00``), so that a log
    keeps no whole number of a customer (an erased one included)."""
    digits = "".join(char for char in str(number or "") if char.isdigit())
    if len(digits) <= 4:
        return "*" * len(digits)
    keep_start = 3 if len(digits) >= 8 else 1
    return digits[:keep_start] + "*" * (len(digits) - keep_start - 2) + digits[-2:]


def search_digits(term: str) -> str | None:
    """The digits to search for when an operator's search term is a phone number written any
    way (``+380 (50) 333-01-00``, ``00380...``, a national number with ``DEFAULT_REGION``): its
    normalised digits, or for a part of a number (``+380 50``) its digits as typed; ``None``
    when the term is no number at all (a name, a text)."""
    text = term.strip()
    if not text or any(
        not ((c.isascii() and c.isdigit()) or c in SEPARATORS or c == "+") for c in text
    ):
        return None
    try:
        return normalize_number(text)
    except ValidationError:
        return _SEPARATOR_RE.sub("", text).replace("+", "") or None


_SEP = r"[\s().\-/\u2010-\u2015\u2212]{0,3}"


def _spaced(digits: str) -> str:
    return _SEP.join(digits)


@functools.lru_cache(maxsize=64)
def mentions(number: str) -> re.Pattern[str]:
    """A pattern that finds ``number`` (normalised digits) written any way inside a text:
    with ``+``, ``00`` or neither, with separators between any digits, or nationally (with its
    country's national prefix, or the national number alone when it has 7 digits or more). A
    match never starts or ends inside a longer run of digits, so a number that contains this one
    is not found."""
    national: list[str] = []
    try:
        parsed = phonenumbers.parse("+" + number, None)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is not None:
        nsn = phonenumbers.national_significant_number(parsed)
        region = phonenumbers.region_code_for_number(parsed)
        meta = phonenumbers.PhoneMetadata.metadata_for_region(region) if region else None
        prefix = getattr(meta, "national_prefix", None) or ""
        if prefix.isdigit():
            national.append(_spaced(prefix) + _SEP + _spaced(nsn))
        if len(nsn) >= 7:
            national.append(_spaced(nsn))
    forms = [r"(?:\+|00)?" + _SEP + _spaced(number), *national]
    # An opening bracket before a national number is part of it: "(050) 444 00 01".
    return re.compile(r"(?<![\d+])\(?(?:" + "|".join(forms) + r")(?!\d)")


def _national_digits(number: str) -> str:
    try:
        return phonenumbers.national_significant_number(phonenumbers.parse("+" + number, None))
    except phonenumbers.NumberParseException:
        return number


def near_pattern(number: str) -> str:
    """A regular expression, the same on every database (``__regex``), that matches wherever
    :func:`mentions` could: the national number's digits with up to three other characters
    between them. Wider than :func:`mentions` (it finds a part of a longer number too): it only
    narrows down the rows that :func:`mentions` then reads."""
    return "[^0-9]{0,3}".join(_national_digits(number))
