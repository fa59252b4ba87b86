"""One number, one person: every way of writing a number is read as the same digits, once,
where it enters (django_whatsapp.numbers); DEFAULT_REGION reads national numbers; a number is
refused only when it cannot be one at all."""

from __future__ import annotations

from typing import Any

import phonenumbers
import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.test import override_settings
from hypothesis import given
from hypothesis import strategies as st

from django_whatsapp import validation
from django_whatsapp.conf import get_settings
from django_whatsapp.numbers import mask_number, mentions, normalize_number, search_digits

UA = "380503330100"


def with_region(settings: Any, region: str | None) -> None:
    settings.DJANGO_WHATSAPP = {**settings.DJANGO_WHATSAPP, "DEFAULT_REGION": region}


def test_the_validator_is_the_one_function() -> None:
    assert validation.clean_recipient is normalize_number


@pytest.mark.parametrize(
    "spelling",
    [
        "380503330100",
        "+380503330100",
        "00380503330100",
        "+380 50 333 01 00",
        "+380 (50) 333-01-00",
        "380-50-333-01-00",
        "+38 (050) 333.01.00",
        " 00 380 50 333 01 00 ",
        "+380\u00a050\u2013333\u201301\u201300",  # a no-break space and en dashes
        380503330100,
    ],
)
def test_international_spellings_are_one_number(spelling: Any) -> None:
    assert normalize_number(spelling) == UA


@pytest.mark.parametrize(
    ("region", "spelling", "digits"),
    [
        ("UA", "050 333 01 00", UA),
        ("UA", "(050) 333-01-00", UA),
        ("UA", "380 50 333 01 00", UA),  # an international number stays one with a region
        ("UA", "491701234567", "491701234567"),  # a German mobile is no Ukrainian number
        ("ua", "0503330100", UA),  # the setting's case does not matter
        ("DE", "0151 12345678", "4915112345678"),
        ("US", "(202) 555-0100", "12025550100"),
        ("US", "011 380 50 333 01 00", UA),  # the United States' international prefix
        ("RU", "8 916 123-45-67", "79161234567"),
    ],
)
def test_default_region_reads_national_numbers(
    settings: Any, region: str, spelling: str, digits: str
) -> None:
    with_region(settings, region)
    assert normalize_number(spelling) == digits


def test_a_stored_number_is_read_without_the_region(settings: Any) -> None:
    with_region(settings, "UA")
    assert normalize_number("0503330100") == UA
    with pytest.raises(ValidationError) as caught:
        normalize_number("0503330100", national=False)
    assert caught.value.code == "impossible"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("", "required"),
        (None, "required"),
        ("+", "required"),
        ("50", "impossible"),  # a fragment of a number is none
        ("380 50", "impossible"),
        ("+999 123 456", "impossible"),  # no such country code
        ("1" * 20, "impossible"),
        ("1" * 21, "max_length"),
        ("380-50-abc", "invalid"),
        ("380+503330100", "invalid"),
        ("380\x00503330100", "null_character"),
        ("380\ud800503330100", "surrogate"),
    ],
)
def test_what_cannot_be_a_number_is_refused(value: Any, code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        normalize_number(value)
    assert caught.value.code == code


def test_a_national_number_without_a_region_says_what_to_do() -> None:
    with pytest.raises(ValidationError) as caught:
        normalize_number("050 333 01 00")
    assert "DEFAULT_REGION" in caught.value.messages[0]


def test_normalising_is_not_a_stricter_check() -> None:
    # +1 555 078 3881 is no valid number (555 is no area code), but it could be one: kept.
    number = phonenumbers.parse("+15550783881")
    assert not phonenumbers.is_valid_number(number)
    assert normalize_number("+1 555 078 3881") == "15550783881"


VALID = sorted(
    phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)[1:]
    for region in phonenumbers.SUPPORTED_REGIONS
    if (example := phonenumbers.example_number(region)) is not None
)


@given(digits=st.sampled_from(VALID), region=st.sampled_from([None, "UA", "US", "DE", "GB"]))
def test_a_stored_number_reads_back_as_itself_whatever_the_region(
    digits: str, region: str | None
) -> None:
    """Every country's example number, stored as its digits, is read back unchanged with any
    DEFAULT_REGION: normalising twice is normalising once."""
    with override_settings(
        DJANGO_WHATSAPP={**django_settings.DJANGO_WHATSAPP, "DEFAULT_REGION": region}
    ):
        assert normalize_number(digits) == digits
        assert normalize_number("+" + digits) == digits
        assert normalize_number("00" + digits) == digits


@pytest.mark.parametrize("value", ["XX", "Ukraine", 380, "U"])
def test_a_bad_default_region_is_a_clear_configuration_error(settings: Any, value: Any) -> None:
    with_region(settings, value)
    with pytest.raises(ImproperlyConfigured, match=r"\['DEFAULT_REGION'\].*ISO 3166"):
        get_settings()


def test_default_region_defaults_to_none(settings: Any) -> None:
    assert get_settings().DEFAULT_REGION is None
    with_region(settings, " de ")
    assert get_settings().DEFAULT_REGION == "DE"


# -- log lines and searches ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "masked"),
    [("380503330100", "380*******00"), ("+49 151 12345678", "491********78"), ("12345", "1**45")],
)
def test_a_log_line_never_holds_a_whole_number(number: str, masked: str) -> None:
    assert mask_number(number) == masked


@pytest.mark.parametrize(
    ("term", "digits"),
    [
        ("+380 (50) 333-01-00", UA),
        ("00380503330100", UA),
        ("+380 50", "38050"),  # a part of a number: its digits as typed
        ("333-01", "33301"),
        ("Anna", None),
    ],
)
def test_a_search_for_a_number_is_a_search_for_its_digits(term: str, digits: str | None) -> None:
    assert search_digits(term) == digits


def test_a_national_search_with_the_region(settings: Any) -> None:
    with_region(settings, "UA")
    assert search_digits("050 333 01 00") == UA


@pytest.mark.parametrize(
    "text",
    [
        "from 380503330100.",
        "+380503330100",
        "call +380 (50) 333-01-00 now",
        '{"to": "00380503330100"}',
        "050 333 01 00",
        "(050) 333-01-00",
        "50 333 01 00",
    ],
)
def test_mentions_finds_every_spelling(text: str) -> None:
    assert mentions(UA).search(text)


@pytest.mark.parametrize(
    "text",
    ["13805033301001", "3805033301009", "0380503330100", "+380503330101", "503330", "tel 50"],
)
def test_mentions_never_finds_a_part_of_another_number(text: str) -> None:
    assert not mentions(UA).search(text)


def test_only_a_whole_number_is_whole() -> None:
    from django_whatsapp.numbers import is_whole_number

    assert is_whole_number("380501234567")
    assert not is_whole_number("380504440")  # dialled only locally: a part of a number
    assert not is_whole_number("")  # nothing libphonenumber can read
    assert not is_whole_number("3")


def test_a_short_number_is_masked_whole() -> None:
    assert mask_number("123") == "***"
    assert mask_number("+1 23") == "***"
    assert mask_number(None) == ""


def test_a_non_geographic_number_is_found_without_a_national_prefix() -> None:
    # +800 (international freephone) belongs to no region: no national prefix to look for, but
    # its national number (8 digits) is found alone.
    found = mentions("80012345678")
    for text in ("Call +800 1234 5678", "0080012345678", "call 1234 5678 today"):
        assert found.search(text), text
    assert not found.search("812345678")
    assert not found.search("call 1234 56789")  # inside a longer run of digits


def test_digits_no_number_reads_as_are_found_as_they_are() -> None:
    from django_whatsapp.numbers import near_pattern

    found = mentions("3")
    assert found.search("room 3")
    assert found.search("+3")
    assert not found.search("room 33")
    assert near_pattern("3") == "3"
    assert near_pattern("380501234567") == "[^0-9]{0,3}".join("501234567")
